"""Test helpers: a running TARS on loopback and a person-shaped way to talk to it."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from bot.app import TarsApp, create_app
from bot.comms.comms_records import OutboxMessage, OutboxState
from bot.core.clock import FrozenClock
from bot.core.settings import Config, ServiceConfig
from bot.incidents.incident_records import Incident, TimelineEvent
from bot.ingress.http_server import HttpServer
from bot.remediation.action_records import ActionRequest
from bot.remediation.platforms import Platforms
from bot.slack import rendering
from integrations.github_repos import GitHubClient
from sandbox.emulator import Message, RecordedCall, SignedSlackClient, SlackEmulator
from sandbox.emulator.slack_client import SlackHttpResponse

SIGNING_SECRET = "test-signing-secret"
ROOT = Path(__file__).resolve().parent.parent
CHANNEL = "C0INCIDENTS"
SERVICES = {
    "payments": ServiceConfig(oncall="U0PAYONCALL", description="Card payments"),
    "checkout": ServiceConfig(oncall="U0CHKONCALL"),
}


@dataclass
class RunningTars:
    app: TarsApp
    server: HttpServer

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"


def test_config(slack: SlackEmulator, engine: Engine, **overrides: Any) -> Config:
    values: dict[str, Any] = {
        "database_url": str(engine.url),
        "slack_bot_token": "xoxb-test-token",
        "slack_signing_secret": SIGNING_SECRET,
        "slack_api_url": slack.base_url,
        "incidents_channel": CHANNEL,
        "services": SERVICES,
        # The emulator only limits rates when a test asks it to; that test turns pacing back on.
        "pace_slack": False,
    }
    values.update(overrides)
    return Config(**values)


test_config.__test__ = False  # type: ignore[attr-defined]  # not a test, despite the name


@contextmanager
def start_tars(
    slack: SlackEmulator,
    engine: Engine,
    clock: FrozenClock,
    *,
    platforms: Platforms | None = None,
    github_client: GitHubClient | None = None,
    **overrides: Any,
) -> Iterator[RunningTars]:
    app = create_app(
        test_config(slack, engine, **overrides),
        clock=clock,
        engine=engine,
        platforms=platforms,
        github=github_client,
    )
    server = HttpServer(app.wsgi, host="127.0.0.1", port=0).start()
    try:
        yield RunningTars(app, server)
    finally:
        server.stop()
        app.close()


class Workspace:
    """What a person in the workspace can do and see, plus the stored rows to check against."""

    def __init__(
        self, running: RunningTars, slack: SlackEmulator, engine: Engine, clock: FrozenClock
    ) -> None:
        self.running = running
        self.slack = slack
        self.engine = engine
        self.clock = clock
        self.client = SignedSlackClient(running.url + "/slack/events", SIGNING_SECRET, slack)

    # --- acting -----------------------------------------------------------------------------------------------

    def command(self, text: str, *, user: str = "U0ALICE", channel: str = CHANNEL) -> SlackHttpResponse:
        response = self.client.slash_command(text, user_id=user, channel_id=channel)
        assert response.status == 200, response
        return response

    def declare(
        self,
        text: str = "payments P1 Card payments failing with 502",
        *,
        user: str = "U0ALICE",
        settle: bool = True,
    ) -> Incident:
        before = self.incident_count()
        self.command(f"declare {text}", user=user)
        self.wait_until(lambda: self.incident_count() > before and self.latest_incident().card_ts is not None)
        incident = self.latest_incident()
        self.wait_until(lambda: any(e.kind == "paged" for e in self.timeline(incident.id)))
        if settle:
            self.settle()
        return incident

    def set_status(self, incident_id: int, status: str, *, user: str = "U0ALICE") -> None:
        """Change the status and wait until it is stored, so the clock can move on from there."""
        self.command(f"status {incident_id} {status}", user=user)
        self.wait_until(lambda: self.incident(incident_id).status == status)
        self.settle()

    def click(self, incident_id: int, action_id: str, *, user: str = "U0BOB") -> SlackHttpResponse:
        incident = self.incident(incident_id)
        assert incident.card_ts is not None
        response = self.client.click_button(
            user_id=user,
            channel_id=CHANNEL,
            message_ts=incident.card_ts,
            action_id=action_id,
            value=str(incident_id),
        )
        assert response.status == 200, response
        return response

    def stale_click(self, *, user: str, message_ts: str, action_id: str, value: str) -> SlackHttpResponse:
        """A click from someone whose screen still shows a button the message no longer has."""
        payload = {
            "type": "block_actions",
            "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": "T0TARS"},
            "api_app_id": "A0TARS",
            "token": "legacy",
            "container": {
                "type": "message",
                "message_ts": message_ts,
                "channel_id": CHANNEL,
                "is_ephemeral": False,
            },
            "trigger_id": self.slack.new_trigger_id(user),
            "team": {"id": "T0TARS", "domain": "tars-sandbox"},
            "channel": {"id": CHANNEL, "name": "incidents"},
            "response_url": self.slack.new_response_url(CHANNEL, user),
            "actions": [
                {
                    "type": "button",
                    "action_id": action_id,
                    "block_id": "stale",
                    "value": value,
                    "text": {"type": "plain_text", "text": action_id},
                    "action_ts": "1.0",
                }
            ],
        }
        body = urlencode({"payload": json.dumps(payload)}).encode()
        return self.client.post(body, "application/x-www-form-urlencoded")

    def tick(self) -> None:
        """One scheduler tick (due reminders fired, outbox delivered), as the background job would run it."""
        tars = self.running.app.tars
        tars.scheduler.tick()
        assert tars.delivery.deliver_due(), "what the tick queued was not delivered within 30 s"

    def later(self, delta: Any) -> None:
        """Let time pass, then tick."""
        self.clock.advance(delta)
        self.tick()

    # --- seeing -----------------------------------------------------------------------------------------------

    def card(self, incident_id: int) -> Message:
        """The card as people see it once TARS has finished the work already asked of it (the card and the
        thread are separate lanes, so a thread note can land before the card's refresh)."""
        assert self.running.app.settle(), "TARS's work did not finish within 30 s"
        incident = self.incident(incident_id)
        assert incident.card_ts is not None
        return self.slack.message(CHANNEL, incident.card_ts)

    def ephemeral_to(self, user: str, contains: str, timeout: float = 5.0) -> RecordedCall:
        """The private reply to `user` that says `contains`: in a command's answer or through its response_url."""
        found: list[RecordedCall] = []

        def said() -> bool:
            found[:] = [
                c for c in self.slack.ephemerals(user=user) if contains in str(c.args.get("text", ""))
            ]
            return bool(found)

        self.wait_until(said, timeout=timeout, message=f"no private reply to {user} saying {contains!r}")
        return found[0]

    def channel_posts(self, prefix: str) -> list[RecordedCall]:
        """Successful top-level posts in #incidents whose text starts with `prefix`, in order."""
        return [
            call
            for call in self.slack.calls_to("chat.postMessage")
            if call.ok
            and call.args.get("channel") == CHANNEL
            and "thread_ts" not in call.args
            and str(call.args.get("text", "")).startswith(prefix)
        ]

    def channel_texts(self) -> list[str]:
        return [m.text for m in self.slack.channel_messages(CHANNEL)]

    # --- stored state -----------------------------------------------------------------------------------------

    def incident_count(self) -> int:
        with Session(self.engine) as session:
            return int(session.scalar(select(func.count()).select_from(Incident)) or 0)

    def event_count(self) -> int:
        with Session(self.engine) as session:
            return int(session.scalar(select(func.count()).select_from(TimelineEvent)) or 0)

    def latest_incident(self) -> Incident:
        with Session(self.engine) as session:
            incident = session.scalars(select(Incident).order_by(Incident.id.desc()).limit(1)).first()
            assert incident is not None, "no incident stored"
            return incident

    def pending_announcements(self) -> int:
        with Session(self.engine) as session:
            statement = (
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.state == OutboxState.PENDING.value)
            )
            return int(session.scalar(statement) or 0)

    def delivery_attempts(self, kind: str) -> int:
        """How often the (first) queued announcement of this kind has failed so far."""
        with Session(self.engine) as session:
            statement = (
                select(OutboxMessage.attempts).where(OutboxMessage.kind == kind).order_by(OutboxMessage.id)
            )
            return int(session.scalars(statement).first() or 0)

    def settle(self) -> None:
        """Wait until every queued announcement has been delivered (or given up on). Changes are committed before
        Slack is answered, so the rows to wait for exist by the time a request returns."""
        assert self.running.app.settle(), "TARS's work did not finish within 30 s"
        self.wait_until(lambda: self.pending_announcements() == 0, message="announcements still pending")

    def incident(self, incident_id: int) -> Incident:
        with Session(self.engine) as session:
            incident = session.get(Incident, incident_id)
            assert incident is not None
            return incident

    def timeline(self, incident_id: int) -> list[TimelineEvent]:
        with Session(self.engine) as session:
            statement = (
                select(TimelineEvent)
                .where(TimelineEvent.incident_id == incident_id)
                .order_by(TimelineEvent.id)
            )
            return list(session.scalars(statement))

    def wait_until(self, condition: Any, timeout: float = 5.0, message: str = "condition not met") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.02)
        raise AssertionError(message)


