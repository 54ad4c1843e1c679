"""Exactly once across replicas, and nothing lost or reordered when Slack rate-limits or fails."""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from bot.app import build_tars
from bot.comms.comms_records import OutboxMessage
from bot.comms.outbox import NOTIFY_CHANNEL
from bot.core.clock import FrozenClock
from bot.core.database import autocommit, make_engine
from bot.incidents.command_parser import Declare
from bot.incidents.incident_records import TimelineEvent
from sandbox.emulator import SlackEmulator
from tests.conftest import _backend
from tests.support import CHANNEL, Workspace, start_tars, test_config

INCIDENTS = 60
REPLICAS = 3


def test_three_replicas_post_every_due_update_exactly_once(
    slack: SlackEmulator, engine: Engine, clock: FrozenClock
) -> None:
    if _backend() != "postgres":
        pytest.skip("several replicas share one Postgres; SQLite is single-process")
    config = test_config(slack, engine)
    engines = [make_engine(str(engine.url.render_as_string(hide_password=False))) for _ in range(REPLICAS)]
    replicas = [build_tars(config, clock=clock, engine=replica_engine) for replica_engine in engines]
    try:
        for number in range(INCIDENTS):
            replicas[number % REPLICAS].flows.declare(
                Declare("payments", 1, f"Outage number {number}"), actor="U0ALICE", origin_channel=CHANNEL
            )
        clock.advance(timedelta(minutes=30))
        barrier = threading.Barrier(REPLICAS)
        errors: list[BaseException] = []

        def run(index: int) -> None:
            try:
                barrier.wait()
                for _ in range(3):
                    replicas[index].scheduler.run_once()
            except BaseException as error:  # collected and asserted below
                errors.append(error)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(REPLICAS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert errors == []

        updates = [
            call
            for call in slack.calls_to("chat.postMessage")
            if str(call.args.get("text", "")).startswith("📊")
        ]
        per_incident = Counter(re.search(r"Incident: (INC-\d+)", c.args["text"]).group(1) for c in updates)  # type: ignore[union-attr]
        assert len(per_incident) == INCIDENTS
        assert set(per_incident.values()) == {1}, per_incident.most_common(3)
        with Session(engine) as session:
            pending = session.scalar(
                select(func.count()).select_from(OutboxMessage).where(OutboxMessage.state != "sent")
            )
        assert pending == 0
    finally:
        for replica_engine in engines:
            replica_engine.dispose()


def test_a_change_committed_on_one_replica_wakes_delivery_on_another_without_polling(
    slack: SlackEmulator, engine: Engine, clock: FrozenClock
) -> None:
    """Postgres announces new outbox rows itself: a replica that only polls once an hour still posts at once."""
    if _backend() != "postgres":
        pytest.skip("several replicas share one Postgres; SQLite is single-process")
    config = test_config(slack, engine)
    engines = [make_engine(str(engine.url.render_as_string(hide_password=False))) for _ in range(2)]
    answering, delivering = (build_tars(config, clock=clock, engine=e) for e in engines)
    delivering.delivery.poll_seconds = 3600.0
    delivering.delivery.start(listen=engines[1])
    try:
        # Autocommit: within one transaction, pg_stat_activity would show the same snapshot every time.
        with autocommit(engine).connect() as connection:
            listening = text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query = :listen"
            )
            deadline = time.monotonic() + 30
            while not connection.execute(listening, {"listen": f"LISTEN {NOTIFY_CHANNEL}"}).scalar():
                assert time.monotonic() < deadline, "the delivering replica never listened"
                time.sleep(0.05)
        incident = answering.flows.declare(
            Declare("payments", 1, "Checkout down"), actor="U0ALICE", origin_channel=CHANNEL
        )
        card = slack.wait_for("chat.postMessage", lambda c: c.args.get("channel") == CHANNEL, timeout=20)
        assert incident.ref in card.args["text"]
    finally:
        delivering.delivery.stop()
        for replica_engine in engines:
            replica_engine.dispose()


def test_slack_429_and_500_delay_announcements_but_lose_none_and_keep_their_order(
    workspace: Workspace,
) -> None:
    incident = workspace.declare()
    workspace.slack.fail("chat.postMessage", status=429, retry_after=1, times=3)
    workspace.slack.fail("chat.postMessage", status=500, times=2)

    workspace.command(f"update {incident.id} First finding: the pool is exhausted")
    workspace.wait_until(lambda: workspace.incident(incident.id).latest_findings is not None)
    workspace.command(f"status {incident.id} mitigating")
    workspace.wait_until(lambda: workspace.incident(incident.id).status == "mitigating")
    workspace.command(f"update {incident.id} Second finding: rollback started")
    workspace.wait_until(lambda: "Second" in (workspace.incident(incident.id).latest_findings or ""))

    for _ in range(20):
        if workspace.pending_announcements() == 0:
            break
        workspace.later(timedelta(minutes=1))
    assert workspace.pending_announcements() == 0

    delivered = [
        str(call.args["text"]).split("\n")[0] if call.args["text"].startswith("📊") else call.args["text"]
        for call in workspace.slack.calls_to("chat.postMessage")
        if call.ok and call.args.get("channel") == CHANNEL and call.args["text"][:1] in "📊<"
    ]
    assert delivered == [
        "📊 INCIDENT UPDATE P1: payments",
        "<@U0ALICE> changed the status of INC-1: Investigating → Mitigating.",
        "📊 INCIDENT UPDATE P1: payments",
    ]
    updates = workspace.channel_posts("📊")
    assert "First finding" in updates[0].args["text"] and "Second finding" in updates[1].args["text"]
    failed = [c for c in workspace.slack.calls_to("chat.postMessage") if not c.ok]
    assert [c.http_status for c in failed] == [429, 429, 429, 500, 500]
    # The card still shows the newest state once Slack is back.
    assert "Status: Mitigating" in workspace.card(incident.id).text


