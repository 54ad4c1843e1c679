"""SIGKILL right after `declare` was answered 200: the incident must still be stored and announced."""

from __future__ import annotations

import pytest

from bot.emulator import SlackEmulator
from tests.faults.support import (
    CHANNEL,
    REPORTER,
    Fleet,
    Rows,
    everything_posted_once,
    fail_with,
    seen,
    wait_until,
)

pytestmark = pytest.mark.faults


def test_sigkill_right_after_declare_was_answered_loses_nothing(
    fleet: Fleet, rows: Rows, slack: SlackEmulator
) -> None:
    first = fleet.start()
    response = fleet.client(first).slash_command(
        "declare payments P1 checkout broken", user_id=REPORTER, channel_id=CHANNEL
    )
    first.kill()  # the instant the 200 is in: Slack has already told the person it worked
    assert response.status == 200, response

    fleet.start()
    wait_until(lambda: bool(rows.incidents()) and seen(slack).has_all([]), timeout=30)

    problems = []
    stored = rows.incidents()
    if not stored:
        problems.append("the incident that was answered 200 was never stored (no incident row)")
    elif (stored[0].service, stored[0].severity, stored[0].description) != ("payments", 1, "checkout broken"):
        problems.append(
            f"the stored incident is not the one declared: {stored[0].ref} {stored[0].description!r}"
        )
    problems += everything_posted_once(seen(slack), findings=[])
    fail_with(problems)