# --- remediation requests and votes --------------------------------------------------------------------------------------------------


def request(team: Workspace, text: str, *, user: str = "U0ALICE") -> ActionRequest:
    before = action_count(team)
    team.command(text, user=user)
    team.wait_until(lambda: action_count(team) > before, message="no action request stored")
    team.wait_until(lambda: latest_action(team).card_ts is not None, message="approval card not posted")
    return latest_action(team)


def vote(team: Workspace, action: ActionRequest, user: str, *, approve: bool = True) -> RecordedCall:
    """Click Approve or Deny; on a card that has lost its buttons, click as from a screen not yet refreshed."""
    before = len(team.slack.calls_to("response_url"))
    action_id = rendering.APPROVE_ACTION if approve else rendering.DENY_ACTION
    try:
        response = team.client.click_button(
            user_id=user,
            channel_id=CHANNEL,
            message_ts=action.card_ts or "",
            action_id=action_id,
            value=str(action.id),
        )
    except LookupError:
        response = team.stale_click(
            user=user, message_ts=action.card_ts or "", action_id=action_id, value=str(action.id)
        )
    assert response.status == 200, response
    calls = team.slack.wait_for_count("response_url", before + 1)
    return calls[-1]


def finished(team: Workspace, action_id: int) -> ActionRequest:
    team.wait_until(
        lambda: stored_action(team, action_id).state in ("succeeded", "failed"),
        timeout=10,
        message="never finished",
    )
    team.settle()
    return stored_action(team, action_id)


def action_count(team: Workspace) -> int:
    with Session(team.engine) as session:
        return len(session.scalars(select(ActionRequest.id)).all())


def latest_action(team: Workspace) -> ActionRequest:
    with Session(team.engine) as session:
        action = session.scalars(select(ActionRequest).order_by(ActionRequest.id.desc())).first()
        assert action is not None
        _ = action.votes
        return action


def stored_action(team: Workspace, action_id: int) -> ActionRequest:
    with Session(team.engine) as session:
        action = session.get(ActionRequest, action_id)
        assert action is not None
        _ = action.votes
        return action


def run_tars(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`tars ...` as an operator runs it, with only the environment given (plus what Python needs)."""
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        input=input,
        capture_output=True,
        text=True,
        env=environment,
        cwd=ROOT,
        timeout=timeout,
        check=False,
    )


# --- real servers from Debian packages ---------------------------------------------------------------------------


def debian_tool(name: str, package: str) -> str:
    """The path of a binary `make test` installs from Debian; missing, the test skips locally and fails in CI."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} is missing; `make test` installs Debian's {package} package")
        pytest.skip(f"{name} is not installed (Debian package {package})")
    return path


def loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
