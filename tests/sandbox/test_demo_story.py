"""The demo story `make run` offers a newcomer, played twice: by `tars sandbox --script demo` in the terminal, and by
clicking through the sandbox's page in a real headless Chromium.

payments had a bad deploy (2.4.0) just before the sandbox started, so its error rate is 5%: an alert fires, it is
declared P1, the on-call acknowledges, you ask for a rollback, an approver approves, the simulated cluster rolls
back, the simulated metrics recover, TARS validates the fix at +5 and +10 minutes, and resolving by the numbers
works. Everything runs for real against the demo world (sandbox/demo_world.py); nothing is a dry run.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.core.settings import Config
from sandbox.repl import Sandbox
from tests.sandbox.browser import SUBMIT, Browser, message_xpath
from tests.support import run_tars


def test_the_demo_script_plays_the_whole_story_in_the_terminal(tmp_path: Path) -> None:
    result = run_tars(
        "sandbox",
        "--script",
        "demo",
        "--port",
        "0",
        env={"DATABASE_URL": f"sqlite:///{tmp_path / 'sandbox.db'}"},
        timeout=180,
    )
    out = result.stdout
    assert result.returncode == 0, result.stderr + out
    story = [
        "🔔 [firing] payments: HighErrorRate — 5xx at 5.00% of requests",  # the alert's triage card
        "a form opened: Declare an incident",  # Declare P1, filled in from the alert
        "🚨 [P1] Incident declared: HighErrorRate",
        "<@U0PAYONCALL> acknowledged INC-1.",
        "image app=acme/payments:2.4.0 → acme/payments:2.3.1",
        "✅ the runbook's rollback rule holds",  # on the approval card, from the deploy time and the onset
        "Approved; running #1 now.",
        "✅ INC-1: remediation #1 succeeded",
        "+5 min: *holding*",
        "✓ Error rate below 0.1% within 5 minutes of the fix: now 0.05%",
        "+10 min: *holding*",
        "Resolved INC-1: error rate under 0.1% for",
        "✅ INCIDENT RESOLVED P1: payments",
        "📝 Post-mortem draft for INC-1",
    ]
    positions = [out.find(line) for line in story]
    missing = [line for line, at in zip(story, positions, strict=True) if at < 0]
    assert not missing, f"the story lacks {missing}:\n{out}"
    assert positions == sorted(positions), "the story's steps came out of order"
    assert "Traceback" not in out + result.stderr


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    running = Sandbox(Config(database_url=f"sqlite:///{tmp_path / 'sandbox.db'}"), io.StringIO())
    running.start()
    try:
        yield running
    finally:
        running.stop()


def test_a_newcomer_plays_the_demo_story_in_the_browser(sandbox: Sandbox, browser: Browser) -> None:
    browser.open(sandbox.page.url)
    browser.shot("start")

    # 1. An alert fires (the page's own control for the demo's alert source): a triage card asks if it is real.
    browser.click("//div[@id='controls']/button[contains(., 'Alert')]", "the alert control")
    triage = browser.message_text("[firing] payments: HighErrorRate")
    assert "5xx at 5.00% of requests" in triage
    browser.shot("alert")

    # 2. Declare P1 opens the declare form, filled in from the alert.
    browser.press("[firing] payments: HighErrorRate", "Declare P1")
    assert "Declare" in browser.modal_text()
    browser.click(SUBMIT, "Declare")
    browser.modal_closed()
    card = browser.message_text("Incident declared: HighErrorRate")
    assert "INC-1 · payments" in card
    browser.shot("declared")

    # 3. The on-call acknowledges on the card.
    browser.act_as("U0PAYONCALL")
    browser.press("Incident declared: HighErrorRate", "Acknowledge")
    browser.until_message(
        "Incident declared: HighErrorRate",
        lambda text: "Acknowledged" in text and "Pat Payments at" in text,
        "the card never showed the acknowledgement",
    )
    browser.shot("acknowledged")

    # 4. You ask for a rollback; TARS plans it against the simulated cluster.
    browser.act_as("U0YOU")
    browser.command("/incident rollback INC-1")
    browser.ephemeral_text("Requested remediation #1")
    browser.shot("rollback-requested")

    # 5. An approver approves on the card in the incident's thread (a confirm dialog first).
    browser.act_as("U0ALEX")
    browser.click(
        message_xpath("Incident declared: HighErrorRate") + "//button[contains(@class, 'replies-link')]",
        "the incident's thread",
    )
    approval = browser.message_text("Remediation #1 for INC-1", where="thread-messages")
    assert "acme/payments:2.4.0 → acme/payments:2.3.1" in approval
    assert "✅ the runbook's rollback rule holds" in approval
    browser.click(
        message_xpath("Remediation #1 for INC-1", "thread-messages")
        + "//button[normalize-space() = 'Approve']",
        "Approve",
    )
    browser.click(
        "//div[contains(@class, 'confirm-dialog')]//button[normalize-space() = 'Approve']", "confirm"
    )
    browser.message_text("remediation #1 succeeded")
    assert sandbox.world.kubernetes.deployment("production", "payments")["spec"]["template"]["spec"][
        "containers"
    ][0]["image"].endswith(":2.3.1")
    browser.shot("rolled-back")

    # 6. Five minutes later TARS validates the fix itself, in the thread, with the chart.
    browser.click("//div[@id='controls']/button[contains(., 'minutes later')]", "5 minutes later")
    verdict = browser.message_text("+5 min", where="thread-messages")
    assert "holding" in verdict
    assert "✓ Error rate below 0.1% within 5 minutes of the fix: now 0.05%" in verdict
    browser.shot("validated")

    # 7. Ten more minutes, then resolving by the numbers.
    for _ in range(2):
        browser.click("//div[@id='controls']/button[contains(., 'minutes later')]", "5 minutes later")
    browser.message_text("+10 min", where="thread-messages")
    browser.act_as("U0PAYONCALL")
    browser.command("/incident resolve INC-1 Bad deploy of payments 2.4.0; rolled back users=1200")
    browser.message_text("INCIDENT RESOLVED P1: payments")
    browser.ephemeral_text("Resolved INC-1: error rate under 0.1%")
    browser.shot("resolved")
