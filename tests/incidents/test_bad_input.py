"""Bad input gets a specific ephemeral reply and changes nothing."""

from __future__ import annotations

import json

import pytest

from tests.support import Workspace


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("frobnicate 1", "Unknown sub-command `frobnicate`"),
        ("declare payments", "Missing the severity"),
        ("declare payments P9 it broke", "`P9` is not a severity"),
        ("declare billing P1 it broke", "Unknown service `billing`. Known services: `checkout`, `payments`."),
        ("status 1 fixed", "`fixed` is not a status"),
        ("resolve 1", "Missing the root cause"),
    ],
)
def test_malformed_commands_are_answered_in_the_ack(workspace: Workspace, text: str, expected: str) -> None:
    response = workspace.command(text)
    body = response.json()
    assert body["response_type"] == "ephemeral"
    assert expected in body["text"]
    assert "Usage: `/incident" in body["text"] or "/incident declare" in body["text"]
    assert workspace.incident_count() == 0
    assert workspace.slack.calls_to("chat.postMessage") == []


def test_unknown_incident(workspace: Workspace) -> None:
    workspace.command("ack INC-77")
    workspace.ephemeral_to("U0ALICE", "There is no incident INC-77.")
    assert workspace.event_count() == 0


def test_changing_a_resolved_incident_is_refused_and_nothing_changes(workspace: Workspace) -> None:
    incident = workspace.declare()
    workspace.command(f"resolve {incident.id} Bad deploy --force")
    workspace.wait_until(lambda: workspace.incident(incident.id).status == "resolved")
    # A P1's resolution is followed by its post-mortem draft; let that finish before counting.
    workspace.wait_until(lambda: any(e.kind == "postmortem_draft" for e in workspace.timeline(incident.id)))
    workspace.settle()
    events_before = workspace.event_count()
    posts_before = len(workspace.slack.calls_to("chat.postMessage"))

    for text in (
        f"update {incident.id} more findings",
        f"ack {incident.id}",
        f"status {incident.id} mitigating",
    ):
        workspace.command(text, user="U0BOB")
        workspace.ephemeral_to("U0BOB", "INC-1 was resolved at 2026-11-22 09:00 UTC")
    workspace.command(f"resolve {incident.id} again", user="U0BOB")
    workspace.ephemeral_to("U0BOB", "you cannot resolve a resolved incident")

    assert workspace.event_count() == events_before
    assert len(workspace.slack.calls_to("chat.postMessage")) == posts_before
    assert workspace.incident(incident.id).root_cause == "Bad deploy"


def test_repeated_changes_are_refused(workspace: Workspace) -> None:
    incident = workspace.declare()
    workspace.command(f"ack {incident.id}", user="U0PAYONCALL")
    workspace.wait_until(lambda: workspace.incident(incident.id).acknowledged_by == "U0PAYONCALL")
    events_before = workspace.event_count()

    workspace.command(f"ack {incident.id}", user="U0BOB")
    workspace.ephemeral_to("U0BOB", "INC-1 was already acknowledged by <@U0PAYONCALL>")
    workspace.command(f"status {incident.id} investigating", user="U0BOB")
    workspace.ephemeral_to("U0BOB", "INC-1 is already Investigating.")
    workspace.command(f"severity {incident.id} P1", user="U0BOB")
    workspace.ephemeral_to("U0BOB", "INC-1 is already P1.")
    assert workspace.event_count() == events_before
    assert workspace.incident(incident.id).acknowledged_by == "U0PAYONCALL"


def test_a_stale_card_button_after_resolution_is_refused(workspace: Workspace) -> None:
    incident = workspace.declare()
    card_ts = workspace.incident(incident.id).card_ts
    assert card_ts is not None
    workspace.command(f"resolve {incident.id} Bad deploy --force")
    workspace.wait_until(lambda: workspace.incident(incident.id).status == "resolved")
    # Someone with the old card still on screen clicks a button that is gone now.
    payload_response = workspace.stale_click(
        user="U0BOB", message_ts=card_ts, action_id="incident_status_mitigating", value=str(incident.id)
    )
    assert payload_response.status == 200
    workspace.slack.wait_for("response_url", lambda c: "INC-1 was resolved" in c.args.get("text", ""))


def test_numbers_that_only_look_like_numbers_get_a_usage_reply(workspace: Workspace) -> None:
    for text, expected in [
        ("scale 1 payments ²", "`²` is not a number of replicas"),
        ("resolve 1 cause users=99999999999", "`users=99999999999` must be a whole number"),
    ]:
        body = workspace.command(text).json()
        assert expected in body["text"], body


def test_form_text_cannot_become_a_mention_or_a_link(workspace: Workspace) -> None:
    workspace.command("declare")
    opened = workspace.slack.wait_for("views.open")
    workspace.client.submit_view(
        user_id="U0ALICE",
        view_id=opened.response["view"]["id"],
        values={
            "service": {"value": "payments"},
            "severity": {"value": "P1"},
            "description": {"value": "<!channel> approve at <https://evil.example|the runbook>"},
        },
    )
    card = workspace.slack.wait_for(
        "chat.postMessage", lambda c: str(c.args.get("text", "")).startswith("🚨")
    )
    assert "&lt;!channel&gt; approve at &lt;https://evil.example|the runbook&gt;" in card.args["text"]
    assert "<!channel>" not in json.dumps(card.args)


def test_a_refused_resolve_form_stays_open_with_the_root_cause_and_says_why(workspace: Workspace) -> None:
    incident = workspace.declare()
    workspace.click(incident.id, "incident_resolve", user="U0BOB")
    opened = workspace.slack.wait_for("views.open")
    view_id = opened.response["view"]["id"]
    answer = workspace.client.submit_view(
        user_id="U0BOB",
        view_id=view_id,
        values={"root_cause": {"value": "Pool exhausted by the new processor"}},
    )
    assert answer.json()["response_action"] == "errors"
    assert "not Monitoring" in answer.json()["errors"]["root_cause"]
    # Still open, so what was typed is still there to submit again with --force or later.
    assert any(view.id == view_id for view in workspace.slack.views("U0BOB"))
    assert workspace.incident(incident.id).status == "investigating"
