"""Alerts in: each endpoint's authentication, routing, the triage card and what people do with it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine

from bot.core.clock import FrozenClock
from bot.core.settings import AutoDeclareRule, SignalsConfig
from bot.ingress.signal_endpoints import sign_webhook
from bot.slack import rendering
from sandbox.emulator import SlackEmulator
from tests.core.test_metrics import sample, scrape
from tests.signals.signal_helpers import open_declare_form, post, signal_count, stored_signal, triage_cards
from tests.support import CHANNEL, Workspace, start_tars

TOKEN = "alertmanager-test-token"
SECRET = "webhook-test-secret"


@pytest.fixture
def team(slack: SlackEmulator, engine: Engine, clock: FrozenClock) -> Iterator[Workspace]:
    with start_tars(slack, engine, clock, alertmanager_token=TOKEN, signal_webhook_secret=SECRET) as running:
        yield Workspace(running, slack, engine, clock)


def alert(
    name: str = "HighErrorRate",
    *,
    service: str | None = "payments",
    status: str = "firing",
    fingerprint: str = "f1a2b3c4",
    summary: str = "5xx above 5% for 5 minutes",
) -> dict[str, Any]:
    labels = {"alertname": name, "severity": "critical"}
    if service is not None:
        labels["service"] = service
    return {
        "status": status,
        "labels": labels,
        "annotations": {"summary": summary},
        "startsAt": "2026-11-01T08:55:00.123456789Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.example/graph",
        "fingerprint": fingerprint,
    }


def group(*alerts: dict[str, Any], status: str = "firing") -> bytes:
    payload = {
        "version": "4",
        "groupKey": '{}:{alertname="HighErrorRate"}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "tars",
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example",
        "alerts": list(alerts),
    }
    return json.dumps(payload).encode()


def from_alertmanager(team: Workspace, body: bytes, token: str = TOKEN) -> tuple[int, dict[str, Any]]:
    return post(team, "/signals/alertmanager", body, {"Authorization": f"Bearer {token}"})


def signed_webhook(team: Workspace, payload: dict[str, Any], *, age: int = 0, secret: str = SECRET) -> int:
    body = json.dumps(payload).encode()
    timestamp = str(int(time.time()) - age)
    headers = {"X-TARS-Timestamp": timestamp, "X-TARS-Signature": sign_webhook(secret, timestamp, body)}
    return post(team, "/signals/webhook", body, headers)[0]


# --- authentication ---------------------------------------------------------------------------------------------


def test_an_alert_with_the_bearer_token_posts_a_triage_card_naming_the_oncall(team: Workspace) -> None:
    status, answer = from_alertmanager(team, group(alert()))
    assert (status, answer) == (200, {"new": 1, "repeated": 0, "attached": 0, "declared": 0})
    [card] = triage_cards(team)
    assert card.text == "🔔 [firing] payments: HighErrorRate — 5xx above 5% for 5 minutes"
    shown = json.dumps(card.blocks)
    assert "<@U0PAYONCALL>" in shown and "alertmanager" in shown and "severity=critical" in shown
    buttons = [e["text"]["text"] for b in card.blocks if b["type"] == "actions" for e in b["elements"]]
    assert buttons == ["Declare P1", "Declare P2", "Dismiss as fluke"]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": f"Bearer {TOKEN}x"},
    ],
)
def test_an_alert_without_the_token_is_refused_and_changes_nothing(
    team: Workspace, headers: dict[str, str]
) -> None:
    status, answer = post(team, "/signals/alertmanager", group(alert()), headers)
    assert status == 401 and "bearer token" in answer["error"]
    assert signal_count(team) == 0 and team.pending_announcements() == 0


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"not json", "not JSON"),
        (b"[]", "JSON object"),
        (json.dumps({"version": "3", "alerts": []}).encode(), "version 4"),
        (group(), "non-empty list"),
        (group({**alert(), "labels": {"severity": "page"}}), "alertname"),
        (group({**alert(), "status": "pending"}), "'firing' or 'resolved'"),
        (group({**alert(), "fingerprint": ""}), "fingerprint is missing"),
        (group({**alert(), "labels": {"alertname": 5}}), "object of strings"),
        (group({**alert(), "startsAt": "yesterday"}), "RFC 3339"),
    ],
)
def test_a_malformed_alert_gets_400_saying_what_is_wrong(team: Workspace, body: bytes, problem: str) -> None:
    status, answer = from_alertmanager(team, body)
    assert status == 400 and problem in answer["error"]
    assert signal_count(team) == 0


def test_a_signed_webhook_signal_is_taken_and_forged_stale_or_unsigned_ones_are_not(team: Workspace) -> None:
    payload = {
        "service": "checkout",
        "title": "Checkout latency",
        "severity": "warning",
        "dedup_key": "lat-1",
    }
    assert signed_webhook(team, payload, secret="not-the-secret") == 401
    assert signed_webhook(team, payload, age=301) == 401
    assert post(team, "/signals/webhook", json.dumps(payload).encode(), {})[0] == 401
    assert signal_count(team) == 0
    assert signed_webhook(team, payload) == 200
    [card] = triage_cards(team)
    assert card.text == "🔔 [firing] checkout: Checkout latency"
    assert "<@U0CHKONCALL>" in json.dumps(card.blocks)


def test_a_source_without_its_secret_is_off(slack: SlackEmulator, engine: Engine, clock: FrozenClock) -> None:
    with start_tars(slack, engine, clock) as running:
        team = Workspace(running, slack, engine, clock)
        status, answer = from_alertmanager(team, group(alert()))
        assert status == 404 and "TARS_ALERTMANAGER_TOKEN" in answer["error"]


# --- routing, deduplication, resolution --------------------------------------------------------------------------


def test_an_alert_naming_no_catalog_service_is_triaged_unrouted(team: Workspace) -> None:
    from_alertmanager(team, group(alert(service="billing-legacy", fingerprint="u1")))
    [card] = triage_cards(team)
    assert card.text.startswith("🔔 [firing] unrouted: HighErrorRate")
    assert "unrouted" in json.dumps(card.blocks)
    assert stored_signal(team).service is None


def test_the_same_alert_again_updates_its_card_with_a_count_and_resolution_marks_it(team: Workspace) -> None:
    from_alertmanager(team, group(alert()))
    triage_cards(team)
    team.clock.advance(timedelta(minutes=5))
    status, answer = from_alertmanager(team, group(alert()))
    assert (status, answer["repeated"]) == (200, 1)
    [card] = triage_cards(team)
    assert "*Seen:* 2×" in json.dumps(card.blocks, ensure_ascii=False)
    from_alertmanager(team, group(alert(status="resolved"), status="resolved"))
    [card] = triage_cards(team)
    assert card.text.startswith("🔔 [resolved] payments: HighErrorRate")
    assert "✅ Resolved at" in json.dumps(card.blocks, ensure_ascii=False)
    assert signal_count(team) == 1


def test_an_alert_for_a_service_with_an_open_incident_is_attached_to_it(team: Workspace) -> None:
    incident = team.declare()
    status, answer = from_alertmanager(team, group(alert()))
    assert (status, answer["attached"]) == (200, 1)
    team.settle()
    assert triage_cards(team) == []
    assert any(e.kind == "signal_attached" for e in team.timeline(incident.id))
    thread = team.slack.thread_replies(CHANNEL, str(team.incident(incident.id).card_ts))
    assert any(m.text.startswith("🔔 Alert attached automatically (alertmanager)") for m in thread)
    # Its resolution lands in the incident's timeline and thread.
    from_alertmanager(team, group(alert(status="resolved"), status="resolved"))
    team.settle()
    assert any(e.kind == "signal_resolved" for e in team.timeline(incident.id))
    thread = team.slack.thread_replies(CHANNEL, str(team.incident(incident.id).card_ts))
    assert any(m.text.startswith("✅ Alert resolved (alertmanager)") for m in thread)


# --- triage -----------------------------------------------------------------------------------------------------


def test_declaring_from_the_card_opens_a_prefilled_form_and_the_timeline_names_the_alert(
    team: Workspace,
) -> None:
    from_alertmanager(team, group(alert()))
    [card] = triage_cards(team)
    signal = stored_signal(team)
    view = open_declare_form(team, card, signal.id, severity=1, user="U0BOB")
    fields = {b["block_id"]: b["element"] for b in view.view["blocks"] if b["type"] == "input"}
    assert fields["service"]["initial_option"]["value"] == "payments"
    assert fields["severity"]["initial_option"]["value"] == "P1"
    assert fields["description"]["initial_value"] == "HighErrorRate: 5xx above 5% for 5 minutes"
    answer = team.client.submit_view(user_id="U0BOB", view_id=view.id, values={})
    assert answer.status == 200
    incident = team.latest_incident()
    assert (incident.service, incident.severity, incident.reporter) == ("payments", 1, "U0BOB")
    confirmed = next(e for e in team.timeline(incident.id) if e.kind == "signal_confirmed")
    assert confirmed.actor == "U0BOB" and "HighErrorRate" in confirmed.text and "<@U0BOB>" in confirmed.text
    assert stored_signal(team).incident_id == incident.id
    [card] = triage_cards(team)
    assert f"Declared as INC-{incident.id} by <@U0BOB>." in json.dumps(card.blocks)
    assert not any(b["type"] == "actions" for b in card.blocks)


def test_dismissing_as_a_fluke_retires_the_buttons_and_a_second_triage_is_refused(team: Workspace) -> None:
    from_alertmanager(team, group(alert()))
    [card] = triage_cards(team)
    signal = stored_signal(team)
    team.client.click_button(
        user_id="U0ALICE",
        channel_id=CHANNEL,
        message_ts=card.ts,
        action_id=rendering.TRIAGE_DISMISS_ACTION,
        value=str(signal.id),
    )
    [card] = triage_cards(team)
    assert "Dismissed as a fluke by <@U0ALICE>." in json.dumps(card.blocks)
    assert stored_signal(team).triage == "dismissed"


def test_a_triage_button_on_another_message_is_refused(team: Workspace) -> None:
    incident = team.declare()
    from_alertmanager(team, group(alert(service="checkout", fingerprint="other")))
    triage_cards(team)
    signal = stored_signal(team)
    team.stale_click(
        user="U0BOB",
        message_ts=str(team.incident(incident.id).card_ts),
        action_id=rendering.TRIAGE_DISMISS_ACTION,
        value=str(signal.id),
    )
    team.ephemeral_to("U0BOB", "belongs to another card")
    assert stored_signal(team).triage == "open"


def test_auto_declare_is_opt_in_per_route_and_says_it_was_automatic(
    slack: SlackEmulator, engine: Engine, clock: FrozenClock
) -> None:
    rules = [AutoDeclareRule(match={"severity": "critical", "team": "payments"}, severity="P1")]
    signals = SignalsConfig(auto_declare=rules)
    with start_tars(slack, engine, clock, alertmanager_token=TOKEN, signals=signals) as running:
        team = Workspace(running, slack, engine, clock)
        warning = alert("SlowQueries", fingerprint="w1")
        status, answer = from_alertmanager(team, group(warning))
        assert answer["declared"] == 0 and team.incident_count() == 0  # "team" is not on it: triage as usual
        critical = alert(fingerprint="c1")
        critical["labels"]["team"] = "payments"
        status, answer = from_alertmanager(team, group(critical))
        assert (status, answer["declared"]) == (200, 1)
        incident = team.latest_incident()
        assert (incident.service, incident.severity) == ("payments", 1)
        assert incident.description == "HighErrorRate: 5xx above 5% for 5 minutes"
        event = next(e for e in team.timeline(incident.id) if e.kind == "signal_confirmed")
        assert event.text.startswith("Declared automatically from alert HighErrorRate (alertmanager")
        team.settle()
        assert [m.text for m in triage_cards(team)] == [
            "🔔 [firing] payments: SlowQueries — 5xx above 5% for 5 minutes"
        ]
        assert team.channel_posts("🚨")
        # The on-call is paged at once, as for any declaration.
        team.wait_until(
            lambda: any(c.args.get("users") == "U0PAYONCALL" for c in slack.calls_to("conversations.open")),
            message="the on-call was not paged",
        )


def test_show_lists_the_signals_of_an_incident(team: Workspace) -> None:
    incident = team.declare()
    from_alertmanager(team, group(alert(), alert("LatencyHigh", fingerprint="l1", summary="p99 2s")))
    shown = str(json.loads(team.command(f"show {incident.id}").body)["text"])
    assert "*Signals* (2)" in shown
    assert "• [firing] alertmanager: HighErrorRate · 1×" in shown and "LatencyHigh" in shown


def test_attaching_from_the_card_puts_the_alert_on_an_open_incident(team: Workspace) -> None:
    incident = team.declare()  # payments
    from_alertmanager(team, group(alert(service="checkout", fingerprint="chk-1")))
    [card] = triage_cards(team)
    signal = stored_signal(team)
    team.client.select_option(
        user_id="U0BOB",
        channel_id=CHANNEL,
        message_ts=card.ts,
        action_id=rendering.TRIAGE_ATTACH_ACTION,
        option_value=f"{signal.id}:{incident.id}",
    )
    [card] = triage_cards(team)
    assert f"Attached to INC-{incident.id} by <@U0BOB>." in json.dumps(card.blocks)
    event = next(e for e in team.timeline(incident.id) if e.kind == "signal_attached")
    assert event.actor == "U0BOB" and "checkout" in event.text
    assert stored_signal(team).incident_id == incident.id
    thread = team.slack.thread_replies(CHANNEL, str(team.incident(incident.id).card_ts))
    assert any(m.text.startswith("🔔 Alert attached by <@U0BOB> (alertmanager)") for m in thread)


def test_metrics_count_signal_requests_by_source_and_answer(team: Workspace) -> None:
    before = scrape(team)
    accepted = sample(before, "tars_signal_requests_total", source="alertmanager", status="200")
    refused = sample(before, "tars_signal_requests_total", source="alertmanager", status="401")
    from_alertmanager(team, group(alert()))
    from_alertmanager(team, group(alert()), token="forged")
    after = scrape(team)
    assert sample(after, "tars_signal_requests_total", source="alertmanager", status="200") == accepted + 1
    assert sample(after, "tars_signal_requests_total", source="alertmanager", status="401") == refused + 1


def test_hostile_or_oversized_alert_text_is_stored_cut_and_shown_escaped(team: Workspace) -> None:
    hostile = alert(summary="<!channel> ping <@U0BOB> & <https://evil.example|click>" + "x" * 2_000)
    hostile["labels"]["severity"] = "s" * 200
    hostile["labels"]["team"] = "<!here>"
    status, _ = from_alertmanager(team, group(hostile))
    assert status == 200
    [card] = triage_cards(team)
    shown = card.text + json.dumps(card.blocks)
    assert "<!channel>" not in shown and "<!here>" not in shown and "<@U0BOB>" not in shown
    assert "&lt;!channel&gt;" in card.text
    signal = stored_signal(team)
    assert signal.severity_hint == "s" * 32 and len(signal.summary) <= 500
