"""Shared fixtures: a throwaway database with the real migrations, the Slack emulator, and a running TARS.

TARS_TEST_DB=postgres (default) creates a fresh Postgres database per run on 127.0.0.1:5432;
TARS_TEST_DB=sqlite runs the same suite on a SQLite file. In CI (CI=true) a missing Postgres fails the run.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

import bot.all_tables  # noqa: F401  (every domain's tables, for Base.metadata)
from bot.core.clock import FrozenClock
from bot.core.database import Base, make_engine, upgrade_database
from sandbox.emulator import SlackEmulator
from tests.support import Workspace, start_tars

POSTGRES_ADMIN_URL = os.environ.get(
    "TARS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def _backend() -> str:
    backend = os.environ.get("TARS_TEST_DB", "postgres").lower()
    if backend not in ("postgres", "sqlite"):
        raise pytest.UsageError(f"TARS_TEST_DB must be postgres or sqlite, not {backend!r}")
    return backend


def _admin_engine() -> Engine:
    engine = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as error:
        message = f"Postgres is not reachable at {POSTGRES_ADMIN_URL}: {error}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return engine


def create_postgres_database() -> tuple[str, Engine]:
    """A new, empty database; returns its URL and the admin engine to drop it with."""
    admin = _admin_engine()
    name = f"tars_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    return POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + name, admin


def drop_postgres_database(url: str, admin: Engine) -> None:
    name = url.rsplit("/", 1)[1]
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if _backend() == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'tars-test.db'}"
        return
    url, admin = create_postgres_database()
    try:
        yield url
    finally:
        drop_postgres_database(url, admin)


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    upgrade_database(engine)
    yield engine
    engine.dispose()


@pytest.fixture(autouse=True)
def _empty_tables(request: pytest.FixtureRequest) -> None:
    """Each test starts with no rows (only for tests that use the database)."""
    if "engine" not in request.fixturenames:
        return
    engine: Engine = request.getfixturevalue("engine")
    # Every table the migrations made, children before their parents.
    tables = [table.name for table in reversed(Base.metadata.sorted_tables)]
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                connection.execute(text(f"DELETE FROM {table}"))


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def slack() -> Iterator[SlackEmulator]:
    with SlackEmulator(bot_token="xoxb-test-token") as emulator:
        for user_id, name in [
            ("U0PAYONCALL", "pat.payments"),
            ("U0CHKONCALL", "chris.checkout"),
            ("U0ALICE", "alice"),
            ("U0BOB", "bob"),
        ]:
            emulator.add_user(user_id, name)
        yield emulator


@pytest.fixture
def workspace(
    slack: SlackEmulator, engine: Engine, clock: FrozenClock, tmp_path: Path
) -> Iterator[Workspace]:
    with start_tars(slack, engine, clock) as running:
        yield Workspace(running, slack, engine, clock)


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """One moto server for the AWS tests (server mode: boto3 talks HTTP to it)."""
    from tests.integrations.aws_fixtures import moto_server

    with moto_server() as url:
        yield url


@pytest.fixture
def endpoint(moto_url: str) -> str:
    """The moto server, emptied: every test that asks for it starts from no AWS state."""
    from tests.integrations.aws_fixtures import reset_moto

    reset_moto(moto_url)
    return moto_url
