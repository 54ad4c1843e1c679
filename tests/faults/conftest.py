"""Fixtures for the fault tests: each test gets its own Postgres cluster and starts TARS processes on it.

The server binaries come from TARS_TEST_PG_BINDIR or /usr/lib/postgresql/*/bin; without them the tests skip,
except in CI (CI=true), where they fail.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.emulator import SlackEmulator
from tests.faults.support import Fleet, PostgresUnavailable, PrivatePostgres, Rows, postgres_bindir


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    """A running cluster of this test's own; stop()/start() it freely, its URL is `.url`."""
    if os.environ.get("TARS_TEST_DB", "postgres").lower() == "sqlite":
        pytest.skip(
            "fault tests bring their own Postgres cluster; they run in the TARS_TEST_DB=postgres pass"
        )
    try:
        cluster = PrivatePostgres(postgres_bindir())
    except PostgresUnavailable as error:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"fault tests need Postgres server binaries: {error}", pytrace=False)
        pytest.skip(str(error))
    try:
        cluster.initialize().start()
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
def rows(private_postgres: PrivatePostgres) -> Iterator[Rows]:
    reader = Rows(private_postgres.url)
    yield reader
    reader.close()


@pytest.fixture
def fleet(private_postgres: PrivatePostgres, slack: SlackEmulator, tmp_path: Path) -> Iterator[Fleet]:
    """Starts `tars serve` processes; at the end kills any still running and prints their logs."""
    processes = Fleet(private_postgres, slack, tmp_path)
    yield processes
    processes.close()
