"""Approval-gated remediation, as people live it: request in Slack, approvals, the fake cluster changes."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from bot.comms.comms_records import Reminder
from bot.core.clock import FrozenClock
from bot.core.settings import (
    ApproversConfig,
    Config,
    EcsTarget,
    KubernetesTarget,
    PolicyConfig,
    ServiceConfig,
)
from bot.remediation.action_records import ActionRequest
from bot.remediation.least_privilege import kubernetes_rbac
from bot.remediation.platforms import Platforms
from bot.slack import rendering
from integrations.ecs_services import EcsServices
from integrations.kubernetes_rollouts import KubernetesDeployments
from sandbox.emulator import SlackEmulator
from sandbox.fakes.kubernetes_api import FakeKubernetes
from tests.integrations.aws_fixtures import client, client_factory, moto_server, reset_moto
from tests.support import (
    CHANNEL,
    Workspace,
    action_count,
    finished,
    request,
    start_tars,
    stored_action,
    vote,
)

MINUTE = timedelta(minutes=1)
SERVICES = {
    "payments": ServiceConfig(
        oncall="U0PAYONCALL",
        kubernetes=KubernetesTarget(namespace="prod", deployment="payments"),
        max_replicas=10,
    ),
    "checkout": ServiceConfig(oncall="U0CHKONCALL", ecs=EcsTarget(cluster="production", service="checkout")),
    "notifications": ServiceConfig(oncall="U0NTFONCALL"),
}
APPROVERS = ApproversConfig(users=["U0BOB", "U0CAROL"], usergroup="S0SRE")


@pytest.fixture
def clock(cluster: FakeKubernetes) -> FrozenClock:
    # The fake cluster stamps objects with the real time, to the second; the rollback advice compares against
    # ours. Read after the cluster's deployments exist, our "now" is never a second before their stamps.
    return FrozenClock(datetime.now(UTC).replace(microsecond=0))


# TARS's ServiceAccount token: the fake cluster authorizes it only with the Role `tars policy kubernetes` prints.
TARS_TOKEN = "tars-service-account-token"


@pytest.fixture
def cluster() -> Iterator[FakeKubernetes]:
    with FakeKubernetes() as fake:
        fake.create_deployment("prod", "payments", image="registry/app:1.0", replicas=3)
        fake.set_image("prod", "payments", "registry/app:1.1")
        fake.set_image("prod", "payments", "registry/app:1.2")
        rbac = kubernetes_rbac(Config(services=SERVICES), service_account="tars", account_namespace="tars")
        fake.enforce_rbac(rbac, {TARS_TOKEN: "system:serviceaccount:tars:tars"})
        yield fake


@pytest.fixture(scope="module")
def aws() -> Iterator[str]:
    with moto_server() as endpoint:
        yield endpoint


def _workspace(
    slack: SlackEmulator, engine: Engine, clock: FrozenClock, cluster: FakeKubernetes, aws: str, **config: Any
) -> Iterator[Workspace]:
    for user, name in [("U0CAROL", "carol"), ("U0DAVE", "dave"), ("U0EVE", "eve")]:
        slack.add_user(user, name)
    slack.add_usergroup("S0SRE", "sre", ["U0DAVE"])
    dry_run = bool(config.get("dry_run", False))
    platforms = Platforms(
        Config(database_url="", services=SERVICES),
        kubernetes=KubernetesDeployments(
            api_client_factory=lambda _context: cluster.api_client(TARS_TOKEN), dry_run=dry_run
        ),
        ecs=EcsServices(client_factory=client_factory(aws, "ecs"), dry_run=dry_run),
        rollout_timeout=5,
        poll_seconds=0.05,
    )
    with start_tars(
        slack, engine, clock, services=SERVICES, approvers=APPROVERS, platforms=platforms, **config
    ) as running:
        yield Workspace(running, slack, engine, clock)


@pytest.fixture
def team(
    slack: SlackEmulator, engine: Engine, clock: FrozenClock, cluster: FakeKubernetes, aws: str
) -> Iterator[Workspace]:
    yield from _workspace(slack, engine, clock, cluster, aws)


def _image(cluster: FakeKubernetes) -> str:
    return str(cluster.deployment("prod", "payments")["spec"]["template"]["spec"]["containers"][0]["image"])


def _patches(cluster: FakeKubernetes) -> list[Any]:
    return [r for r in cluster.requests if r[0] == "PATCH" and r[1].endswith("/deployments/payments")]


# --- the "done when" ------------------------------------------------------------------------------------


def test_p1_rollback_from_request_to_validated_fix(team: Workspace, cluster: FakeKubernetes) -> None:
    incident = team.declare()
    action = request(team, f"rollback {incident.id}")

    card = team.slack.message(CHANNEL, action.card_ts or "")
    assert card.thread_ts == incident.card_ts  # in the incident's thread
    assert (
        "payments: deploy/payments (ns prod): revision 3 → 2, image app=registry/app:1.2 → registry/app:1.1"
        in card.text
    )
    assert "0/1 needed, P1 policy" in card.text
    assert "✅ the runbook's rollback rule holds" in card.text
    buttons = [e for b in card.blocks if b["type"] == "actions" for e in b["elements"]]
    assert [(b["action_id"], "confirm" in b) for b in buttons] == [
        (rendering.APPROVE_ACTION, True),
        (rendering.DENY_ACTION, True),
    ]

    refused = vote(team, action, "U0ALICE")
    assert refused.args["text"] == "You requested #1; someone else has to approve it."
    assert _image(cluster) == "registry/app:1.2"

    approved = vote(team, action, "U0BOB")
    assert approved.args["text"] == "Approved; running #1 now."
    done = finished(team, action.id)
    assert done.state == "succeeded", done.result

    deployment = cluster.deployment("prod", "payments")
    assert _image(cluster) == "registry/app:1.1"  # revision 2's template
    assert deployment["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "4"
    assert len(_patches(cluster)) == 1

    posts = [c.args["text"] for c in team.channel_posts("") if c.args["text"][:2] in ("▶️", "✅ ")]
    assert posts[0].startswith("▶️ INC-1: started remediation #1: payments: deploy/payments")
    assert "(approved by <@U0BOB>)" in posts[0]
    assert posts[1].startswith("✅ INC-1: remediation #1 succeeded:")
    kinds = [e.kind for e in team.timeline(incident.id)]
    for kind in (
        "action_requested",
        "approval_refused",
        "action_approval",
        "action_started",
        "action_succeeded",
    ):
        assert kind in kinds
    assert "✅ Succeeded" in team.slack.message(CHANNEL, action.card_ts or "").text

    with Session(team.engine) as session:
        due = sorted(
            r.due_at
            for r in session.scalars(
                select(Reminder).where(Reminder.kind == "custom", Reminder.state == "pending")
            )
        )
    assert due == [team.clock.now() + 5 * MINUTE, team.clock.now() + 10 * MINUTE]
    team.later(5 * MINUTE)
    reminder = team.slack.wait_for("chat.postMessage", lambda c: str(c.args.get("text", "")).startswith("⏰"))
    assert reminder.args["text"].startswith(
        "⏰ <@U0ALICE> <@U0BOB> Validate INC-1: the error rate should be below 0.1%"
    )


# --- the approval policy ------------------------------------------------------------------------------------------


def test_p2_needs_two_distinct_approvers(team: Workspace, cluster: FakeKubernetes) -> None:
    incident = team.declare("payments P2 Card payments degraded")
    action = request(team, f"rollback {incident.id} payments to=1")
    assert (
        vote(team, action, "U0BOB").args["text"]
        == "Approved; #1 needs 1 more approval(s) from a different approver."
    )
    assert vote(team, action, "U0BOB").args["text"] == "You already voted on #1; it needs 1 more approval(s)."
    assert _patches(cluster) == []
    assert (
        vote(team, action, "U0DAVE").args["text"] == "Approved; running #1 now."
    )  # via the S0SRE user group
    assert finished(team, action.id).state == "succeeded"
    assert _image(cluster) == "registry/app:1.0"


def test_outsiders_are_refused_and_audited(team: Workspace, cluster: FakeKubernetes) -> None:
    incident = team.declare()
    action = request(team, f"rollback {incident.id}")
    reply = vote(team, action, "U0EVE")
    assert reply.args["text"].startswith(
        "Only approvers can decide remediation (<@U0BOB>, <@U0CAROL>, <!subteam^S0SRE>)"
    )
    reply = vote(team, action, "U0EVE", approve=False)
    assert reply.args["text"].startswith("Only approvers")
    audits = [e for e in team.timeline(incident.id) if e.kind == "approval_refused"]
    assert [(e.actor, e.data["reason"]) for e in audits] == [
        ("U0EVE", "not an approver"),
        ("U0EVE", "not an approver"),
    ]
    assert stored_action(team, action.id).state == "pending"
    assert _patches(cluster) == []


def test_one_deny_cancels_and_later_clicks_hear_the_outcome(team: Workspace, cluster: FakeKubernetes) -> None:
    incident = team.declare()
    action = request(team, f"rollback {incident.id}")
    assert vote(team, action, "U0CAROL", approve=False).args["text"] == "You denied #1."
    team.settle()
    assert stored_action(team, action.id).state == "denied"
    card = team.slack.message(CHANNEL, action.card_ts or "")
    assert "🚫 Denied" in card.text and not [b for b in card.blocks if b["type"] == "actions"]
    assert vote(team, action, "U0BOB").args["text"] == "Request #1 was denied by <@U0CAROL>."
    assert _patches(cluster) == []


def test_requests_expire(team: Workspace, cluster: FakeKubernetes) -> None:
    incident = team.declare()
    action = request(team, f"rollback {incident.id}")
    team.later(31 * MINUTE)
    assert stored_action(team, action.id).state == "expired"
    assert "⌛ Expired" in team.slack.message(CHANNEL, action.card_ts or "").text
    assert vote(team, action, "U0BOB").args["text"].startswith("Request #1 expired at")
    assert _patches(cluster) == []
    # An expired request no longer blocks a new one.
    assert request(team, f"rollback {incident.id}").id == 2


def test_a_changed_target_refuses_execution(team: Workspace, cluster: FakeKubernetes) -> None:
    incident = team.declare()
    action = request(team, f"rollback {incident.id}")
    cluster.set_image("prod", "payments", "registry/app:1.3")  # someone deployed meanwhile
    vote(team, action, "U0BOB")
    done = finished(team, action.id)
    assert done.state == "failed"
    assert "payments changed since the request (revision was 3 and is now 4" in (done.result or {})["summary"]
    assert _image(cluster) == "registry/app:1.3"
    assert any(
        c.args["text"].startswith("❌ INC-1: remediation #1 failed: refused:")
        for c in team.channel_posts("❌")
    )


def test_only_one_remediation_in_flight(team: Workspace) -> None:
    incident = team.declare()
    request(team, f"rollback {incident.id}")
    team.command(f"scale {incident.id} payments 6", user="U0BOB")
    team.ephemeral_to("U0BOB", "INC-1 already has remediation #1 pending: payments: deploy/payments")
    assert action_count(team) == 1


def test_concurrent_approvals_execute_once(team: Workspace, cluster: FakeKubernetes) -> None:
    incident = team.declare()
    action = request(team, f"rollback {incident.id}")
    barrier = threading.Barrier(2)
    replies: dict[str, str] = {}

    def click(user: str) -> None:
        barrier.wait()
        team.client.click_button(
            user_id=user,
            channel_id=CHANNEL,
            message_ts=action.card_ts or "",
            action_id=rendering.APPROVE_ACTION,
            value=str(action.id),
        )

    threads = [threading.Thread(target=click, args=(user,)) for user in ("U0BOB", "U0CAROL")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    calls = team.slack.wait_for_count("response_url", 2, lambda c: c.args.get("user") in ("U0BOB", "U0CAROL"))
    replies = {c.args["user"]: c.args["text"] for c in calls}
    assert sorted(replies.values())[0].startswith("Approved; running #1 now.")
    assert "was already approved" in sorted(replies.values())[1]
    assert finished(team, action.id).state == "succeeded"
    assert len(_patches(cluster)) == 1


# --- scaling, ECS, refusals, dry run ------------------------------------------------------------------------------


def test_scale_a_kubernetes_deployment(team: Workspace, cluster: FakeKubernetes) -> None:
    incident = team.declare()
    action = request(team, f"scale {incident.id} payments 6")
    assert action.summary == "payments: deploy/payments (ns prod): replicas 3 → 6"
    vote(team, action, "U0BOB")
    assert finished(team, action.id).state == "succeeded"
    assert cluster.deployment("prod", "payments")["spec"]["replicas"] == 6
    assert any(r[1].endswith("/deployments/payments/scale") for r in cluster.requests if r[0] == "PATCH")


@pytest.mark.parametrize(
    ("text", "reply"),
    [
        ("scale 1 payments 50", "50 replicas is out of bounds for `payments`: choose 1 to 10"),
        ("scale 1 payments 0", "0 replicas is out of bounds for `payments`"),
        (
            "rollback 1 notifications",
            "TARS cannot roll back `notifications`: its catalog entry names no `kubernetes` or `ecs` target.",
        ),
        (
            "rollback 1 payments to=9",
            "TARS could not plan this: unable to find specified revision 9 in history",
        ),
    ],
)
def test_refusals_are_specific(team: Workspace, text: str, reply: str) -> None:
    team.declare()
    team.command(text, user="U0BOB")
    team.ephemeral_to("U0BOB", reply)
    assert action_count(team) == 0


def test_unknown_service_is_refused_in_the_ack(team: Workspace) -> None:
    team.declare()
    body = team.command("rollback 1 billing").json()
    assert "Unknown service `billing`" in body["text"]


def test_ecs_rollback_and_scale(team: Workspace, aws: str, monkeypatch: pytest.MonkeyPatch) -> None:
    reset_moto(aws)
    ecs = client(aws, "ecs")
    ecs.create_cluster(clusterName="production")
    for minor in (1, 2, 3):
        ecs.register_task_definition(
            family="checkout",
            containerDefinitions=[{"name": "app", "image": f"repo/checkout:2.{minor}", "memory": 128}],
        )
    monkeypatch.setenv("MOTO_ECS_SERVICE_RUNNING", "2")  # moto reports a finished rollout only when told so
    ecs.create_service(
        cluster="production", serviceName="checkout", taskDefinition="checkout:3", desiredCount=2
    )
    incident = team.declare("checkout P1 Checkout down")

    action = request(team, f"rollback {incident.id}")
    assert "task definition checkout:3 → checkout:2" in action.summary
    vote(team, action, "U0BOB")
    assert finished(team, action.id).state == "succeeded", stored_action(team, action.id).result
    service = ecs.describe_services(cluster="production", services=["checkout"])["services"][0]
    assert service["taskDefinition"].endswith("checkout:2")

    action = request(team, f"scale {incident.id} checkout 4")
    vote(team, action, "U0CAROL")
    assert finished(team, action.id).state == "succeeded", stored_action(team, action.id).result
    assert (
        ecs.describe_services(cluster="production", services=["checkout"])["services"][0]["desiredCount"] == 4
    )


def test_dry_run_shows_what_would_be_sent_and_changes_nothing(
    slack: SlackEmulator, engine: Engine, clock: FrozenClock, cluster: FakeKubernetes, aws: str
) -> None:
    for team in _workspace(slack, engine, clock, cluster, aws, dry_run=True, policy=PolicyConfig()):
        incident = team.declare()
        action = request(team, f"rollback {incident.id}")
        vote(team, action, "U0BOB")
        done = finished(team, action.id)
        assert done.state == "succeeded"
        assert (done.result or {})["summary"].startswith("DRY RUN: would")
        assert (done.result or {})["request"]["content_type"] == "application/json-patch+json"
        assert _image(cluster) == "registry/app:1.2"
        assert _patches(cluster) == []
        assert team.channel_posts("🧪 DRY RUN ▶️")


def test_show_gives_the_rollback_advice(team: Workspace) -> None:
    team.declare()
    team.command("show 1", user="U0BOB")
    detail = team.ephemeral_to("U0BOB", "*Rollback advice*: Last deployment")
    assert "✅ the runbook's rollback rule holds" in detail.args["text"]


# --- found in review -----------------------------------------------------------------------------------------------


def test_resolving_retires_a_pending_request_so_it_can_never_run(
    team: Workspace, cluster: FakeKubernetes
) -> None:
    incident = team.declare()
    action = request(team, f"rollback {incident.id}")
    team.command(f"resolve {incident.id} Fixed upstream --force")
    team.wait_until(lambda: stored_action(team, action.id).state == "expired")
    assert vote(team, action, "U0BOB").args["text"].startswith("Request #1 expired")
    assert _patches(cluster) == []
    team.settle()
    assert "⌛ Expired" in team.slack.message(CHANNEL, action.card_ts or "").text


def test_a_run_abandoned_by_a_restart_does_not_block_the_incident(team: Workspace) -> None:
    incident = team.declare()
    action = request(team, f"rollback {incident.id}")
    with Session(team.engine) as session, session.begin():  # as if TARS died right after the approval
        stored = session.get(ActionRequest, action.id)
        assert stored is not None
        stored.state, stored.decided_at = "executing", team.clock.now()
    team.command(f"scale {incident.id} payments 6", user="U0BOB")
    team.ephemeral_to("U0BOB", "INC-1 already has remediation #1 executing")
    team.clock.advance(31 * MINUTE)
    assert request(team, f"scale {incident.id} payments 6", user="U0BOB").id == 2
    abandoned = stored_action(team, action.id)
    assert (
        abandoned.state == "failed" and "TARS lost track of this run" in (abandoned.result or {})["summary"]
    )


def test_an_approved_run_that_never_started_is_started_from_its_row(
    slack: SlackEmulator, engine: Engine, clock: FrozenClock, cluster: FakeKubernetes, aws: str
) -> None:
    """The approval commits the run's start as a row: if the replica that answered stops before starting it,
    another replica starts it (once), instead of the run being written off as abandoned half an hour later."""
    replica_a = _workspace(slack, engine, clock, cluster, aws)
    team = next(replica_a)
    incident = team.declare()
    action = request(team, f"rollback {incident.id}")
    team.running.app.tars.delivery.stop()  # replica A answers Slack but will never start anything again
    assert vote(team, action, "U0BOB").args["text"] == "Approved; running #1 now."
    assert stored_action(team, action.id).state == "executing"
    assert _patches(cluster) == []

    replica_b = _workspace(slack, engine, clock, cluster, aws)
    other = next(replica_b)
    try:
        done = finished(other, action.id)
        assert done.state == "succeeded", done.result
        assert _image(cluster) == "registry/app:1.1"
        assert len(_patches(cluster)) == 1
        assert [e.kind for e in other.timeline(incident.id)].count("action_started") == 1
    finally:
        for replica in (replica_b, replica_a):
            with contextlib.suppress(StopIteration):
                next(replica)


def test_raising_the_severity_raises_the_approvals_needed(team: Workspace, cluster: FakeKubernetes) -> None:
    incident = team.declare("payments P1 Payments down")
    action = request(team, f"rollback {incident.id}")
    team.command(f"severity {incident.id} P2")
    team.wait_until(lambda: team.incident(incident.id).severity == 2)
    assert vote(team, action, "U0BOB").args["text"].startswith("Approved; #1 needs 1 more approval(s)")
    assert _patches(cluster) == []
