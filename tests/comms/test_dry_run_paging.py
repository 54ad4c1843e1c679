"""dry_run covers paging: PagerDuty receives nothing, the page is recorded as a dry run, DMs still go."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from bot.comms.comms_records import OutboxMessage
from bot.core.clock import FrozenClock
from bot.core.settings import PagerDutyConfig, ServiceConfig
from sandbox.emulator import SlackEmulator
from tests.fakes.pagerduty_api import FakePagerDuty
from tests.support import Workspace, start_tars


@pytest.fixture
def pagerduty() -> Iterator[FakePagerDuty]:
    with FakePagerDuty() as fake:
        yield fake


@pytest.fixture
def dry_run(
    slack: SlackEmulator, engine: Engine, clock: FrozenClock, pagerduty: FakePagerDuty
) -> Iterator[Workspace]:
    services = {"payments": ServiceConfig(oncall="U0PAYONCALL", pagerduty_routing_key="R0PAYMENTS")}
    with start_tars(
        slack,
        engine,
        clock,
        services=services,
        pagerduty=PagerDutyConfig(events_url=pagerduty.events_url),
        dry_run=True,
    ) as running:
        yield Workspace(running, slack, engine, clock)


def test_a_dry_run_page_reaches_slack_but_not_pagerduty(dry_run: Workspace, pagerduty: FakePagerDuty) -> None:
    incident = dry_run.declare()  # waits until every page is delivered
    dry_run.slack.wait_for(
        "chat.postMessage",
        lambda c: c.args["channel"].startswith("D") and "You are on call for `payments`" in c.args["text"],
    )
    [page] = _pages(dry_run.engine)
    assert page.state == "sent"
    assert page.result == {"dedup_key": f"tars-INC-{incident.id}", "status": "dry_run"}
    # The timeline says what happened: shown, not sent.
    [recorded] = [e for e in dry_run.timeline(incident.id) if "PagerDuty" in e.text]
    assert (
        recorded.text.startswith("DRY RUN: would have paged via PagerDuty")
        and "nothing was sent" in recorded.text
    )

    dry_run.later(timedelta(minutes=15))  # unacknowledged P1: the escalation pages again
    dry_run.wait_until(lambda: len(_pages(dry_run.engine)) == 2 and dry_run.pending_announcements() == 0)
    assert [p.result["status"] for p in _pages(dry_run.engine) if p.result] == ["dry_run", "dry_run"]
    assert pagerduty.events == []


def _pages(engine: Engine) -> list[OutboxMessage]:
    with Session(engine) as session:
        statement = select(OutboxMessage).where(OutboxMessage.kind == "pagerduty").order_by(OutboxMessage.id)
        return list(session.scalars(statement))
