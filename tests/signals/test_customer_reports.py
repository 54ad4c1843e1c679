"""Customer reports: one is recorded, enough distinct ones about a service within the window put up a triage card
listing them, and a report about a service with an open incident is added to it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine

from bot.core.clock import FrozenClock
from bot.ingress.signal_endpoints import sign_webhook
from sandbox.emulator import SlackEmulator
from tests.signals.signal_helpers import post, triage_cards
from tests.support import CHANNEL, Workspace, start_tars

SECRET = "reports-webhook-secret"


@pytest.fixture
def team(slack: SlackEmulator, engine: Engine, clock: FrozenClock) -> Iterator[Workspace]:
    with start_tars(slack, engine, clock, signal_webhook_secret=SECRET) as running:
        yield Workspace(running, slack, engine, clock)


def report(team: Workspace, words: str, *, user: str, service: str = "payments") -> str:
    answer = team.command(f"report {service} {words}", user=user)
    assert answer.status == 200
    return str(json.loads(answer.body)["text"])


def test_three_distinct_reports_within_five_minutes_put_up_one_card_listing_them(team: Workspace) -> None:
    assert "1 of 3 reports about payments within 5 minutes" in report(
        team, "Card declined twice", user="U0ALICE"
    )
    assert "2 of 3" in report(team, "Checkout spinner never ends", user="U0BOB")
    assert triage_cards(team) == []
    reply = report(team, "Payment failed <script> & retried", user="U0CHKONCALL")
    assert "3 reports about payments in 5 minutes; a triage card is up" in reply
    [card] = triage_cards(team)
    assert card.text == "🔔 [firing] payments: 3 customer reports about payments in 5 minutes"
    shown = json.dumps(card.blocks)
    assert "<@U0ALICE>: Card declined twice" in shown and "<@U0BOB>: Checkout spinner never ends" in shown
    assert "Payment failed &lt;script&gt; &amp; retried" in shown
    assert "Declare P1" in shown and "<@U0PAYONCALL>" in shown
    # A fourth report joins the same card.
    assert "added to the 4 reports about payments" in report(team, "Refund missing", user="U0BOB")
    [card] = triage_cards(team)
    assert card.text == "🔔 [firing] payments: 4 customer reports about payments in 5 minutes"
    assert "Refund missing" in json.dumps(card.blocks)


def test_the_same_words_again_or_reports_outside_the_window_do_not_add_up(team: Workspace) -> None:
    for _ in range(3):
        report(team, "Card declined", user="U0ALICE")
    assert triage_cards(team) == []
    team.clock.advance(timedelta(minutes=6))
    report(team, "Checkout spinner never ends", user="U0BOB")
    assert "2 of 3" in report(team, "Payment failed", user="U0CHKONCALL")
    assert triage_cards(team) == []


def test_a_report_about_a_service_with_an_open_incident_is_added_to_it(team: Workspace) -> None:
    incident = team.declare()
    reply = report(team, "Card declined twice", user="U0BOB")
    assert f"added to INC-{incident.id}" in reply
    team.settle()
    event = next(e for e in team.timeline(incident.id) if e.kind == "customer_report")
    assert event.actor == "U0BOB"
    thread = team.slack.thread_replies(CHANNEL, str(team.incident(incident.id).card_ts))
    assert any(m.text == "📣 Customer report via <@U0BOB>: Card declined twice" for m in thread)


def test_reports_from_a_support_desk_webhook_count_too(team: Workspace) -> None:
    def send(payload: dict[str, str]) -> tuple[int, dict[str, object]]:
        body = json.dumps(payload).encode()
        timestamp = str(int(time.time()))
        headers = {"X-TARS-Timestamp": timestamp, "X-TARS-Signature": sign_webhook(SECRET, timestamp, body)}
        return post(team, "/signals/webhook", body, headers)

    base = {"kind": "customer_report", "service": "checkout"}
    status, answer = send({**base, "service": "billing", "details": "x"})
    assert status == 400 and "unknown service" in str(answer["error"])
    assert send({**base, "details": "no details"} | {"details": ""})[0] == 400
    for n, who in enumerate(["desk:ticket-1", "desk:ticket-2", "desk:ticket-3"]):
        status, answer = send({**base, "details": f"Cart empties itself ({n})", "reporter": who})
        assert status == 200
    assert answer["triage_posted"] is True
    [card] = triage_cards(team)
    assert card.text == "🔔 [firing] checkout: 3 customer reports about checkout in 5 minutes"
    assert "desk:ticket-2: Cart empties itself (1)" in json.dumps(card.blocks)


def test_report_needs_a_catalog_service_and_the_words(team: Workspace) -> None:
    refusal = str(json.loads(team.command("report billing it broke").body)["text"])
    assert "Unknown service `billing`" in refusal and "Usage: `/incident report &lt;service&gt;" in refusal
    answer = json.loads(team.command("report payments").body)["text"]
    assert "Missing what the customer says" in answer
