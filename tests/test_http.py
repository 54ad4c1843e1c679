"""The HTTP front door: Slack's signature check, the health endpoint, and acking fast."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from datetime import timedelta
from urllib.parse import urlencode

from sqlalchemy import Engine

from bot.clock import FrozenClock
from bot.db import make_engine
from bot.emulator import SlackEmulator
from bot.server import HttpServer, TarsWsgi
from tests.support import CHANNEL, Workspace


def _command_body(text: str) -> bytes:
    return urlencode(
        {"command": "/incident", "text": text, "user_id": "U0EVE", "channel_id": CHANNEL, "team_id": "T0TARS"}
    ).encode()


def test_forged_signature_is_rejected(workspace: Workspace) -> None:
    body = _command_body("declare payments P1 forged")
    response = workspace.client.post(body, "application/x-www-form-urlencoded", signature="v0=" + "0" * 64)
    assert response.status == 401
    assert workspace.incident_count() == 0


def test_six_minute_old_signature_is_rejected(workspace: Workspace) -> None:
    body = _command_body("declare payments P1 replayed")
    old = int(time.time() - timedelta(minutes=6).total_seconds())
    response = workspace.client.post(body, "application/x-www-form-urlencoded", timestamp=old)
    assert response.status == 401
    assert workspace.incident_count() == 0


def test_healthz_reports_the_database(workspace: Workspace) -> None:
    with urllib.request.urlopen(workspace.running.url + "/healthz", timeout=5) as response:
        assert response.status == 200
        assert b'"database": true' in response.read()


def test_healthz_is_503_when_the_database_is_unreachable() -> None:
    dead = make_engine("postgresql+psycopg://postgres@127.0.0.1:1/none", connect_args={"connect_timeout": 1})
    server = HttpServer(TarsWsgi(dead, None), host="127.0.0.1", port=0).start()
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{server.port}/healthz", timeout=5)
        raise AssertionError("expected 503")
    except urllib.error.HTTPError as error:
        assert error.code == 503
    finally:
        server.stop()


def test_commands_are_acked_before_slack_work_finishes(
    slack: SlackEmulator, engine: Engine, clock: FrozenClock, workspace: Workspace
) -> None:
    """The ack does not wait for Slack: even with the Web API answering slowly, the command returns at once."""
    slack.delay("chat.postMessage", seconds=2.5)
    started = time.monotonic()
    response = workspace.command("declare payments P1 Slow Slack today")
    elapsed = time.monotonic() - started
    assert response.status == 200
    assert elapsed < 1.0, f"ack took {elapsed:.2f}s"
    workspace.slack.wait_for("chat.postMessage", lambda c: c.args.get("channel") == CHANNEL, timeout=10)


def test_a_slow_slack_never_stops_tars_from_acking_a_burst_of_commands(workspace: Workspace) -> None:
    """More commands than listener threads, while every post takes seconds: each is still acked at once."""
    import threading

    incident = workspace.declare()
    workspace.slack.delay("chat.postMessage", seconds=2.0)
    workspace.slack.delay("chat.update", seconds=2.0)
    timings: list[tuple[int, float]] = []

    def update(number: int) -> None:
        started = time.monotonic()
        response = workspace.client.slash_command(
            f"update {incident.id} Finding number {number}", user_id="U0BOB", channel_id=CHANNEL
        )
        timings.append((response.status, time.monotonic() - started))

    threads = [threading.Thread(target=update, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert [status for status, _ in timings] == [200] * 12
    assert max(elapsed for _, elapsed in timings) < 1.5, timings
    workspace.slack.delay("chat.postMessage", seconds=0)
    workspace.slack.delay("chat.update", seconds=0)

    # Every update is either posted or (SQLite has no row locks, so concurrent edits of one incident can
    # collide) answered with "try again"; none is lost silently.
    def accounted_for() -> int:
        retries = [
            c for c in workspace.slack.ephemerals(user="U0BOB") if "same moment" in str(c.args.get("text"))
        ]
        return len(workspace.channel_posts("📊")) + len(retries)

    workspace.wait_until(lambda: accounted_for() == 12, timeout=60)
