"""The answer to Slack leaves when the listener acks, not at Bolt's next poll; stuck listeners never stop it."""

from __future__ import annotations

import threading

import pytest
from slack_bolt.response import BoltResponse
from sqlalchemy import Engine, text

from bot.app import DISPATCH_SLOTS, PromptAck
from bot.slack import rendering
from tests.conftest import _backend
from tests.support import Workspace


def test_the_request_thread_gets_the_answer_the_listener_gave() -> None:
    ack = PromptAck()
    listener = threading.Thread(target=lambda: ack(text="Recorded."))
    listener.start()
    # Read on the thread that made it: waits for the ack instead of seeing "not yet" and polling again.
    answer = ack.response
    listener.join()
    assert isinstance(answer, BoltResponse)
    assert answer.body == "Recorded."


def test_other_threads_never_wait_for_the_ack() -> None:
    ack = PromptAck()
    seen: list[BoltResponse | None] = []
    reader = threading.Thread(target=lambda: seen.append(ack.response))
    reader.start()
    reader.join(timeout=5)
    assert not reader.is_alive()
    assert seen == [None]
    ack()
    assert ack.response is not None and ack.response.status == 200


def test_a_command_is_answered_while_more_clicks_than_slots_wait_on_a_row_lock(
    workspace: Workspace, engine: Engine
) -> None:
    if _backend() != "postgres":
        pytest.skip("SQLite has no row locks to hold")
    incident = workspace.declare()
    stuck = DISPATCH_SLOTS + 1
    clicks: list[threading.Thread] = []
    with engine.connect() as holder, holder.begin():
        # Someone else's long transaction holds the incident: its clicks wait before their ack.
        holder.execute(text("SELECT id FROM incidents WHERE id = :id FOR UPDATE"), {"id": incident.id})
        for _ in range(stuck):
            click = threading.Thread(
                target=workspace.click, args=(incident.id, rendering.STATUS_ACTION_PREFIX + "mitigating")
            )
            click.start()
            clicks.append(click)
        workspace.wait_until(
            lambda: _waiting_on_locks(engine) >= stuck,
            timeout=15,
            message="the clicks never reached the lock",
        )
        answer = workspace.command("help")
        # Answered while every slot is held by a stuck click and the lock is still held.
        assert "/incident declare" in answer.body
    for click in clicks:
        click.join(timeout=15)
        assert not click.is_alive()
    assert workspace.incident(incident.id).status == "mitigating"


def _waiting_on_locks(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            ).scalar_one()
        )
