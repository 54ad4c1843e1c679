"""EcsServices against a moto ECS server: rollback, scale, dry run, TargetChanged, waiting for steady state."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC
from typing import Any

import pytest

from integrations.ecs_services import EcsServiceRef, EcsServices
from integrations.plans import IntegrationError, NothingToDo, TargetChanged
from tests.integrations.aws_fixtures import (
    FakeClock,
    client,
    client_factory,
)

CLUSTER = "production"
REF = EcsServiceRef(cluster=CLUSTER, service="payments")


@pytest.fixture
def ecs(endpoint: str) -> Any:
    return client(endpoint, "ecs")


def _register(ecs: Any, family: str, image: str) -> str:
    response = ecs.register_task_definition(
        family=family, containerDefinitions=[{"name": "app", "image": image, "memory": 128}]
    )
    return response["taskDefinition"]["taskDefinitionArn"]


@pytest.fixture
def payments(ecs: Any) -> EcsServiceRef:
    """Cluster 'production', family payments:1..3 (repo/app:1.1..1.3), service 'payments' on revision 3."""
    ecs.create_cluster(clusterName=CLUSTER)
    for minor in (1, 2, 3):
        _register(ecs, "payments", f"repo/app:1.{minor}")
    # A look-alike family with a higher revision must never be offered as a rollback target.
    for _ in range(5):
        _register(ecs, "payments-worker", "repo/worker:9")
    ecs.create_service(cluster=CLUSTER, serviceName="payments", taskDefinition="payments:3", desiredCount=2)
    return REF


def _services(endpoint: str, **kwargs: Any) -> EcsServices:
    return EcsServices(client_factory=client_factory(endpoint, "ecs"), **kwargs)


def _described(ecs: Any, service: str = "payments") -> dict[str, Any]:
    return ecs.describe_services(cluster=CLUSTER, services=[service])["services"][0]


# -- snapshot -----------------------------------------------------------------------------------------------


def test_snapshot_reads_service_and_task_definition(endpoint: str, payments: EcsServiceRef) -> None:
    snap = _services(endpoint).snapshot(payments)

    assert snap.ref == payments
    assert snap.task_definition_arn.endswith(":task-definition/payments:3")
    assert (snap.family, snap.revision) == ("payments", 3)
    assert (snap.desired_count, snap.running_count) == (2, 0)
    assert snap.images == {"app": "repo/app:1.3"}
    assert snap.last_deployed_at is not None
    assert snap.last_deployed_at.tzinfo == UTC


def test_unknown_service_and_cluster_are_named(endpoint: str, payments: EcsServiceRef) -> None:
    services = _services(endpoint)

    with pytest.raises(IntegrationError) as missing_service:
        services.snapshot(EcsServiceRef(cluster=CLUSTER, service="ledger"))
    assert "'ledger'" in missing_service.value.message
    assert "'production'" in missing_service.value.message

    with pytest.raises(IntegrationError) as missing_cluster:
        services.snapshot(EcsServiceRef(cluster="staging", service="payments"))
    assert "cluster 'staging' not found" in missing_cluster.value.message
    assert "'payments'" in missing_cluster.value.message


# -- rollback -----------------------------------------------------------------------------------------------


def test_rollback_defaults_to_previous_revision(endpoint: str, ecs: Any, payments: EcsServiceRef) -> None:
    services = _services(endpoint)
    before = services.snapshot(payments)

    plan = services.plan_rollback(payments)

    assert plan.to_revision == 2
    assert plan.to_task_definition_arn.endswith(":task-definition/payments:2")
    assert plan.to_images == {"app": "repo/app:1.2"}
    assert plan.describe() == (
        "ecs payments (cluster production): task definition payments:3 → payments:2, "
        "image app=repo/app:1.3 → repo/app:1.2"
    )

    result = services.rollback(plan)

    assert result.ok and not result.dry_run
    assert result.request == {
        "operation": "UpdateService",
        "params": {
            "cluster": CLUSTER,
            "service": "payments",
            "taskDefinition": plan.to_task_definition_arn,
            "forceNewDeployment": True,
        },
    }
    assert (
        result.summary == "payments: rolled back to revision 2 (image app=repo/app:1.2); deployment started"
    )
    assert result.details["from_revision"] == 3
    assert result.details["to_revision"] == 2
    assert result.details["to_images"] == {"app": "repo/app:1.2"}
    assert _described(ecs)["taskDefinition"].endswith("payments:2")
    after = services.snapshot(payments)
    assert after.revision == 2
    assert after.last_deployed_at is not None and before.last_deployed_at is not None
    assert after.last_deployed_at >= before.last_deployed_at


def test_rollback_to_explicit_revision(endpoint: str, ecs: Any, payments: EcsServiceRef) -> None:
    services = _services(endpoint)

    plan = services.plan_rollback(payments, to_revision=1)
    services.rollback(plan)

    assert plan.describe().endswith("payments:3 → payments:1, image app=repo/app:1.3 → repo/app:1.1")
    assert _described(ecs)["taskDefinition"].endswith("payments:1")


def test_inactive_revision_is_skipped(endpoint: str, ecs: Any, payments: EcsServiceRef) -> None:
    ecs.deregister_task_definition(taskDefinition="payments:2")
    services = _services(endpoint)

    assert services.plan_rollback(payments).to_revision == 1

    with pytest.raises(IntegrationError) as error:
        services.plan_rollback(payments, to_revision=2)
    assert not isinstance(error.value, NothingToDo)
    assert "ACTIVE revisions: 3, 1" in error.value.message


def test_unknown_revision_lists_active_ones(endpoint: str, payments: EcsServiceRef) -> None:
    with pytest.raises(
        IntegrationError, match=r"payments:9 is not an ACTIVE revision.*ACTIVE revisions: 3, 2, 1"
    ):
        _services(endpoint).plan_rollback(payments, to_revision=9)


def test_rollback_to_current_revision_is_nothing_to_do(endpoint: str, payments: EcsServiceRef) -> None:
    with pytest.raises(NothingToDo, match="already runs payments:3"):
        _services(endpoint).plan_rollback(payments, to_revision=3)


def test_no_earlier_active_revision(endpoint: str, ecs: Any, payments: EcsServiceRef) -> None:
    ecs.update_service(cluster=CLUSTER, service="payments", taskDefinition="payments:1")

    with pytest.raises(IntegrationError) as error:
        _services(endpoint).plan_rollback(payments)
    assert error.value.message == "no earlier ACTIVE revision of task definition family payments"


def test_rollback_refuses_when_someone_deployed_since_plan(
    endpoint: str, ecs: Any, payments: EcsServiceRef
) -> None:
    services = _services(endpoint)
    plan = services.plan_rollback(payments)
    new_arn = _register(ecs, "payments", "repo/app:1.4")
    ecs.update_service(cluster=CLUSTER, service="payments", taskDefinition=new_arn)

    with pytest.raises(TargetChanged, match="now runs payments:4, not payments:3"):
        services.rollback(plan)
    assert _described(ecs)["taskDefinition"] == new_arn  # nothing was sent


def test_dry_run_rollback_reads_but_sends_nothing(endpoint: str, ecs: Any, payments: EcsServiceRef) -> None:
    services = _services(endpoint, dry_run=True)
    plan = services.plan_rollback(payments)

    result = services.rollback(plan)

    assert result.ok and result.dry_run
    assert result.summary.startswith("DRY RUN: would ")
    assert "payments:3 → payments:2" in result.summary
    assert result.request["operation"] == "UpdateService"
    assert result.request["params"]["taskDefinition"] == plan.to_task_definition_arn
    assert result.details == {}
    assert _described(ecs)["taskDefinition"].endswith("payments:3")


# -- scale --------------------------------------------------------------------------------------------------


def test_scale(endpoint: str, ecs: Any, payments: EcsServiceRef) -> None:
    services = _services(endpoint)

    plan = services.plan_scale(payments, 6)
    assert plan.describe() == "ecs payments (cluster production): desired count 2 → 6"
    result = services.scale(plan)

    assert result.ok and not result.dry_run
    assert result.request == {
        "operation": "UpdateService",
        "params": {"cluster": CLUSTER, "service": "payments", "desiredCount": 6},
    }
    assert result.details == {"from_count": 2, "to_count": 6}
    assert _described(ecs)["desiredCount"] == 6


def test_scale_validation(endpoint: str, payments: EcsServiceRef) -> None:
    services = _services(endpoint)

    with pytest.raises(NothingToDo):
        services.plan_scale(payments, 2)
    with pytest.raises(IntegrationError, match="≥ 0") as negative:
        services.plan_scale(payments, -1)
    assert not isinstance(negative.value, NothingToDo)


def test_scale_refuses_when_desired_count_changed(endpoint: str, ecs: Any, payments: EcsServiceRef) -> None:
    services = _services(endpoint)
    plan = services.plan_scale(payments, 6)
    ecs.update_service(cluster=CLUSTER, service="payments", desiredCount=4)

    with pytest.raises(TargetChanged, match="desired count is now 4, not 2"):
        services.scale(plan)
    assert _described(ecs)["desiredCount"] == 4


def test_dry_run_scale_sends_nothing(endpoint: str, ecs: Any, payments: EcsServiceRef) -> None:
    services = _services(endpoint, dry_run=True)

    result = services.scale(services.plan_scale(payments, 6))

    assert result.ok and result.dry_run
    assert result.summary == "DRY RUN: would set ecs payments (cluster production): desired count 2 → 6"
    assert result.request["params"]["desiredCount"] == 6
    assert _described(ecs)["desiredCount"] == 2


# -- waiting ------------------------------------------------------------------------------------------------


def _steady_service(ecs: Any, monkeypatch: pytest.MonkeyPatch, name: str, count: int) -> EcsServiceRef:
    # moto only ever reports running tasks (and a COMPLETED rollout) when told to via this variable when the
    # service is created; the server runs in this process, so it sees the patched environment.
    monkeypatch.setenv("MOTO_ECS_SERVICE_RUNNING", str(count))
    ecs.create_service(cluster=CLUSTER, serviceName=name, taskDefinition="payments:3", desiredCount=count)
    monkeypatch.delenv("MOTO_ECS_SERVICE_RUNNING")
    return EcsServiceRef(cluster=CLUSTER, service=name)


def test_wait_returns_at_once_when_steady(
    endpoint: str, ecs: Any, payments: EcsServiceRef, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = _steady_service(ecs, monkeypatch, "ledger", 2)
    fake = FakeClock()
    progress: list[str] = []

    ok, message = _services(endpoint, clock=fake, sleep=fake.sleep).wait_until_stable(
        ref, on_progress=progress.append
    )

    assert (ok, message) == (True, "ledger: 2 of 2 tasks running (steady)")
    assert progress == [message]
    assert fake.sleeps == []


def test_wait_times_out_without_raising(endpoint: str, payments: EcsServiceRef) -> None:
    # moto's default service never starts tasks, so its first deployment stays IN_PROGRESS forever.
    fake = FakeClock()
    progress: list[str] = []

    ok, message = _services(endpoint, clock=fake, sleep=fake.sleep).wait_until_stable(
        payments, timeout=12, poll=5, on_progress=progress.append
    )

    assert not ok
    assert message == "payments: 0 of 2 tasks running (2 pending, 1 deployment in progress)"
    assert progress == [message]  # reported once: the message never changed
    assert fake.sleeps == [5, 5, 2]  # the last sleep is clipped to the deadline


def test_all_tasks_running_is_not_steady_while_rollout_in_progress(
    endpoint: str, ecs: Any, payments: EcsServiceRef
) -> None:
    # moto sets runningCount = desiredCount on update_service but leaves the deployment IN_PROGRESS, which
    # is also what real ECS reports while new tasks pass health checks.
    ecs.update_service(cluster=CLUSTER, service="payments", desiredCount=2)
    fake = FakeClock()

    ok, message = _services(endpoint, clock=fake, sleep=fake.sleep).wait_until_stable(payments, timeout=1)

    assert not ok
    assert message == "payments: 2 of 2 tasks running (1 deployment in progress)"


class _ScriptedDescribe:
    """Thin proxy over the moto-backed ECS client that edits what describe_services reports.

    moto cannot express a rollout that progresses by itself: runningCount only changes on update_service,
    a service never has more than one deployment, and rolloutState never moves after creation. Each call
    to describe_services applies the next scripted edit to moto's real answer; once the script is used up,
    moto's answer passes through unchanged. Every other method goes straight to moto.
    """

    def __init__(self, real: Any, edits: list[Callable[[dict[str, Any]], None]]) -> None:
        self._real = real
        self._edits = list(edits)

    def describe_services(self, **kwargs: Any) -> dict[str, Any]:
        response = self._real.describe_services(**kwargs)
        if self._edits:
            self._edits.pop(0)(response["services"][0])
        return response

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def _rolling(running: int, *, older: bool) -> Callable[[dict[str, Any]], None]:
    def edit(service: dict[str, Any]) -> None:
        service["runningCount"] = running
        service["pendingCount"] = service["desiredCount"] - running
        primary = service["deployments"][0]
        primary["rolloutState"] = "IN_PROGRESS"
        if older:
            service["deployments"].append({**primary, "id": "ecs-svc/old", "status": "ACTIVE"})

    return edit


def _failed(service: dict[str, Any]) -> None:
    service["deployments"][0]["rolloutState"] = "FAILED"
    service["deployments"][0]["rolloutStateReason"] = "ECS deployment circuit breaker: tasks failed to start."


def test_wait_reports_progress_until_steady(
    endpoint: str, ecs: Any, payments: EcsServiceRef, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = _steady_service(ecs, monkeypatch, "ledger", 6)
    proxy = _ScriptedDescribe(
        client(endpoint, "ecs"),
        [_rolling(2, older=True), _rolling(2, older=True), _rolling(5, older=False)],
    )
    fake = FakeClock()
    progress: list[str] = []
    services = EcsServices(client_factory=lambda region: proxy, clock=fake, sleep=fake.sleep)

    ok, message = services.wait_until_stable(ref, timeout=60, poll=5, on_progress=progress.append)

    assert (ok, message) == (True, "ledger: 6 of 6 tasks running (steady)")
    assert progress == [
        "ledger: 2 of 6 tasks running (4 pending, 1 deployment in progress, 1 older deployment draining)",
        "ledger: 5 of 6 tasks running (1 pending, 1 deployment in progress)",
        "ledger: 6 of 6 tasks running (steady)",
    ]
    assert fake.sleeps == [5, 5, 5]


def test_wait_stops_on_failed_rollout(
    endpoint: str, ecs: Any, payments: EcsServiceRef, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = _steady_service(ecs, monkeypatch, "ledger", 2)
    proxy = _ScriptedDescribe(client(endpoint, "ecs"), [_failed])
    fake = FakeClock()
    services = EcsServices(client_factory=lambda region: proxy, clock=fake, sleep=fake.sleep)

    ok, message = services.wait_until_stable(ref, timeout=600)

    assert not ok
    assert "deployment failed: ECS deployment circuit breaker" in message
    assert fake.sleeps == []


def test_wait_survives_missing_service_and_failing_callback(endpoint: str, payments: EcsServiceRef) -> None:
    fake = FakeClock()

    def broken(message: str) -> None:
        raise RuntimeError("slack is down")

    ok, message = _services(endpoint, clock=fake, sleep=fake.sleep).wait_until_stable(
        EcsServiceRef(cluster=CLUSTER, service="ledger"), timeout=5, poll=5, on_progress=broken
    )

    assert not ok
    assert message.startswith("ledger: could not describe service: ECS service 'ledger' not found")


# -- client configuration -----------------------------------------------------------------------------------


def test_default_factory_never_retries_mutations(endpoint: str) -> None:
    services = EcsServices(endpoint_url=endpoint)

    writer = services._client("us-east-1", mutating=True)
    reader = services._client("us-east-1")

    assert writer.meta.endpoint_url == endpoint
    assert writer.meta.config.retries["total_max_attempts"] == 1
    assert reader.meta.config.retries["total_max_attempts"] > 1
