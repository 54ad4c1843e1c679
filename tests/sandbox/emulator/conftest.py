"""Fixtures shared by the emulator tests: a running emulator and slack_sdk clients pointed at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from slack_sdk import WebClient

from sandbox.emulator import SlackEmulator

CHANNEL = "C0INCIDENT"


@pytest.fixture
def emulator() -> Iterator[SlackEmulator]:
    with SlackEmulator() as emu:
        emu.add_user("U1", "alice", "Alice Liddell", tz="Europe/London")
        emu.add_user("U2", "bob")
        yield emu


@pytest.fixture
def client(emulator: SlackEmulator) -> WebClient:
    return WebClient(token="xoxb-test", base_url=emulator.base_url)


@pytest.fixture
def bare_client(emulator: SlackEmulator) -> WebClient:
    """A client that neither retries nor waits long, so faults and 429s reach the test as they happened."""
    return WebClient(token="xoxb-test", base_url=emulator.base_url, timeout=2, retry_handlers=[])
