"""`tars sandbox` — what `make run` starts without Slack credentials — walked through as a new user would."""

from __future__ import annotations

from pathlib import Path

from tests.support import run_tars

WALKTHROUGH = """\
/incident declare payments P1 Card payments failing with 502 impact="All card checkouts fail"
as U0PAYONCALL
1
as you
/incident status INC-1 monitoring
/incident update 1 Error rate back under 0.1% after rollback eta="10 minutes"
/incident declare checkout P3 Address lookups slow
card INC-1
buttons
6
Bad deploy of payments v2.3
lots
force
1200
/incident frobnicate
quit
"""


def test_a_new_user_can_run_a_p1_from_declaration_to_resolution(tmp_path: Path) -> None:
    result = run_tars(
        "sandbox",
        "--script",
        "-",
        "--port",
        "0",
        env={"DATABASE_URL": f"sqlite:///{tmp_path / 'sandbox.db'}"},
        input=WALKTHROUGH,
        timeout=120,
    )
    out = result.stdout
    assert result.returncode == 0, result.stderr + out
    assert "🚨 [P1] Incident declared: Card payments failing with 502" in out
    assert "Impact: All card checkouts fail" in out
    assert "<@U0PAYONCALL> acknowledged INC-1." in out
    assert "Status: Monitoring" in out
    assert "📊 INCIDENT UPDATE P1: payments" in out
    assert "ETA to resolution: 10 minutes" in out
    # The Resolve button (number 6 on INC-1's acknowledged, monitoring card) opens the form.
    assert "[6] Resolve" in out
    assert "a form opened: Resolve INC-1" in out
    assert "✗ users_affected: A whole number of users" in out  # "lots" is refused, the form asks again
    assert "✅ INCIDENT RESOLVED P1: payments" in out
    assert "Root cause: Bad deploy of payments v2.3" in out
    assert "Users affected: 1,200" in out
    assert "Post-mortem: Scheduled for" in out
    assert "Unknown sub-command `frobnicate`" in out
