"""SIGKILL right after `declare` was answered 200: the incident must still be stored and announced."""

from __future__ import annotations

import pytest

from sandbox.emulator import SlackEmulator
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


def test_sigkill_right_after_a_slow_command_was_answered_still_carries_it_out(
    fleet: Fleet, rows: Rows, slack: SlackEmulator
) -> None:
    """An "On it" answer is a promise: the command is committed before it is said, so a restart keeps it."""
    first = fleet.start()
    fleet.command(first, "declare payments P2 checkout broken")
    fleet.command(first, "resolve 1 bad deploy --force")
    response = fleet.client(first).slash_command("postmortem 1", user_id=REPORTER, channel_id=CHANNEL)
    first.kill()
    assert response.status == 200, response
    assert "On it" in response.body, response.body

    fleet.start()

    def drafts() -> list[str]:
        return [
            str(call.args.get("text"))
            for call in slack.calls_to("chat.postMessage")
            if call.ok and str(call.args.get("text", "")).startswith("📝 Post-mortem draft for INC-1")
        ]

    def told() -> list[str]:
        return [
            str(call.args.get("text"))
            for call in slack.ephemerals(user=REPORTER)
            if "Posted the post-mortem draft" in str(call.args.get("text", ""))
        ]

    wait_until(lambda: bool(drafts()) and bool(told()), timeout=30)
    problems = []
    if len(drafts()) != 1:
        problems.append(f"the post-mortem draft was posted {len(drafts())} times, not once")
    if len(told()) != 1:
        problems.append(f"the reporter was told {len(told())} times that the draft is posted, not once")
    if rows.timeline_kinds(1).count("postmortem_draft") != 1:
        problems.append(f"the timeline does not record the draft once: {rows.timeline_kinds(1)}")
    fail_with(problems)
