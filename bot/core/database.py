"""Database plumbing: engine, sessions, UTC timestamps, and migrations under an advisory lock."""

from __future__ import annotations

import functools
import json
import logging
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from sqlalchemy import (
    ARRAY,
    JSON,
    ColumnElement,
    Connection,
    DateTime,
    Engine,
    Integer,
    Table,
    any_,
    bindparam,
    create_engine,
    event,
    exc,
    insert,
    text,
)
from sqlalchemy.engine import CursorResult, Dialect, Result
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

log = logging.getLogger(__name__)

# Any constant works; it only has to be the same in every replica.
MIGRATION_LOCK_KEY = 0x7A125
# Seconds a new Postgres connection may take before giving up (libpq's minimum is 2). A request that reaches a
# database which does not answer must still be answered within Slack's 3 s, so this is also the ceiling on how
# long the front door waits before saying the database is down.
CONNECT_TIMEOUT_SECONDS = 2
# A pooled connection unused for longer than this is pinged before it is handed out.
PING_AFTER_IDLE_SECONDS = 1.0


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; TARS stores UTC-aware times only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


def among(column: ColumnElement[int], ids: list[int], dialect: Dialect) -> ColumnElement[bool]:
    """`column IN ids`, spelled `= ANY(array)` on Postgres: one SQL text whatever the number of ids, so neither
    SQLAlchemy nor psycopg rebuilds the statement for each batch."""
    if dialect.name == "postgresql":
        return column == any_(bindparam(None, ids, type_=ARRAY(Integer)))
    return column.in_(ids)


def table_of(model: type[Base]) -> Table:
    """A model's table, typed as the Table it is (SQLAlchemy types `__table__` as any FromClause)."""
    return cast(Table, model.__table__)


def rows_changed(result: Result[Any]) -> int:
    """How many rows an UPDATE or DELETE run through a Session changed (a Session types its result loosely)."""
    return cast(CursorResult[Any], result).rowcount


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()

        return engine
    connect_args = {"connect_timeout": CONNECT_TIMEOUT_SECONDS, **kwargs.pop("connect_args", {})}
    engine = create_engine(url, pool_size=10, max_overflow=10, connect_args=connect_args, **kwargs)
    _ping_idle_connections(engine)
    return engine


