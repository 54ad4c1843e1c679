"""Slack took the call but the answer never arrived: dropped connections and stalled answers."""

from __future__ import annotations

import time

import pytest
from slack_sdk import WebClient
from slack_sdk.webhook import WebhookClient

from sandbox.emulator import SlackEmulator
from tests.sandbox.emulator.conftest import CHANNEL


def test_dropped_connection_after_the_post_was_stored(
    emulator: SlackEmulator, bare_client: WebClient
) -> None:
    emulator.drop_connection_after_processing("chat.postMessage")
    with pytest.raises(OSError):  # RemoteDisconnected / URLError: the client cannot know the post landed
        bare_client.chat_postMessage(channel=CHANNEL, text="INC-1 declared")

    assert [m.text for m in emulator.channel_messages(CHANNEL)] == ["INC-1 declared"]
    [call] = emulator.calls_to("chat.postMessage")
    assert call.ok and call.response["ts"] == emulator.channel_messages(CHANNEL)[0].ts
    # Only the next call was affected.
    assert bare_client.chat_postMessage(channel=CHANNEL, text="next")["ok"]


def test_default_slack_sdk_retry_posts_twice_after_a_drop(emulator: SlackEmulator, client: WebClient) -> None:
    # slack_sdk retries connection errors once by default; against a Slack that already stored the post,
    # that retry is a duplicate message. This is what exactly-once delivery has to guard against.
    emulator.drop_connection_after_processing("chat.postMessage")
    assert client.chat_postMessage(channel=CHANNEL, text="INC-1 declared")["ok"]
    assert [m.text for m in emulator.channel_messages(CHANNEL)] == ["INC-1 declared", "INC-1 declared"]


def test_drop_applies_to_the_given_number_of_calls(emulator: SlackEmulator, bare_client: WebClient) -> None:
    ts = bare_client.chat_postMessage(channel=CHANNEL, text="v0")["ts"]
    emulator.drop_connection_after_processing("chat.update", times=2)
    for n in (1, 2):
        with pytest.raises(OSError):
            bare_client.chat_update(channel=CHANNEL, ts=ts, text=f"v{n}")
        assert emulator.message(CHANNEL, ts).text == f"v{n}"
    assert bare_client.chat_update(channel=CHANNEL, ts=ts, text="v3")["ok"]


def test_stalled_answer_times_out_the_client_while_slack_has_the_post(
    emulator: SlackEmulator, bare_client: WebClient
) -> None:
    emulator.stall_after_processing("chat.postMessage", seconds=30)
    started = time.monotonic()
    with pytest.raises(OSError):  # TimeoutError after the client's 2 s
        bare_client.chat_postMessage(channel=CHANNEL, text="INC-1 declared")
    assert time.monotonic() - started < 20
    assert [m.text for m in emulator.channel_messages(CHANNEL)] == ["INC-1 declared"]
    assert emulator.calls_to("chat.postMessage")[0].ok
    # Other calls are answered meanwhile; the stall holds only that one answer.
    assert bare_client.chat_postMessage(channel=CHANNEL, text="next")["ok"]


def test_short_stall_still_answers(emulator: SlackEmulator, bare_client: WebClient) -> None:
    emulator.stall_after_processing("chat.postMessage", seconds=0.2)
    assert bare_client.chat_postMessage(channel=CHANNEL, text="slow but fine")["ok"]


def test_response_url_drop(emulator: SlackEmulator) -> None:
    hook = WebhookClient(emulator.new_response_url(CHANNEL, "U1"), timeout=2, retry_handlers=[])
    emulator.drop_connection_after_processing("response_url")
    with pytest.raises(OSError):
        hook.send(text="INC-1 declared", response_type="in_channel")
    assert [m.text for m in emulator.channel_messages(CHANNEL)] == ["INC-1 declared"]
