"""Scheduled communications: cadence, escalation, paging, reminders, the resolve guard, restarts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from bot.comms.comms_records import Reminder
from bot.core.clock import FrozenClock
from bot.core.settings import PagerDutyConfig, PolicyConfig, ServiceConfig
from sandbox.emulator import SlackEmulator
from tests.fakes.pagerduty_api import FakePagerDuty
from tests.support import CHANNEL, Workspace, start_tars

MINUTE = timedelta(minutes=1)


@pytest.fixture
def pagerduty() -> Iterator[FakePagerDuty]:
    with FakePagerDuty() as fake:
        yield fake


@pytest.fixture
def paging(
    slack: SlackEmulator, engine: Engine, clock: FrozenClock, pagerduty: FakePagerDuty
) -> Iterator[Workspace]:
    services = {
        "payments": ServiceConfig(
            oncall="U0PAYONCALL", escalation="S0PAYLEADS", pagerduty_routing_key="R0PAYMENTS"
        ),
        "checkout": ServiceConfig(oncall="U0CHKONCALL", escalation="U0CHKLEAD"),
    }
    with start_tars(
        slack,
        engine,
        clock,
        services=services,
        pagerduty=PagerDutyConfig(events_url=pagerduty.events_url),
        policy=PolicyConfig(max_escalations=2),
    ) as running:
        yield Workspace(running, slack, engine, clock)


# --- update cadence -------------------------------------------------------------------------------------------


def test_p1_posts_an_update_every_30_minutes_asking_for_findings_when_there_are_none(
    workspace: Workspace,
) -> None:
    incident = workspace.declare()
    workspace.later(29 * MINUTE)
    assert workspace.channel_posts("📊") == []

    workspace.later(MINUTE)  # 09:30
    [update] = workspace.channel_posts("📊")
    text = update.args["text"]
    assert text.startswith("📊 INCIDENT UPDATE P1: payments\nStatus: Investigating")
    assert "<@U0PAYONCALL> no new findings since the last update" in text
    assert f"`/incident update {incident.id} &lt;findings&gt;`" in text

    workspace.later(30 * MINUTE)  # 10:00
    assert len(workspace.channel_posts("📊")) == 2
    assert [e.kind for e in workspace.timeline(incident.id)].count("update_posted") == 2


def test_a_manual_update_restarts_the_clock(workspace: Workspace) -> None:
    incident = workspace.declare()
    workspace.clock.advance(20 * MINUTE)  # 09:20
    workspace.command(f"update {incident.id} Pool exhausted on the processor side eta=1h")
    workspace.wait_until(lambda: len(workspace.channel_posts("📊")) == 1)
    workspace.settle()

    workspace.later(10 * MINUTE)  # 09:30: the old due time passes quietly
    assert len(workspace.channel_posts("📊")) == 1
    workspace.later(20 * MINUTE)  # 09:50 = manual update + 30 minutes
    posts = workspace.channel_posts("📊")
    assert len(posts) == 2
    assert "Latest findings: Pool exhausted on the processor side" in posts[1].args["text"]
    assert "ETA to resolution: 1h" in posts[1].args["text"]
    assert "no new findings since the last update" in posts[1].args["text"]


def test_p2_is_hourly_and_p3_has_no_cadence(workspace: Workspace) -> None:
    workspace.declare("checkout P2 Checkout failing for 20% of users")
    workspace.declare("payments P3 Receipts delayed")
    workspace.later(30 * MINUTE)
    assert workspace.channel_posts("📊") == []
    workspace.later(30 * MINUTE)
    [update] = workspace.channel_posts("📊")
    assert update.args["text"].startswith("📊 INCIDENT UPDATE P2: checkout")
    workspace.later(3 * 60 * MINUTE)
    assert all("P3" not in call.args["text"].split("\n")[0] for call in workspace.channel_posts("📊"))


def test_a_severity_change_replans_from_the_new_cadence(workspace: Workspace) -> None:
    incident = workspace.declare("payments P3 Receipts delayed")
    workspace.clock.advance(10 * MINUTE)
    workspace.command(f"severity {incident.id} P1")
    workspace.wait_until(lambda: workspace.incident(incident.id).severity == 1)
    workspace.settle()
    workspace.later(19 * MINUTE)  # 09:29
    assert workspace.channel_posts("📊") == []
    workspace.later(MINUTE)  # 09:30 = declared + 30 minutes, P1's cadence
    assert len(workspace.channel_posts("📊")) == 1

    workspace.command(f"severity {incident.id} P3")
    workspace.wait_until(lambda: workspace.incident(incident.id).severity == 3)
    workspace.later(2 * 60 * MINUTE)
    assert len(workspace.channel_posts("📊")) == 1  # P3 has no cadence: nothing more


def test_resolving_stops_the_cadence(workspace: Workspace) -> None:
    incident = workspace.declare()
    workspace.set_status(incident.id, "monitoring")
    workspace.clock.advance(10 * MINUTE)
    workspace.command(f"resolve {incident.id} Bad deploy rolled back")
    workspace.wait_until(lambda: workspace.incident(incident.id).status == "resolved")
    workspace.later(3 * 60 * MINUTE)
    assert workspace.channel_posts("📊") == []
    with Session(workspace.engine) as session:
        kinds = session.scalars(
            select(Reminder.kind).where(Reminder.incident_id == incident.id, Reminder.state == "pending")
        ).all()
    assert sorted(kinds) == ["postmortem", "postmortem"]


# --- escalation and paging ------------------------------------------------------------------------------------


def test_unacknowledged_p1_escalates_pages_again_and_stops_at_the_limit(
    paging: Workspace, pagerduty: FakePagerDuty
) -> None:
    incident = paging.declare()
    assert [e["event_action"] for e in pagerduty.events] == [
        "trigger"
    ]  # the first page goes to PagerDuty too
    assert pagerduty.events[0]["dedup_key"] == "tars-INC-1"
    assert pagerduty.events[0]["payload"]["severity"] == "critical"

    paging.later(14 * MINUTE)
    assert paging.channel_posts("⏫") == []
    paging.later(MINUTE)  # 09:15: the P1 response time has passed
    [escalation] = paging.channel_posts("⏫")
    assert escalation.args["text"].startswith(
        "⏫ ESCALATION 1/2 [P1] payments: INC-1 has not been acknowledged"
    )
    assert "<!subteam^S0PAYLEADS> <@U0PAYONCALL> please respond" in escalation.args["text"]
    assert len(pagerduty.events) == 2
    dms = [c for c in paging.slack.calls_to("chat.postMessage") if c.args["channel"].startswith("D")]
    assert dms[-1].args["text"].startswith("⏫ Escalation 1, still not acknowledged.")

    paging.later(15 * MINUTE)
    paging.later(15 * MINUTE)
    paging.later(60 * MINUTE)
    assert [c.args["text"][:16] for c in paging.channel_posts("⏫")] == [
        "⏫ ESCALATION 1/2",
        "⏫ ESCALATION 2/2",
    ]
    assert len(pagerduty.events) == 3
    assert paging.incident(incident.id).escalations == 2
    assert [e.kind for e in paging.timeline(incident.id)].count("escalated") == 2


def test_acknowledging_in_time_prevents_escalation(paging: Workspace, pagerduty: FakePagerDuty) -> None:
    incident = paging.declare("checkout P2 Checkout failing for 20% of users")
    paging.clock.advance(40 * MINUTE)
    paging.command(f"ack {incident.id}", user="U0CHKONCALL")
    paging.wait_until(lambda: paging.incident(incident.id).acknowledged_at is not None)
    paging.later(3 * 60 * MINUTE)
    assert paging.channel_posts("⏫") == []
    assert pagerduty.events == []  # checkout has no PagerDuty routing key: Slack DMs only


def test_a_user_escalation_target_is_dmed_too(paging: Workspace) -> None:
    paging.declare("checkout P2 Checkout failing for 20% of users")
    paging.later(60 * MINUTE)
    opened = [c.args["users"] for c in paging.slack.calls_to("conversations.open")]
    assert opened.count("U0CHKONCALL") == 2 and opened.count("U0CHKLEAD") == 1
    assert "<@U0CHKLEAD> <@U0CHKONCALL> please respond" in paging.channel_posts("⏫")[0].args["text"]


def test_pagerduty_outage_is_retried_without_losing_the_page(
    paging: Workspace, pagerduty: FakePagerDuty
) -> None:
    pagerduty.fail_next(503, times=2)
    paging.declare(settle=False)
    paging.wait_until(lambda: paging.delivery_attempts("pagerduty") == 1)  # tried once, right after declaring
    assert pagerduty.events == []
    paging.later(5 * MINUTE)
    paging.later(5 * MINUTE)
    assert len(pagerduty.events) == 1
    assert any(e.kind == "paged" and "PagerDuty" in e.text for e in paging.timeline(1))


# --- resolve guard --------------------------------------------------------------------------------------------


def test_resolving_needs_ten_minutes_of_monitoring_unless_forced(workspace: Workspace) -> None:
    incident = workspace.declare()
    workspace.command(f"resolve {incident.id} Bad deploy", user="U0BOB")
    workspace.ephemeral_to(
        "U0BOB", "INC-1 is Investigating, not Monitoring; the runbook asks for at least 10m"
    )

    workspace.set_status(incident.id, "monitoring")
    workspace.clock.advance(4 * MINUTE)
    workspace.command(f"resolve {incident.id} Bad deploy", user="U0BOB")
    workspace.ephemeral_to(
        "U0BOB",
        "INC-1 has been Monitoring for 4m; the runbook asks for at least 10m before resolving (ready at 09:10 UTC)",
    )
    assert workspace.incident(incident.id).status == "monitoring"

    workspace.command(f"resolve {incident.id} Bad deploy --force", user="U0BOB")
    workspace.wait_until(lambda: workspace.incident(incident.id).status == "resolved")
    override = next(e for e in workspace.timeline(incident.id) if e.kind == "resolve_guard_overridden")
    assert override.actor == "U0BOB"
    assert "Resolved with --force" in override.text
    resolved = next(e for e in workspace.timeline(incident.id) if e.kind == "resolved")
    assert resolved.data["forced"] is True


def test_after_ten_minutes_of_monitoring_resolving_needs_no_force(workspace: Workspace) -> None:
    incident = workspace.declare()
    workspace.set_status(incident.id, "monitoring")
    workspace.clock.advance(10 * MINUTE)
    workspace.command(f"resolve {incident.id} Bad deploy")
    workspace.wait_until(lambda: workspace.incident(incident.id).status == "resolved")
    assert not any(e.kind == "resolve_guard_overridden" for e in workspace.timeline(incident.id))


# --- after resolution -----------------------------------------------------------------------------------------


def _resolve(workspace: Workspace, incident_id: int, extra: str = "") -> None:
    workspace.set_status(incident_id, "monitoring")
    workspace.clock.advance(10 * MINUTE)
    workspace.command(f"resolve {incident_id} Bad deploy {extra}".strip())
    workspace.wait_until(lambda: workspace.incident(incident_id).status == "resolved")
    workspace.settle()


def test_p1_postmortem_reminders_a_day_before_and_when_due(workspace: Workspace) -> None:
    incident = workspace.declare()
    workspace.command(f"ack {incident.id}", user="U0BOB")
    workspace.wait_until(lambda: workspace.incident(incident.id).commander == "U0BOB")
    _resolve(workspace, incident.id)  # resolved at 09:10, post-mortem due 11-24 09:10

    workspace.later(23 * 60 * MINUTE)
    assert not [
        c
        for c in workspace.slack.calls_to("chat.postMessage")
        if "the post-mortem for" in c.args.get("text", "")
    ]
    workspace.later(60 * MINUTE)  # 11-23 09:10: a day before
    reminders = [
        c
        for c in workspace.slack.calls_to("chat.postMessage")
        if "the post-mortem for" in c.args.get("text", "")
    ]
    assert len(reminders) == 2  # in the card's thread and by DM to the commander
    assert (
        "<@U0BOB> the post-mortem for INC-1 [P1] payments is due in 24 hours (2026-11-24 09:10 UTC)"
        in reminders[0].args["text"]
    )
    workspace.later(24 * 60 * MINUTE)
    reminders = [
        c
        for c in workspace.slack.calls_to("chat.postMessage")
        if "the post-mortem for" in c.args.get("text", "")
    ]
    assert len(reminders) == 4 and "is due now" in reminders[-1].args["text"]


@pytest.mark.parametrize(
    ("declare", "users", "reminded"),
    [
        ("payments P1 Payments down", "", True),
        ("checkout P2 Checkout degraded", "users=500", True),
        ("checkout P2 Checkout degraded", "users=50", False),
        ("checkout P3 Slow lookups", "users=5000", False),
    ],
)
def test_customer_notification_reminder_on_resolve(
    workspace: Workspace, declare: str, users: str, reminded: bool
) -> None:
    incident = workspace.declare(declare)
    _resolve(workspace, incident.id, users)
    posts = workspace.channel_posts("📣")
    assert bool(posts) == reminded
    if reminded:
        assert "please notify affected customers" in posts[0].args["text"]


# --- the generic facility and restarts ------------------------------------------------------------------------


def test_remind_at_posts_in_the_thread_when_due(workspace: Workspace) -> None:
    incident = workspace.declare()
    tars = workspace.running.app.tars
    with Session(workspace.engine) as session, session.begin():
        stored = session.get(type(workspace.incident(incident.id)), incident.id)
        assert stored is not None
        tars.planner.remind_at(
            session,
            stored,
            workspace.clock.now() + 5 * MINUTE,
            "Error rate should be < 0.1% by now.",
            ["U0ALICE"],
        )
    workspace.later(4 * MINUTE)
    workspace.later(MINUTE)
    note = workspace.slack.wait_for(
        "chat.postMessage", lambda c: str(c.args.get("text", "")).startswith("⏰")
    )
    assert note.args["text"] == "⏰ <@U0ALICE> Error rate should be < 0.1% by now."
    assert note.args["thread_ts"] == workspace.incident(incident.id).card_ts
    assert any(e.kind == "reminder" for e in workspace.timeline(incident.id))


def test_a_restarted_tars_posts_what_became_due_while_it_was_down_once_marked_late(
    slack: SlackEmulator, engine: Engine, clock: FrozenClock
) -> None:
    with start_tars(slack, engine, clock) as first:
        Workspace(first, slack, engine, clock).declare()
    clock.advance(2 * 60 * MINUTE + 7 * MINUTE)  # down from 09:00 to 11:07: four updates were due
    with start_tars(slack, engine, clock) as second:
        again = Workspace(second, slack, engine, clock)
        again.tick()
        again.tick()
        [late] = again.channel_posts("📊")
        assert (
            "⏰ Late: this update was due at 2026-11-22 09:30 UTC; TARS was not running then."
            in late.args["text"]
        )
        assert any(e.kind == "update_posted" and "(late)" in e.text for e in again.timeline(1))
        again.later(29 * MINUTE)
        assert len(again.channel_posts("📊")) == 1
        again.later(MINUTE)  # 11:37: the cadence continues from the late post
        assert len(again.channel_posts("📊")) == 2
        assert "⏰ Late" not in again.channel_posts("📊")[1].args["text"]
        assert again.channel_posts("📊")[1].args["channel"] == CHANNEL


def test_a_broken_reminder_is_set_aside_and_the_others_still_go_out(workspace: Workspace) -> None:
    incident = workspace.declare()
    with Session(workspace.engine) as session, session.begin():
        session.add(
            Reminder(
                incident_id=incident.id,
                kind="action_expiry",
                due_at=workspace.clock.now(),
                payload={"action_id": "not-a-number"},
                state="pending",
                created_at=workspace.clock.now(),
                late=False,
            )
        )
    workspace.later(30 * MINUTE)
    assert len(workspace.channel_posts("📊")) == 1  # the update due at 09:30 still went out
    with Session(workspace.engine) as session:
        states = dict(
            session.execute(
                select(Reminder.kind, Reminder.state).where(Reminder.kind == "action_expiry")
            ).all()
        )
    assert states == {"action_expiry": "failed"}
