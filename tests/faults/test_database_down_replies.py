"""While the database is down, a command or a click is answered in TARS's words, within Slack's 3 s, and
nothing is stored."""

from __future__ import annotations

import time
import urllib.error
import urllib.request

import pytest

from bot.core.clock import FrozenClock
from bot.core.database import make_engine, upgrade_database
from bot.slack import rendering
from sandbox.emulator import SlackEmulator
from tests.faults.support import PrivatePostgres
from tests.support import CHANNEL, Workspace, start_tars

pytestmark = pytest.mark.faults


def _healthz(url: str) -> int:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def test_while_the_database_is_down_people_are_told_so_and_nothing_is_stored(
    private_postgres: PrivatePostgres, slack: SlackEmulator, clock: FrozenClock
) -> None:
    engine = make_engine(private_postgres.url)
    upgrade_database(engine)
    try:
        with start_tars(slack, engine, clock) as running:
            team = Workspace(running, slack, engine, clock)
            incident = team.declare()
            assert incident.card_ts is not None
            incidents, events = team.incident_count(), team.event_count()

            private_postgres.stop()
            started = time.monotonic()
            declared = team.client.slash_command(
                "declare payments P1 Checkout down too", user_id="U0ALICE", channel_id=CHANNEL
            )
            command_seconds = time.monotonic() - started
            started = time.monotonic()
            clicked = team.client.click_button(
                user_id="U0BOB",
                channel_id=CHANNEL,
                message_ts=incident.card_ts,
                action_id=rendering.ACK_ACTION,
                value=str(incident.id),
            )
            click_seconds = time.monotonic() - started

            assert declared.status == 200
            assert declared.json() == {"response_type": "ephemeral", "text": rendering.DATABASE_DOWN_TEXT}
            assert command_seconds < 3, f"the command was answered after {command_seconds:.1f} s"
            assert clicked.status == 200
            assert click_seconds < 3, f"the click was answered after {click_seconds:.1f} s"
            team.ephemeral_to("U0BOB", rendering.DATABASE_DOWN_TEXT)
            assert _healthz(running.url) == 503

            private_postgres.start()
            team.wait_until(lambda: _healthz(running.url) == 200, timeout=15, message="never healthy again")
            assert team.incident_count() == incidents
            assert team.event_count() == events
            assert team.incident(incident.id).acknowledged_at is None
    finally:
        engine.dispose()
