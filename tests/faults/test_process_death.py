"""TARS dies while a post is on its way to a slow Slack: SIGTERM (what Kubernetes sends) and SIGKILL.

Either way a second process must take over within a scheduler tick (1 s here), not when a 5-minute lease runs
out, and every post (card, 📊 updates, the on-call's DM) must appear exactly once.
"""

from __future__ import annotations

import signal
import time

import pytest

from sandbox.emulator import SlackEmulator
from tests.faults.support import (
    Fleet,
    Rows,
    TarsProcess,
    card_shows,
    everything_posted_once,
    fail_with,
    seen,
    wait_until,
)

pytestmark = pytest.mark.faults

FINDINGS = ["findings 1", "findings 2"]
TAKE_OVER = 15.0  # seconds from starting the second process until every post is out


def _declare_and_queue_updates(fleet: Fleet, rows: Rows, tars: TarsProcess) -> None:
    fleet.command(tars, "declare payments P1 checkout broken")
    assert wait_until(lambda: bool(rows.incidents()), timeout=30), "the declared incident was never stored"
    incident_id = rows.incidents()[0].id
    for text in FINDINGS:
        fleet.command(tars, f"update {incident_id} {text}")
    assert wait_until(lambda: rows.updates_stored(incident_id) == len(FINDINGS), timeout=30), (
        "the updates were never stored"
    )


def _card_in_flight(slack: SlackEmulator) -> None:
    slack.wait_for_arrival("chat.postMessage", lambda a: str(a.args["text"]).startswith("🚨"), timeout=30)


def _second_process_delivers_everything_once(fleet: Fleet, slack: SlackEmulator) -> list[str]:
    slack.delay("chat.postMessage", seconds=0.5)  # Slack is still slowish; the second process must cope
    started = time.monotonic()
    fleet.start()
    remaining = TAKE_OVER - (time.monotonic() - started)
    everything = wait_until(lambda: seen(slack).has_all(FINDINGS), timeout=remaining)
    problems = [] if everything else [f"the second process did not deliver every post within {TAKE_OVER:g} s"]
    current = seen(slack)
    problems += everything_posted_once(current, FINDINGS)
    if everything and not wait_until(lambda: card_shows(slack, current.cards[0], FINDINGS[-1]), timeout=10):
        problems.append(f"the 🚨 card never showed the latest findings ({FINDINGS[-1]!r})")
    return problems


def test_sigterm_during_a_slow_post_exits_cleanly_and_a_new_process_takes_over(
    fleet: Fleet, rows: Rows, slack: SlackEmulator
) -> None:
    slack.delay("chat.postMessage", seconds=3)
    first = fleet.start()
    _declare_and_queue_updates(fleet, rows, first)
    _card_in_flight(slack)

    first.signal(signal.SIGTERM)
    code = first.wait_exit(timeout=10)
    problems = []
    if code != 0:
        problems.append(
            "SIGTERM: still running after 10 s" if code is None else f"SIGTERM: exit code {code} (expected 0)"
        )
        first.kill()
    problems += _second_process_delivers_everything_once(fleet, slack)
    fail_with(problems)


def test_sigkill_during_a_slow_post_a_new_process_sends_the_rest_once(
    fleet: Fleet, rows: Rows, slack: SlackEmulator
) -> None:
    slack.delay("chat.postMessage", seconds=2)
    first = fleet.start()
    _declare_and_queue_updates(fleet, rows, first)
    _card_in_flight(slack)

    first.signal(signal.SIGKILL)
    assert first.wait_exit(timeout=10) == -signal.SIGKILL
    # Slack finishes the post it was given even though TARS never heard back: its outcome is unknown to TARS.
    slack.wait_for("chat.postMessage", lambda c: str(c.args["text"]).startswith("🚨"), timeout=10)
    fail_with(_second_process_delivers_everything_once(fleet, slack))
