"""The incident lifecycle as people live it in #incidents: signed Slack requests in, Web API calls out."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import insert

from bot.incidents.incident_records import Incident, Status
from bot.slack import rendering
from tests.support import CHANNEL, Workspace


def test_declaring_posts_the_initial_notification_pages_oncall_and_starts_the_timeline(
    workspace: Workspace,
) -> None:
    response = workspace.command(
        'declare payments P1 Card payments failing with 502 impact="All card checkouts fail"'
    )
    # The answer comes once the incident and its posts are stored; the posts follow.
    assert response.json() == {
        "text": "Declared *INC-1* and paged <@U0PAYONCALL>; the card is going up in <#C0INCIDENTS>.",
        "response_type": "ephemeral",
    }
    assert workspace.incident(1).description == "Card payments failing with 502"

    card_call = workspace.slack.wait_for("chat.postMessage", lambda c: c.args.get("channel") == CHANNEL)
    text = card_call.args["text"]
    assert text.startswith("🚨 [P1] Incident declared: Card payments failing with 502")
    assert "Impact: All card checkouts fail" in text
    assert "Status: Investigating" in text
    assert "On-call: <@U0PAYONCALL>" in text
    assert "Started: 2026-11-22 09:00 UTC" in text
    assert "thread_ts" not in card_call.args  # in the channel itself, not a thread
    action_ids = [
        e["action_id"] for b in card_call.args["blocks"] if b["type"] == "actions" for e in b["elements"]
    ]
    assert action_ids == [
        rendering.ACK_ACTION,
        "incident_status_mitigating",
        "incident_status_monitoring",
        rendering.SEVERITY_ACTION,
        rendering.RESOLVE_ACTION,
    ]

    # The on-call is paged by DM.
    opened = workspace.slack.wait_for("conversations.open")
    assert opened.args["users"] == "U0PAYONCALL"
    dm_channel = opened.response["channel"]["id"]
    page = workspace.slack.wait_for("chat.postMessage", lambda c: c.args.get("channel") == dm_channel)
    assert "You are on call for `payments`: INC-1 [P1]" in page.args["text"]

    workspace.ephemeral_to("U0ALICE", "Declared *INC-1*")
    workspace.settle()  # the card's ts is recorded once Slack has answered the post
    incident = workspace.latest_incident()
    assert (incident.service, incident.severity, incident.status) == ("payments", 1, "investigating")
    assert incident.reporter == "U0ALICE"
    assert incident.oncall == "U0PAYONCALL"
    assert incident.channel_id == CHANNEL
    assert incident.card_ts == card_call.response["ts"]
    kinds = [e.kind for e in workspace.timeline(incident.id)]
    # The card and the page go out in parallel, so either may be recorded first.
    assert kinds[0] == "declared" and sorted(kinds[1:]) == ["announced", "paged"]
    assert workspace.timeline(incident.id)[0].actor == "U0ALICE"


def test_acknowledge_by_command_updates_the_card_in_place_with_a_thread_note(workspace: Workspace) -> None:
    incident = workspace.declare()
    workspace.clock.advance(timedelta(minutes=4))
    workspace.command(f"ack INC-{incident.id}", user="U0PAYONCALL")

    note = workspace.slack.wait_for("chat.postMessage", lambda c: c.args.get("thread_ts") == incident.card_ts)
    assert note.args["text"] == "<@U0PAYONCALL> acknowledged INC-1."
    card = workspace.card(incident.id)
    assert card.edits == 1
    assert "Acknowledged: <@U0PAYONCALL> at 2026-11-22 09:04 UTC" in card.text
    assert rendering.ACK_ACTION not in str(card.blocks)
    stored = workspace.incident(incident.id)
    assert stored.acknowledged_by == "U0PAYONCALL"
    assert stored.commander == "U0PAYONCALL"
    event = workspace.timeline(incident.id)[-1]
    assert (event.kind, event.actor, event.data["response_seconds"]) == ("acknowledged", "U0PAYONCALL", 240)


def test_acknowledge_button(workspace: Workspace) -> None:
    incident = workspace.declare()
    workspace.click(incident.id, rendering.ACK_ACTION, user="U0PAYONCALL")
    workspace.wait_until(lambda: workspace.incident(incident.id).acknowledged_by == "U0PAYONCALL")
    workspace.wait_until(lambda: workspace.card(incident.id).edits == 1)


def test_status_by_command_and_by_button(workspace: Workspace) -> None:
    incident = workspace.declare()
    workspace.command(f"status #{incident.id} mitigating")
    workspace.slack.wait_for(
        "chat.postMessage", lambda c: "Investigating → Mitigating" in c.args.get("text", "")
    )
    assert workspace.incident(incident.id).status == "mitigating"
    assert "Status: Mitigating" in workspace.card(incident.id).text

    workspace.clock.advance(timedelta(minutes=20))
    workspace.click(incident.id, "incident_status_monitoring", user="U0BOB")
    workspace.wait_until(lambda: workspace.incident(incident.id).status == "monitoring")
    stored = workspace.incident(incident.id)
    assert stored.mitigated_at == workspace.clock.now()
    assert stored.monitoring_since == workspace.clock.now()
    event = workspace.timeline(incident.id)[-1]
    assert (event.kind, event.actor, event.data) == (
        "status_changed",
        "U0BOB",
        {"old": "mitigating", "new": "monitoring"},
    )
    workspace.wait_until(lambda: "Status: Monitoring" in workspace.card(incident.id).text)


def test_severity_by_command_and_by_select(workspace: Workspace) -> None:
    incident = workspace.declare("checkout P3 Address validation slow")
    workspace.command(f"severity {incident.id} P2")
    workspace.wait_until(lambda: workspace.incident(incident.id).severity == 2)
    workspace.wait_until(lambda: workspace.card(incident.id).text.startswith("🚨 [P2]"))

    card = workspace.card(incident.id)
    response = workspace.client.select_option(
        user_id="U0BOB",
        channel_id=CHANNEL,
        message_ts=card.ts,
        action_id=rendering.SEVERITY_ACTION,
        option_value=f"{incident.id}:1",
    )
    assert response.status == 200
    workspace.wait_until(lambda: workspace.incident(incident.id).severity == 1)
    kinds = [(e.kind, e.data.get("old"), e.data.get("new")) for e in workspace.timeline(incident.id)]
    assert ("severity_changed", 3, 2) in kinds and ("severity_changed", 2, 1) in kinds


def test_update_posts_the_update_template_to_the_channel(workspace: Workspace) -> None:
    incident = workspace.declare()
    workspace.command(f"status {incident.id} monitoring")
    workspace.command(f'update {incident.id} Error rate down to 0.05% after rollback eta="20 minutes"')

    post = workspace.slack.wait_for("chat.postMessage", lambda c: c.args.get("text", "").startswith("📊"))
    assert post.args["channel"] == CHANNEL and "thread_ts" not in post.args
    assert post.args["text"].split("\n")[:4] == [
        "📊 INCIDENT UPDATE P1: payments",
        "Status: Monitoring",
        "Latest findings: Error rate down to 0.05% after rollback",
        "ETA to resolution: 20 minutes",
    ]
    stored = workspace.incident(incident.id)
    assert (stored.latest_findings, stored.eta) == ("Error rate down to 0.05% after rollback", "20 minutes")
    assert workspace.timeline(incident.id)[-1].kind == "update"


def test_update_without_eta_says_unknown(workspace: Workspace) -> None:
    incident = workspace.declare()
    workspace.command(f"update {incident.id} Still looking at the processor logs")
    post = workspace.slack.wait_for("chat.postMessage", lambda c: c.args.get("text", "").startswith("📊"))
    assert "ETA to resolution: unknown" in post.args["text"]


def test_resolving_a_p1_posts_the_resolution_template_with_duration_and_postmortem(
    workspace: Workspace,
) -> None:
    incident = workspace.declare()
    workspace.clock.advance(timedelta(minutes=55))
    workspace.set_status(incident.id, "monitoring")
    workspace.clock.advance(timedelta(minutes=10))
    workspace.command(f"resolve {incident.id} Bad deploy of payments v2.3 exhausted the pool users=1200")

    post = workspace.slack.wait_for(
        "chat.postMessage", lambda c: c.args.get("text", "").startswith("✅ INCIDENT")
    )
    assert post.args["channel"] == CHANNEL and "thread_ts" not in post.args
    assert post.args["text"].split("\n")[:5] == [
        "✅ INCIDENT RESOLVED P1: payments",
        "Root cause: Bad deploy of payments v2.3 exhausted the pool",
        "Duration: 1 hour 5 minutes",
        "Users affected: 1,200",
        "Post-mortem: Scheduled for 2026-11-24 10:05 UTC",
    ]
    workspace.slack.wait_for(
        "chat.postMessage",
        lambda c: (
            c.args.get("thread_ts") == incident.card_ts
            and c.args["text"]
            == "✅ [P1] Incident resolved: payments — Bad deploy of payments v2.3 exhausted the pool"
        ),
    )
    workspace.wait_until(lambda: workspace.card(incident.id).edits >= 1)
    card = workspace.card(incident.id)
    assert not [b for b in card.blocks if b["type"] == "actions"]  # no buttons on a resolved card
    stored = workspace.incident(incident.id)
    assert stored.status == Status.RESOLVED.value
    assert stored.resolved_by == "U0ALICE"
    assert stored.users_affected == 1200
    assert stored.postmortem_due_at == workspace.clock.now() + timedelta(hours=48)
    resolved = next(e for e in workspace.timeline(incident.id) if e.kind == "resolved")
    assert resolved.data["duration_seconds"] == 3900


def test_resolving_a_p2_needs_no_postmortem(workspace: Workspace) -> None:
    incident = workspace.declare("checkout P2 Checkout failing for 20% of users")
    workspace.clock.advance(timedelta(minutes=30))
    workspace.set_status(incident.id, "monitoring")
    workspace.clock.advance(timedelta(minutes=12))
    workspace.command(f"resolve {incident.id} Feature flag misconfigured")
    post = workspace.slack.wait_for(
        "chat.postMessage", lambda c: c.args.get("text", "").startswith("✅ INCIDENT")
    )
    assert "Duration: 0 hours 42 minutes" in post.args["text"]
    assert "Users affected: unknown" in post.args["text"]
    assert "Post-mortem: Not required" in post.args["text"]


def test_resolve_button_opens_a_form_whose_submission_resolves(workspace: Workspace) -> None:
    incident = workspace.declare()
    workspace.click(incident.id, rendering.RESOLVE_ACTION, user="U0BOB")
    opened = workspace.slack.wait_for("views.open")
    view_id = opened.response["view"]["id"]
    assert opened.args["view"]["callback_id"] == rendering.RESOLVE_VIEW

    # A bad number keeps the form open with the error beside the field, and stores nothing.
    response = workspace.client.submit_view(
        user_id="U0BOB",
        view_id=view_id,
        values={"root_cause": {"value": "Expired TLS certificate"}, "users_affected": {"value": "-3"}},
    )
    assert response.json() == {
        "response_action": "errors",
        "errors": {"users_affected": "A whole number of users, or leave it empty."},
    }
    assert workspace.incident(incident.id).status == "investigating"

    response = workspace.client.submit_view(
        user_id="U0BOB",
        view_id=view_id,
        values={
            "root_cause": {"value": "Expired TLS certificate"},
            "users_affected": {"value": "250"},
            "force": {"value": ["force"]},
        },
    )
    assert response.status == 200 and not response.body
    workspace.wait_until(lambda: workspace.incident(incident.id).status == "resolved")
    stored = workspace.incident(incident.id)
    assert (stored.root_cause, stored.users_affected, stored.resolved_by) == (
        "Expired TLS certificate",
        250,
        "U0BOB",
    )
    workspace.slack.wait_for(
        "chat.postMessage", lambda c: c.args.get("text", "").startswith("✅ INCIDENT RESOLVED P1")
    )


def test_declare_without_arguments_opens_the_form_and_its_submission_declares(workspace: Workspace) -> None:
    workspace.command("declare")
    opened = workspace.slack.wait_for("views.open")
    view = opened.args["view"]
    assert view["callback_id"] == rendering.DECLARE_VIEW
    services = [o["value"] for o in view["blocks"][0]["element"]["options"]]
    assert services == ["checkout", "payments"]

    response = workspace.client.submit_view(
        user_id="U0ALICE",
        view_id=opened.response["view"]["id"],
        values={
            "service": {"value": "checkout"},
            "severity": {"value": "P2"},
            "description": {"value": "   "},
        },
    )
    assert response.json()["errors"] == {"description": "Say what is broken."}
    assert workspace.incident_count() == 0

    workspace.client.submit_view(
        user_id="U0ALICE",
        view_id=opened.response["view"]["id"],
        values={
            "service": {"value": "checkout"},
            "severity": {"value": "P2"},
            "description": {"value": "Orders rejected by address validation"},
            "impact": {"value": "20% of orders"},
        },
    )
    card = workspace.slack.wait_for("chat.postMessage", lambda c: c.args.get("channel") == CHANNEL)
    assert card.args["text"].startswith("🚨 [P2] Incident declared: Orders rejected by address validation")
    assert "Impact: 20% of orders" in card.args["text"]
    assert workspace.latest_incident().oncall == "U0CHKONCALL"


def test_list_and_show(workspace: Workspace) -> None:
    first = workspace.declare()
    second = workspace.declare("checkout P3 Slow address lookups")
    workspace.command(f"resolve {second.id} Upstream latency --force")
    workspace.wait_until(lambda: workspace.incident(second.id).status == "resolved")

    workspace.command("list", user="U0BOB")
    listing = workspace.ephemeral_to("U0BOB", "Open incidents (1)")
    assert "*INC-1* P1 `payments` — Investigating, *not acknowledged*" in listing.args["text"]
    assert "INC-2" not in listing.args["text"]

    workspace.command(f"show INC-{first.id}", user="U0BOB")
    detail = workspace.ephemeral_to("U0BOB", "*INC-1* [P1] `payments`")
    assert "*Timeline*" in detail.args["text"]
    assert "Declared P1 for payments: Card payments failing with 502" in detail.args["text"]
    assert detail.args["response_type"] == "ephemeral"


def test_help_is_an_ephemeral_ack(workspace: Workspace) -> None:
    response = workspace.command("help")
    body = response.json()
    assert body["response_type"] == "ephemeral"
    # Escaped, so Slack shows the placeholders instead of reading them as links.
    assert "/incident declare &lt;service&gt; &lt;P1|P2|P3|P4&gt;" in body["text"]


def test_list_shows_the_fifty_most_severe_and_oldest_then_counts_the_rest(workspace: Workspace) -> None:
    rows = [
        {
            "service": "payments",
            "severity": 4 if n < 70 else 1,
            "status": "investigating",
            "description": f"Incident number {n}",
            "reporter": "U0ALICE",
            "oncall": "U0PAYONCALL",
            "declared_at": workspace.clock.now(),
            "version": 1,
            "escalations": 0,
        }
        for n in range(80)
    ]
    with workspace.engine.begin() as connection:
        connection.execute(insert(Incident), rows)
    reply = workspace.command("list").json()["text"]
    assert reply.startswith("*Open incidents (80):*")
    listed = [line for line in reply.splitlines() if line.startswith("• ")]
    assert len(listed) == 50
    # The ten P1s come first, then the oldest P4s.
    assert all(" P1 `payments`" in line for line in listed[:10]) and "*INC-1*" in listed[10]
    assert reply.splitlines()[-1].startswith("…and 30 more")
