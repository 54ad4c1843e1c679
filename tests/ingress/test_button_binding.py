"""Buttons are bound to their card: a click whose value names another record is refused and audited.

A hostile (or buggy) client can send any value with a click on a real message; Slack still reports, and signs,
which message was clicked. These tests send such clicks and check what people would notice: the private reply,
that nothing changed, and the audit entry in the named incident's timeline.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine

from bot.core.clock import FrozenClock
from bot.core.settings import ApproversConfig, Config, KubernetesTarget, ServiceConfig
from bot.remediation.platforms import Platforms
from bot.slack import rendering
from integrations.kubernetes_rollouts import KubernetesDeployments
from sandbox.emulator import SlackEmulator
from sandbox.fakes.kubernetes_api import FakeKubernetes
from tests.support import CHANNEL, Workspace, finished, request, start_tars, stored_action, vote

SERVICES = {
    "payments": ServiceConfig(
        oncall="U0PAYONCALL",
        kubernetes=KubernetesTarget(namespace="prod", deployment="payments"),
        max_replicas=10,
    ),
}


@pytest.fixture
def clock() -> FrozenClock:
    # The fake cluster stamps objects with the real time; the rollback advice compares against ours.
    return FrozenClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def cluster() -> Iterator[FakeKubernetes]:
    with FakeKubernetes() as fake:
        fake.create_deployment("prod", "payments", image="registry/app:1.0", replicas=3)
        fake.set_image("prod", "payments", "registry/app:1.1")
        yield fake


@pytest.fixture
def team(
    slack: SlackEmulator, engine: Engine, clock: FrozenClock, cluster: FakeKubernetes
) -> Iterator[Workspace]:
    platforms = Platforms(
        Config(database_url="", services=SERVICES),
        kubernetes=KubernetesDeployments(api_client_factory=lambda _context: cluster.api_client()),
        rollout_timeout=5,
        poll_seconds=0.05,
    )
    with start_tars(
        slack,
        engine,
        clock,
        services=SERVICES,
        approvers=ApproversConfig(users=["U0BOB"]),
        platforms=platforms,
    ) as running:
        yield Workspace(running, slack, engine, clock)


_PLAIN = {"type": "plain_text", "text": "x"}


def _forge(team: Workspace, message_ts: str, action: dict[str, Any], *, user: str = "U0BOB") -> None:
    response = team.client.forged_action(
        user_id=user, channel_id=CHANNEL, message_ts=message_ts, action=action
    )
    assert response.status == 200, response


def _button(action_id: str, value: str) -> dict[str, Any]:
    return {"type": "button", "action_id": action_id, "value": value, "text": _PLAIN}


def _patches(cluster: FakeKubernetes) -> list[Any]:
    return [r for r in cluster.requests if r[0] == "PATCH" and r[1].endswith("/deployments/payments")]


def test_an_approve_click_on_another_requests_card_is_refused_and_audited(
    team: Workspace, cluster: FakeKubernetes
) -> None:
    first = team.declare("payments P1 Card payments failing with 502")
    second = team.declare("payments P1 Refunds failing")
    rollback = request(team, f"rollback {first.id}")  # one approval executes it (P1)
    scale = request(team, f"scale {second.id} payments 5")
    assert scale.card_ts is not None and rollback.card_ts != scale.card_ts

    # The Approve button on the scale request's card, with its value changed to the rollback's id.
    _forge(team, scale.card_ts, _button(rendering.APPROVE_ACTION, str(rollback.id)))
    team.ephemeral_to(
        "U0BOB",
        f"That button belongs to another card; use the buttons on request #{rollback.id}'s card in INC-1",
    )
    assert (
        stored_action(team, rollback.id).state == "pending" and stored_action(team, rollback.id).votes == []
    )
    assert stored_action(team, scale.id).state == "pending" and stored_action(team, scale.id).votes == []
    assert _patches(cluster) == []
    [audit] = [e for e in team.timeline(first.id) if e.kind == "button_mismatch"]
    assert audit.actor == "U0BOB"
    assert audit.data["button"] == "Approve"
    assert audit.data["record"] == {"action": rollback.id}
    assert (audit.data["clicked_channel"], audit.data["clicked_ts"]) == (CHANNEL, scale.card_ts)
    assert not [e for e in team.timeline(second.id) if e.kind == "button_mismatch"]

    # Revert flag names a request too: from a message outside that request's incident thread it is refused.
    _forge(team, scale.card_ts, _button(rendering.REVERT_FLAG_ACTION, str(rollback.id)))
    team.ephemeral_to("U0BOB", "use the buttons in INC-1's thread")
    assert len([e for e in team.timeline(first.id) if e.kind == "button_mismatch"]) == 2

    # The genuine button on the rollback's own card still works.
    assert vote(team, rollback, "U0BOB").args["text"] == f"Approved; running #{rollback.id} now."
    assert finished(team, rollback.id).state == "succeeded"
    assert stored_action(team, scale.id).state == "pending"


def test_an_incident_card_click_naming_another_incident_changes_nothing(workspace: Workspace) -> None:
    first = workspace.declare("payments P2 Card payments degraded")
    second = workspace.declare("checkout P3 Address validation slow")
    assert second.card_ts is not None

    _forge(workspace, second.card_ts, _button(rendering.ACK_ACTION, str(first.id)))
    workspace.ephemeral_to("U0BOB", "That button belongs to another card; use the buttons on INC-1's card.")
    _forge(
        workspace,
        second.card_ts,
        {
            "type": "static_select",
            "action_id": rendering.SEVERITY_ACTION,
            "selected_option": {"text": _PLAIN, "value": f"{first.id}:1"},
        },
    )
    workspace.wait_until(
        lambda: len([e for e in workspace.timeline(first.id) if e.kind == "button_mismatch"]) == 2
    )
    stored = workspace.incident(first.id)
    assert (stored.acknowledged_by, stored.severity) == (None, 2)
    assert workspace.incident(second.id).acknowledged_by is None
    assert [e.data["button"] for e in workspace.timeline(first.id) if e.kind == "button_mismatch"] == [
        "Acknowledge",
        "Severity",
    ]

    # The same button on the incident's own card is honoured.
    workspace.click(first.id, rendering.ACK_ACTION, user="U0BOB")
    workspace.wait_until(lambda: workspace.incident(first.id).acknowledged_by == "U0BOB")


@pytest.mark.parametrize(
    ("action", "reply"),
    [
        ({"type": "button", "action_id": rendering.ACK_ACTION}, "This button does not name an incident"),
        (_button(rendering.ACK_ACTION, "9" * 5000), "This button does not name an incident"),
        (_button(rendering.ACK_ACTION, "one"), "This button does not name an incident"),
        (_button(rendering.RESOLVE_ACTION, "²"), "This button does not name an incident"),
        (_button(rendering.ACK_ACTION, "99999999999"), "This button does not name an incident"),
        (
            {"type": "static_select", "action_id": rendering.SEVERITY_ACTION},
            "This button does not name an incident",
        ),
        (
            {
                "type": "static_select",
                "action_id": rendering.SEVERITY_ACTION,
                "selected_option": {"text": _PLAIN, "value": "1:²"},
            },
            "That severity option is not understood",
        ),
        (_button(rendering.APPROVE_ACTION, "9" * 5000), "This button does not name a remediation request"),
        ({"type": "button", "action_id": rendering.DENY_ACTION}, "This button does not name a remediation"),
        (_button(rendering.MERGE_ACTION, "{not json"), "This button does not name a pull request"),
        (_button(rendering.MERGE_ACTION, '{"incident": "1"}'), "This button does not name a pull request"),
    ],
)
def test_malformed_button_values_get_a_specific_private_reply(
    workspace: Workspace, action: dict[str, Any], reply: str
) -> None:
    incident = workspace.declare()
    assert incident.card_ts is not None
    events = workspace.event_count()

    _forge(workspace, incident.card_ts, action)
    workspace.ephemeral_to("U0BOB", reply)
    assert not [
        c for c in workspace.slack.ephemerals(user="U0BOB") if "unexpected" in str(c.args.get("text"))
    ]
    assert workspace.event_count() == events