def _ping_idle_connections(engine: Engine) -> None:
    """pool_pre_ping, but only for connections that sat unused for a while.

    A connection back in the pool a moment ago is almost certainly alive, and under a burst a ping per checkout
    was a round trip per statement batch. One that went stale anyway fails its statement as a disconnect, and
    SQLAlchemy then replaces every pooled connection.
    """

    @event.listens_for(engine, "checkin")
    def _returned(_dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            record.info["returned_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        returned = record.info.get("returned_at")
        if returned is not None and time.monotonic() - returned < PING_AFTER_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as error:  # the pool retries the checkout with a fresh connection
            raise exc.DisconnectionError(str(error)) from error


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    with factory() as session, session.begin():
        yield session


_AUTOCOMMIT: weakref.WeakKeyDictionary[Engine, Engine] = weakref.WeakKeyDictionary()


def autocommit(engine: Engine) -> Engine:
    """The same pool, each statement committing on its own.

    For a read, or a write that is one statement: BEGIN and COMMIT (or ROLLBACK) are a round trip each, and on a
    busy day they were a third of the statements TARS sent.
    """
    found = _AUTOCOMMIT.get(engine)
    if found is None:
        found = _AUTOCOMMIT[engine] = engine.execution_options(isolation_level="AUTOCOMMIT")
    return found


@contextmanager
def reading(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session for reads outside any transaction (each statement sees what was committed when it ran)."""
    with factory(bind=autocommit(factory.kw["bind"])) as session:
        yield session


def database_reachable(engine: Engine) -> bool:
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return True
    except Exception:  # any driver error means "not reachable" to a health check
        log.warning("database health check failed", exc_info=True)
        return False


@functools.cache
def schema_head() -> str:
    """The newest migration's revision: what a ready database's alembic_version holds."""
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory

    alembic_config = AlembicConfig()
    alembic_config.set_main_option("script_location", str(migrations_directory()))
    return str(ScriptDirectory.from_config(alembic_config).get_current_head())


def schema_version(engine: Engine) -> str | None:
    """The database's migration revision; None when it has none (never migrated) or cannot be read."""
    try:
        with engine.connect() as connection:
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except Exception:  # no table yet, or the database went away: not ready either way
        return None


def migrations_directory() -> Path:
    import migrations

    return Path(migrations.__file__).parent


def upgrade_database(engine: Engine) -> None:
    """Apply every Alembic migration; on Postgres, under an advisory lock so replicas do not race."""
    from alembic import command
    from alembic.config import Config as AlembicConfig

    alembic_config = AlembicConfig()
    alembic_config.set_main_option("script_location", str(migrations_directory()))
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            connection.commit()
        try:
            alembic_config.attributes["connection"] = connection
            command.upgrade(alembic_config, "head")
            connection.commit()
        finally:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
                connection.commit()


BULK_ROWS = "tars_bulk_rows"
COMMIT_ROWS = "tars_commit_rows"


class BulkRows:
    """Rows nobody reads back in the transaction that adds them, written with one statement per table.

    Building an ORM object per outbox row or reminder cost more than the SQL itself: on every command, and a
    hundredfold in a scheduler batch. Code that adds such rows hands them to `rows_for(session)`.
    """

    def __init__(self) -> None:
        self._rows: dict[Table, list[dict[str, Any]]] = {}

    def add(self, table: Table, row: dict[str, Any]) -> None:
        self._rows.setdefault(table, []).append(row)

    def holds(self, table: Table, **columns: Any) -> bool:
        """Whether a row with these column values is waiting to be written."""
        return any(
            all(row.get(name) == value for name, value in columns.items())
            for row in self._rows.get(table, ())
        )

    def write(self, session: Session) -> None:
        connection = session.connection()
        if connection.dialect.name != "postgresql":
            for table, rows in self._rows.items():
                connection.execute(insert(table), rows)
        elif sum(len(rows) for rows in self._rows.values()) >= COPY_FROM_ROWS:
            for table, rows in self._rows.items():
                _copy_rows(connection, table, rows)
        else:
            _pipeline_rows(connection, self._rows)
        self._rows.clear()


# A COPY costs two round trips per table, whatever its rows; a pipeline of INSERTs costs one for every table
# together, but the server runs each row's INSERT on its own. A command writes a handful of rows into two or
# three tables; a scheduler batch writes hundreds.
COPY_FROM_ROWS = 50


def _copy_rows(connection: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Postgres COPY: the cheapest way to write many rows, inside the same transaction."""
    columns = list(rows[0])
    json_columns = _json_columns(table)
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    with cursor.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row([json.dumps(row[name]) if name in json_columns else row[name] for name in columns])


def _pipeline_rows(connection: Connection, rows_by_table: dict[Table, list[dict[str, Any]]]) -> None:
    """A few rows into several tables in one round trip: psycopg's pipeline mode, inside the same transaction."""
    driver = connection.connection.driver_connection
    cursor = driver.cursor()  # type: ignore[union-attr]
    with driver.pipeline():  # type: ignore[union-attr]
        for table, rows in rows_by_table.items():
            columns = list(rows[0])
            json_columns = _json_columns(table)
            statement = (
                f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})"
            )
            cursor.executemany(
                statement,
                [
                    [json.dumps(row[name]) if name in json_columns else row[name] for name in columns]
                    for row in rows
                ],
            )


@functools.cache
def _json_columns(table: Table) -> frozenset[str]:
    return frozenset(column.name for column in table.c if isinstance(column.type, JSON))


def rows_for(session: Session) -> BulkRows:
    """The open batch's buffer, or else one that is written just before this transaction commits."""
    buffer: BulkRows | None = session.info.get(BULK_ROWS)
    if buffer is None:
        buffer = session.info.setdefault(COMMIT_ROWS, BulkRows())
    return buffer


def in_batch(session: Session) -> bool:
    return BULK_ROWS in session.info


def write_pending_rows(session: Session) -> None:
    """Write the rows queued for this transaction's commit now, for a reader later in the same transaction."""
    buffer: BulkRows | None = session.info.get(COMMIT_ROWS)
    if buffer is not None:
        session.flush()
        buffer.write(session)


def _write_commit_rows(session: Session) -> None:
    buffer: BulkRows | None = session.info.pop(COMMIT_ROWS, None)
    if buffer is not None:
        # Rows may point at objects added in this transaction: those go first.
        session.flush()
        buffer.write(session)


def _drop_commit_rows(session: Session, _previous: Any) -> None:
    session.info.pop(COMMIT_ROWS, None)


# On the Session class, not one factory: a row handed to `rows_for` must never be lost because its session was
# made some other way.
event.listen(Session, "before_commit", _write_commit_rows)
event.listen(Session, "after_soft_rollback", _drop_commit_rows)


@contextmanager
def bulk_rows(session: Session) -> Iterator[BulkRows]:
    buffer = BulkRows()
    session.info[BULK_ROWS] = buffer
    try:
        yield buffer
        buffer.write(session)
    finally:
        session.info.pop(BULK_ROWS, None)