def test_a_permanent_slack_error_is_recorded_not_retried_forever(workspace: Workspace) -> None:
    incident = workspace.declare()
    workspace.slack.fail("chat.postMessage", status=200, error="not_in_channel", times=1)
    workspace.command(f"update {incident.id} Findings nobody will see")
    workspace.wait_until(lambda: workspace.pending_announcements() == 0, timeout=15)
    failure = next(e for e in workspace.timeline(incident.id) if e.kind == "announcement_failed")
    assert "not_in_channel" in failure.text


def _updates_in_channel(workspace: Workspace) -> list[str]:
    return [m.text for m in workspace.slack.channel_messages(CHANNEL) if m.text.startswith("📊")]


def test_a_post_slack_took_before_the_connection_dropped_appears_once(workspace: Workspace) -> None:
    incident = workspace.declare()
    workspace.slack.drop_connection_after_processing("chat.postMessage", times=1)
    workspace.command(f"update {incident.id} The pool is exhausted")
    # The post is in Slack but TARS never heard back; it retries after its backoff and looks first.
    workspace.wait_until(lambda: workspace.delivery_attempts("channel_post") == 1)
    workspace.later(timedelta(seconds=5))
    workspace.settle()
    assert len(_updates_in_channel(workspace)) == 1
    lookups = workspace.slack.calls_to("conversations.history")
    assert lookups and all(call.args.get("include_all_metadata") in (True, "true", "1") for call in lookups)


def test_a_file_slack_shared_before_the_connection_dropped_appears_once(workspace: Workspace) -> None:
    incident = workspace.declare()
    with Session(workspace.engine) as session:
        session.add_all(
            TimelineEvent(
                incident_id=incident.id,
                at=workspace.clock.now(),
                actor="U0BOB",
                kind="update",
                text=f"Update: finding number {n} " + "f" * 100,
                data={},
            )
            for n in range(300)
        )
        session.commit()
    workspace.slack.drop_connection_after_processing("files.completeUploadExternal", times=1)
    workspace.command(f"resolve {incident.id} Connection pool exhausted --force")  # P1: a long draft follows
    # The file is shared but TARS never heard back; it retries after its backoff and looks in the thread first.
    workspace.wait_until(lambda: workspace.delivery_attempts("thread_file") == 1)
    workspace.later(timedelta(seconds=5))
    workspace.settle()
    assert [f.filename for f in workspace.slack.uploaded_files()] == ["INC-1-postmortem.md"]
    thread = workspace.slack.thread_replies(CHANNEL, str(incident.card_ts))
    assert len([m for m in thread if m.files]) == 1


def test_slack_hanging_on_a_post_past_the_client_timeout_still_shows_it_once(workspace: Workspace) -> None:
    incident = workspace.declare()
    workspace.slack.stall_after_processing("chat.postMessage", seconds=11, times=1)
    workspace.command(f"update {incident.id} Rollback started")
    workspace.wait_until(lambda: workspace.delivery_attempts("channel_post") == 1, timeout=30)
    workspace.later(timedelta(seconds=5))
    workspace.settle()
    assert len(_updates_in_channel(workspace)) == 1


def test_paced_to_slacks_limits_a_burst_gets_no_429_and_the_card_shows_the_newest_state(
    slack: SlackEmulator, engine: Engine, clock: FrozenClock
) -> None:
    slack.enforce_rate_limits()
    with start_tars(slack, engine, clock, pace_slack=True) as running:
        team = Workspace(running, slack, engine, clock)
        incident = team.declare(settle=False)
        for number in range(4):
            team.command(f"update {incident.id} Finding number {number}")
        team.command(f"status {incident.id} mitigating")
        team.command(f"severity {incident.id} P2")
        team.settle()
    assert slack.rate_limited_calls() == []
    assert len([m for m in slack.channel_messages(CHANNEL) if m.text.startswith("📊")]) == 4
    card = slack.message(CHANNEL, team.incident(incident.id).card_ts or "")
    assert "Status: Mitigating" in card.text and "[P2]" in card.text
