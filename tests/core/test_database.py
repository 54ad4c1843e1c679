"""Migrations and concurrent changes against the real database."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, inspect, select, text
from sqlalchemy.orm import Session

from bot.comms.comms_records import OutboxMessage, Reminder
from bot.core.database import (
    make_engine,
    make_session_factory,
    rows_for,
    schema_head,
    table_of,
    transaction,
    upgrade_database,
)
from bot.incidents.incident_records import Incident
from tests.conftest import _backend, create_postgres_database, drop_postgres_database
from tests.support import Workspace


def test_replicas_starting_together_migrate_once() -> None:
    if _backend() != "postgres":
        pytest.skip("the advisory lock is Postgres-only")
    url, admin = create_postgres_database()
    engines = [make_engine(url) for _ in range(3)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(engines))

    def start_replica(index: int) -> None:
        try:
            barrier.wait()
            upgrade_database(engines[index])
        except BaseException as error:  # collected and asserted below
            errors.append(error)

    try:
        threads = [threading.Thread(target=start_replica, args=(i,)) for i in range(len(engines))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert errors == []
        with engines[0].connect() as connection:
            assert connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [
                schema_head()
            ]
        assert {"incidents", "timeline_events"} <= set(inspect(engines[0]).get_table_names())
    finally:
        for engine in engines:
            engine.dispose()
        drop_postgres_database(url, admin)


def test_upgrading_an_up_to_date_database_changes_nothing(tmp_path: object) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/twice.db")
    upgrade_database(engine)
    upgrade_database(engine)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1


def test_two_people_acknowledging_at_once_are_recorded_once(workspace: Workspace) -> None:
    incident = workspace.declare()
    barrier = threading.Barrier(2)

    def acknowledge(user: str) -> None:
        barrier.wait()
        workspace.command(f"ack {incident.id}", user=user)

    threads = [threading.Thread(target=acknowledge, args=(user,)) for user in ("U0ALICE", "U0BOB")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    refusals = [
        call
        for user in ("U0ALICE", "U0BOB")
        for call in workspace.slack.ephemerals(user=user)
        if "already acknowledged" in call.args.get("text", "") or "same moment" in call.args.get("text", "")
    ]
    assert len(refusals) == 1
    refused = refusals[0]
    winner = workspace.incident(incident.id).acknowledged_by
    assert winner in ("U0ALICE", "U0BOB")
    assert refused.args["user"] != winner
    acknowledgements = [e for e in workspace.timeline(incident.id) if e.kind == "acknowledged"]
    assert [e.actor for e in acknowledgements] == [winner]


@pytest.mark.parametrize("count", [1, 3, 60])
def test_rows_queued_for_the_commit_are_stored_exactly(engine: Engine, count: int) -> None:
    """A command queues a few rows (one pipelined round trip on Postgres), a scheduler batch hundreds (COPY):
    either way every row arrives with its JSON intact."""
    sessions = make_session_factory(engine)
    now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    payloads = [
        {"text": f'note {n} <@U0BOB> & "quoted" ✅', "record": ["k", str(n)], "n": n} for n in range(count)
    ]
    with transaction(sessions) as session:
        incident = Incident(
            service="payments",
            severity=2,
            status="investigating",
            description="rows",
            reporter="U0ALICE",
            oncall="U0PAYONCALL",
            declared_at=now,
            version=1,
            escalations=0,
        )
        session.add(incident)
        session.flush()
        buffer = rows_for(session)
        for payload in payloads:
            buffer.add(
                table_of(OutboxMessage),
                {
                    "incident_id": incident.id,
                    "lane": "channel",
                    "kind": "thread_note",
                    "priority": 3,
                    "payload": payload,
                    "state": "pending",
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                },
            )
            buffer.add(
                table_of(Reminder),
                {
                    "incident_id": incident.id,
                    "kind": "custom",
                    "due_at": now,
                    "payload": payload,
                    "state": "pending",
                    "created_at": now,
                    "late": False,
                },
            )
    with Session(engine) as session:
        stored = session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()
        reminders = session.scalars(select(Reminder).order_by(Reminder.id)).all()
    assert [row.payload for row in stored] == payloads
    assert [row.payload for row in reminders] == payloads
    assert {row.next_attempt_at for row in stored} == {now}
