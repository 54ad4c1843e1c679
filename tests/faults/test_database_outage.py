"""Postgres goes away for 10 s while posts are being delivered: nothing is stranded, nothing is sent twice."""

from __future__ import annotations

import time

import pytest

from sandbox.emulator import SlackEmulator
from tests.faults.support import (
    Fleet,
    PrivatePostgres,
    Rows,
    card_shows,
    everything_posted_once,
    fail_with,
    seen,
    wait_until,
)

pytestmark = pytest.mark.faults

OUTAGE = 10.0  # seconds the database is down: the fault itself
UPDATES = 5


def test_posts_queued_before_a_database_outage_go_out_once_soon_after_it(
    fleet: Fleet, rows: Rows, slack: SlackEmulator, private_postgres: PrivatePostgres
) -> None:
    slack.delay("chat.postMessage", seconds=1)  # a slow Slack keeps a post in flight most of the time
    tars = fleet.start()
    fleet.command(tars, "declare payments P1 checkout broken")
    assert wait_until(lambda: bool(rows.incidents()), timeout=30), "the declared incident was never stored"
    incident_id = rows.incidents()[0].id
    findings = [f"findings {n}" for n in range(1, UPDATES + 1)]
    for text in findings:
        fleet.command(tars, f"update {incident_id} {text}")
    assert wait_until(lambda: rows.updates_stored(incident_id) == UPDATES, timeout=30), "updates not stored"

    # The first 📊 post is on its way to Slack: take the database away under it.
    slack.wait_for_arrival("chat.postMessage", lambda a: str(a.args["text"]).startswith("📊"), timeout=30)
    private_postgres.stop()
    time.sleep(OUTAGE)  # the outage itself; the post in flight lands in Slack while the database is gone
    private_postgres.start()

    everything = wait_until(lambda: seen(slack).has_all(findings), timeout=20)
    problems = [] if everything else ["not every post went out within 20 s of the database coming back"]
    current = seen(slack)
    problems += everything_posted_once(current, findings)
    if everything and not wait_until(lambda: card_shows(slack, current.cards[0], findings[-1]), timeout=10):
        problems.append(f"the 🚨 card never showed the latest findings ({findings[-1]!r})")
    fail_with(problems)
