"""KubernetesDeployments against FakeKubernetes, through the unmodified official client.

The fake runs a synchronous deployment controller, so after a PATCH returns the revision bookkeeping
already reflects what kube-controller-manager would do; the assertions lean on that to check that our
``kubectl rollout undo`` reimplementation lands on the same revision numbers kubectl would.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.config import incluster_config

from integrations.kubernetes_rollouts import (
    DeploymentRef,
    KubernetesDeployments,
    RolloutStatus,
    label_selector,
    templates_equal,
)
from integrations.plans import IntegrationError, NothingToDo, TargetChanged
from sandbox.fakes.kubernetes_api import (
    JSON_PATCH,
    MERGE_PATCH,
    POD_TEMPLATE_HASH,
    REVISION,
    FakeKubernetes,
    RecordedRequest,
)

NS = "prod"
REF = DeploymentRef(NS, "payments")
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
CHANGE_CAUSE = "kubernetes.io/change-cause"


@pytest.fixture
def fake() -> Iterator[FakeKubernetes]:
    with FakeKubernetes() as server:
        yield server


@pytest.fixture
def slow_fake() -> Iterator[FakeKubernetes]:
    with FakeKubernetes(auto_rollout=False) as server:
        yield server


@pytest.fixture
def k8s(fake: FakeKubernetes) -> Iterator[KubernetesDeployments]:
    deployments = KubernetesDeployments(api_client_factory=lambda ctx: fake.api_client())
    yield deployments
    deployments.close()


@pytest.fixture
def apps(fake: FakeKubernetes) -> Iterator[client.AppsV1Api]:
    api_client = fake.api_client()
    yield client.AppsV1Api(api_client)
    api_client.close()


def three_revisions(fake: FakeKubernetes, name: str = "payments") -> None:
    fake.create_deployment(NS, name, image="registry/app:1.3.0", replicas=3)
    fake.set_image(NS, name, "registry/app:1.4.1")
    fake.set_image(NS, name, "registry/app:1.5.0")


def revision_of(fake: FakeKubernetes, name: str = "payments") -> str:
    return str(fake.deployment(NS, name)["metadata"]["annotations"][REVISION])


def image_of(fake: FakeKubernetes, name: str = "payments") -> str:
    return str(fake.deployment(NS, name)["spec"]["template"]["spec"]["containers"][0]["image"])


def rs_by_revision(fake: FakeKubernetes) -> dict[str, dict[str, Any]]:
    return {rs["metadata"]["annotations"][REVISION]: rs for rs in fake.replica_sets(NS)}


def writes(fake: FakeKubernetes, since: int = 0) -> list[RecordedRequest]:
    return [r for r in fake.requests[since:] if r.method in ("PATCH", "PUT", "POST", "DELETE")]


# ---- rollback --------------------------------------------------------------------------------


def test_undo_to_previous_revision_like_kubectl(fake: FakeKubernetes, k8s: KubernetesDeployments) -> None:
    three_revisions(fake)

    plan = k8s.plan_rollback(REF)
    assert (plan.snapshot.revision, plan.to_revision) == (3, 2)
    assert plan.snapshot.images == {"app": "registry/app:1.5.0"}
    assert plan.to_images == {"app": "registry/app:1.4.1"}
    assert POD_TEMPLATE_HASH not in plan.template["metadata"]["labels"]
    assert plan.template["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent"  # camelCase JSON
    assert plan.describe() == (
        "deploy/payments (ns prod): revision 3 → 2, image app=registry/app:1.5.0 → registry/app:1.4.1"
    )

    before = len(fake.requests)
    result = k8s.rollback(plan)

    # Exactly one write, a JSON Patch, whose body is what the result says was sent.
    (sent,) = writes(fake, before)
    assert sent.path == "/apis/apps/v1/namespaces/prod/deployments/payments"
    assert sent.content_type == JSON_PATCH
    assert sent.body == result.request["body"]
    assert result.request["content_type"] == JSON_PATCH and result.request["path"] == sent.path
    test_op, template_op, annotations_op = sent.body
    assert test_op == {
        "op": "test",
        "path": "/metadata/resourceVersion",
        "value": plan.snapshot.resource_version,
    }
    assert template_op == {"op": "replace", "path": "/spec/template", "value": plan.template}
    assert annotations_op["op"] == "replace" and annotations_op["path"] == "/metadata/annotations"

    # The controller reuses revision 2's ReplicaSet and renumbers it 4, as on a real cluster.
    assert image_of(fake) == "registry/app:1.4.1"
    assert revision_of(fake) == "4"
    assert sorted(rs_by_revision(fake)) == ["1", "3", "4"]
    assert result.ok and not result.dry_run
    assert result.details["revision"] == 4 and result.details["rolled_back_to"] == 2
    assert result.details["previous_revision"] == 3
    assert result.summary == (
        "deploy/payments (ns prod): rolled back to revision 2 (app=registry/app:1.4.1); now revision 4"
    )


def test_undo_to_a_given_revision(fake: FakeKubernetes, k8s: KubernetesDeployments) -> None:
    three_revisions(fake)

    plan = k8s.plan_rollback(REF, to_revision=1)
    assert plan.to_revision == 1 and plan.to_images == {"app": "registry/app:1.3.0"}
    assert plan.expected_revision() == 4
    result = k8s.rollback(plan)

    assert image_of(fake) == "registry/app:1.3.0"
    assert revision_of(fake) == "4"
    assert sorted(rs_by_revision(fake)) == ["2", "3", "4"]
    assert result.details["revision"] == 4


def test_no_history_is_refused(fake: FakeKubernetes, k8s: KubernetesDeployments) -> None:
    fake.create_deployment(NS, "payments", image="registry/app:1.3.0")

    with pytest.raises(IntegrationError, match=r"^no rollout history found for deployment payments$"):
        k8s.plan_rollback(REF)
    # Asking for the revision it is already at is not an error, just nothing to do.
    with pytest.raises(NothingToDo, match="already at revision 1"):
        k8s.plan_rollback(REF, to_revision=1)


def test_paused_deployment_is_refused(fake: FakeKubernetes, k8s: KubernetesDeployments) -> None:
    fake.create_deployment(NS, "payments", image="registry/app:1.3.0", paused=True)

    with pytest.raises(IntegrationError) as raised:
        k8s.plan_rollback(REF)
    assert raised.value.message == "deployment payments is paused; resume it before rolling back"
    assert not isinstance(raised.value, NothingToDo | TargetChanged)


def test_current_revision_and_matching_template_are_nothing_to_do(
    fake: FakeKubernetes, k8s: KubernetesDeployments, apps: client.AppsV1Api
) -> None:
    three_revisions(fake)
    with pytest.raises(NothingToDo, match="already at revision 3"):
        k8s.plan_rollback(REF, to_revision=3)

    # Two owned ReplicaSets with the same template (what a hash collision leaves behind): undoing to
    # the older one changes nothing, so kubectl skips it. "api" sorts before "foreign-…", which keeps
    # the fake controller treating the original ReplicaSet as current.
    dep = fake.create_deployment(NS, "api", image="registry/api:2.0.0")
    fake.add_foreign_replica_set(
        NS, labels={"app": "api"}, image="registry/api:2.0.0", revision="5", owner_uid=dep["metadata"]["uid"]
    )
    ref = DeploymentRef(NS, "api")
    assert k8s.snapshot(ref).revision == 6
    before = len(fake.requests)
    with pytest.raises(
        NothingToDo, match=r"skipped rollback \(current template already matches revision 5\)"
    ):
        k8s.plan_rollback(ref)
    assert writes(fake, before) == []


def test_revision_gaps(fake: FakeKubernetes, k8s: KubernetesDeployments) -> None:
    three_revisions(fake)
    fake.delete_replica_set(NS, rs_by_revision(fake)["2"]["metadata"]["name"])

    plan = k8s.plan_rollback(REF)
    assert plan.to_revision == 1 and plan.to_images == {"app": "registry/app:1.3.0"}
    assert plan.available_revisions == (1, 3)

    with pytest.raises(IntegrationError) as raised:
        k8s.plan_rollback(REF, to_revision=2)
    assert raised.value.message == "unable to find specified revision 2 in history; available: 1, 3"


def test_foreign_replica_sets_are_ignored(fake: FakeKubernetes, k8s: KubernetesDeployments) -> None:
    fake.create_deployment(NS, "payments", image="registry/app:1.3.0")
    fake.set_image(NS, "payments", "registry/app:1.4.1")
    labels = {"app": "payments"}
    # Same labels, higher revisions: counted as history they would make "previous" = the current one.
    fake.add_foreign_replica_set(NS, labels=labels, image="evil/app:6", revision="10")
    fake.add_foreign_replica_set(NS, labels=labels, image="evil/app:7", revision="11", owner_uid="not-ours")

    plan = k8s.plan_rollback(REF)
    assert plan.to_revision == 1 and plan.to_images == {"app": "registry/app:1.3.0"}
    with pytest.raises(IntegrationError, match=r"revision 10 in history; available: 1, 2$"):
        k8s.plan_rollback(REF, to_revision=10)


def test_target_changed_between_plan_and_execute(fake: FakeKubernetes, k8s: KubernetesDeployments) -> None:
    three_revisions(fake)
    plan = k8s.plan_rollback(REF)
    fake.set_image(NS, "payments", "registry/app:1.6.0")

    before = len(fake.requests)
    with pytest.raises(TargetChanged) as raised:
        k8s.rollback(plan)
    assert raised.value.message == (
        "payments changed since the request: now at revision 4 (was 3); make a new request"
    )
    assert writes(fake, before) == []
    assert image_of(fake) == "registry/app:1.6.0"


def test_status_churn_after_planning_does_not_invalidate_the_plan(slow_fake: FakeKubernetes) -> None:
    # Pods becoming ready bump the Deployment's resourceVersion without changing what was approved;
    # during an incident that churn is constant, so only revision/template changes count.
    fake = slow_fake
    k8s = KubernetesDeployments(api_client_factory=lambda ctx: fake.api_client())
    three_revisions(fake)
    plan = k8s.plan_rollback(REF)
    fake.complete_rollouts()
    assert fake.deployment(NS, "payments")["metadata"]["resourceVersion"] != plan.snapshot.resource_version

    k8s.rollback(plan)
    assert image_of(fake) == "registry/app:1.4.1" and revision_of(fake) == "4"
    k8s.close()


class RacingApiClient(client.ApiClient):
    """The official client, plus a hook that runs just before the first PATCH leaves: a deploy that
    lands between our re-read and our write."""

    def __init__(self, configuration: client.Configuration, before_patch: Callable[[], None]) -> None:
        super().__init__(configuration)
        self.before_patch: Callable[[], None] | None = before_patch

    def call_api(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        if method == "PATCH" and self.before_patch is not None:
            hook, self.before_patch = self.before_patch, None
            hook()
        return super().call_api(method, url, *args, **kwargs)


def test_concurrent_change_makes_the_patch_fail_atomically(fake: FakeKubernetes) -> None:
    three_revisions(fake)
    racing = RacingApiClient(
        fake.api_client().configuration, lambda: fake.set_image(NS, "payments", "registry/app:1.6.0")
    )
    k8s = KubernetesDeployments(api_client_factory=lambda ctx: racing)
    plan = k8s.plan_rollback(REF)

    with pytest.raises(TargetChanged, match="changed since the request") as raised:
        k8s.rollback(plan)
    assert raised.value.status == 422
    # The failed test op rejected the whole patch: the concurrent deploy stands untouched.
    assert image_of(fake) == "registry/app:1.6.0" and revision_of(fake) == "4"
    assert len([r for r in fake.requests if r.method == "PATCH"]) == 1  # no retry
    k8s.close()


def test_annotations_merged_as_kubectl_does(
    fake: FakeKubernetes, k8s: KubernetesDeployments, apps: client.AppsV1Api
) -> None:
    fake.create_deployment(NS, "payments", image="registry/app:1.4.1")
    # The controller copies these (minus last-applied) onto the current ReplicaSet, as a real one does.
    annotate = {"metadata": {"annotations": {CHANGE_CAUSE: "deploy 1.4.1", LAST_APPLIED: '{"v":1}'}}}
    apps.patch_namespaced_deployment("payments", NS, annotate, _content_type=MERGE_PATCH)
    deploy = {
        "metadata": {"annotations": {CHANGE_CAUSE: "deploy 1.5.0", LAST_APPLIED: '{"v":2}', "team": "pay"}},
        "spec": {"template": {"spec": {"containers": [{"name": "app", "image": "registry/app:1.5.0"}]}}},
    }
    apps.patch_namespaced_deployment("payments", NS, deploy)
    assert rs_by_revision(fake)["1"]["metadata"]["annotations"][CHANGE_CAUSE] == "deploy 1.4.1"

    plan = k8s.plan_rollback(REF)
    result = k8s.rollback(plan)

    assert result.request["body"][2]["value"] == {
        LAST_APPLIED: '{"v":2}',  # bookkeeping: kept from the Deployment
        REVISION: "2",  # likewise; the controller then moves it on
        CHANGE_CAUSE: "deploy 1.4.1",  # everything else comes from the target ReplicaSet
    }
    annotations = fake.deployment(NS, "payments")["metadata"]["annotations"]
    assert annotations[CHANGE_CAUSE] == "deploy 1.4.1"
    assert annotations[LAST_APPLIED] == '{"v":2}'
    assert annotations[REVISION] == "3"
    assert "team" not in annotations  # kubectl drops what the old ReplicaSet didn't carry


def test_dry_run_sends_nothing_but_returns_the_body(fake: FakeKubernetes) -> None:
    three_revisions(fake)
    k8s = KubernetesDeployments(api_client_factory=lambda ctx: fake.api_client(), dry_run=True)

    plan = k8s.plan_rollback(REF)
    before = len(fake.requests)
    result = k8s.rollback(plan)

    assert writes(fake, before) == []
    assert result.ok and result.dry_run
    assert result.summary == f"DRY RUN: would roll back {plan.describe()}"
    assert result.request["method"] == "PATCH"
    assert result.request["path"] == "/apis/apps/v1/namespaces/prod/deployments/payments"
    assert result.request["content_type"] == JSON_PATCH
    assert [op["op"] for op in result.request["body"]] == ["test", "replace", "replace"]
    assert result.request["body"][1]["value"] == plan.template
    assert revision_of(fake) == "3" and image_of(fake) == "registry/app:1.5.0"

    scale_plan = k8s.plan_scale(REF, 5)
    before = len(fake.requests)
    scaled = k8s.scale(scale_plan)
    assert writes(fake, before) == []
    assert (
        scaled.dry_run and scaled.summary == "DRY RUN: would scale deploy/payments (ns prod): replicas 3 → 5"
    )
    assert scaled.request["body"] == {"spec": {"replicas": 5}}
    assert fake.deployment(NS, "payments")["spec"]["replicas"] == 3
    k8s.close()


# ---- scale -----------------------------------------------------------------------------------


def test_scale_through_the_subresource(fake: FakeKubernetes, k8s: KubernetesDeployments) -> None:
    fake.create_deployment(NS, "payments", image="registry/app:1.4.1", replicas=3)

    plan = k8s.plan_scale(REF, 6)
    assert plan.describe() == "deploy/payments (ns prod): replicas 3 → 6"
    before = len(fake.requests)
    result = k8s.scale(plan)

    (sent,) = writes(fake, before)
    assert (sent.path, sent.content_type) == (
        "/apis/apps/v1/namespaces/prod/deployments/payments/scale",
        MERGE_PATCH,
    )
    assert sent.body == {"spec": {"replicas": 6}} == result.request["body"]
    assert result.request["path"] == sent.path
    assert fake.deployment(NS, "payments")["spec"]["replicas"] == 6
    assert result.details == {"replicas": 6, "previous_replicas": 3}
    assert result.summary == "deploy/payments (ns prod): scaled from 3 to 6 replicas"

    # Zero is omitted from Scale.spec on the wire; scaling to and back from it must still work.
    k8s.scale(k8s.plan_scale(REF, 0))
    assert k8s.snapshot(REF).replicas == 0
    assert k8s.scale(k8s.plan_scale(REF, 2)).details == {"replicas": 2, "previous_replicas": 0}


def test_scale_refusals(fake: FakeKubernetes, k8s: KubernetesDeployments, apps: client.AppsV1Api) -> None:
    fake.create_deployment(NS, "payments", image="registry/app:1.4.1", replicas=3)

    with pytest.raises(NothingToDo, match="already has 3 replicas"):
        k8s.plan_scale(REF, 3)
    with pytest.raises(IntegrationError, match="replicas must be"):
        k8s.plan_scale(REF, -1)

    plan = k8s.plan_scale(REF, 6)
    apps.patch_namespaced_deployment_scale("payments", NS, {"spec": {"replicas": 4}})
    before = len(fake.requests)
    with pytest.raises(TargetChanged) as raised:
        k8s.scale(plan)
    assert (
        raised.value.message
        == "payments changed since the request: now at 4 replicas (was 3); make a new request"
    )
    assert writes(fake, before) == []
    assert fake.deployment(NS, "payments")["spec"]["replicas"] == 4


# ---- rollout status --------------------------------------------------------------------------


def set_status(apps: client.AppsV1Api, status: dict[str, Any]) -> None:
    apps.patch_namespaced_deployment_status("payments", NS, {"status": status}, _content_type=MERGE_PATCH)


def test_rollout_status_messages(slow_fake: FakeKubernetes) -> None:
    fake = slow_fake
    k8s = KubernetesDeployments(api_client_factory=lambda ctx: fake.api_client())
    api_client = fake.api_client()
    apps = client.AppsV1Api(api_client)
    fake.create_deployment(NS, "payments", image="registry/app:1.4.1", replicas=3)

    status = k8s.rollout_status(REF)
    assert status == RolloutStatus(
        done=False,
        failed=False,
        message='Waiting for deployment "payments" rollout to finish: 0 out of 3 new replicas have been updated...',
        updated=0,
        available=0,
        desired=3,
    )

    fake.complete_rollouts()
    status = k8s.rollout_status(REF)
    assert status.done and not status.failed
    assert status.message == 'deployment "payments" successfully rolled out'
    assert (status.updated, status.available, status.desired) == (3, 3, 3)

    # The remaining kubectl branches, driven through the status subresource.
    set_status(apps, {"updatedReplicas": 3, "replicas": 4, "availableReplicas": 2})
    assert k8s.rollout_status(REF).message == (
        'Waiting for deployment "payments" rollout to finish: 1 old replicas are pending termination...'
    )
    set_status(apps, {"replicas": 3})
    assert k8s.rollout_status(REF).message == (
        'Waiting for deployment "payments" rollout to finish: 2 of 3 updated replicas are available...'
    )
    set_status(apps, {"observedGeneration": 0})
    assert k8s.rollout_status(REF).message == "Waiting for deployment spec update to be observed..."

    k8s.close()
    api_client.close()


def test_rollout_failed_on_progress_deadline(slow_fake: FakeKubernetes) -> None:
    fake = slow_fake
    k8s = KubernetesDeployments(api_client_factory=lambda ctx: fake.api_client())
    fake.create_deployment(NS, "payments", image="registry/app:1.4.1", replicas=3)
    fake.complete_rollouts()
    fake.set_image(NS, "payments", "registry/app:1.5.0")
    fake.fail_rollout(NS, "payments")

    status = k8s.rollout_status(REF)
    assert status.failed and not status.done
    assert status.message == 'deployment "payments" exceeded its progress deadline'
    k8s.close()


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self.on_sleep: Callable[[int], None] | None = None

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        if self.on_sleep is not None:
            self.on_sleep(len(self.sleeps))


def test_wait_for_rollout_times_out_cleanly(slow_fake: FakeKubernetes) -> None:
    fake = slow_fake
    clock = ManualClock()
    k8s = KubernetesDeployments(
        api_client_factory=lambda ctx: fake.api_client(), clock=clock, sleep=clock.sleep
    )
    fake.create_deployment(NS, "payments", image="registry/app:1.4.1", replicas=3)
    seen: list[RolloutStatus] = []

    status = k8s.wait_for_rollout(REF, timeout=7, poll=2, on_progress=seen.append)

    assert not status.done and not status.failed
    assert status.message.endswith("0 out of 3 new replicas have been updated...")
    assert clock.sleeps == [2, 2, 2, 1]  # never sleeps past the deadline
    assert seen == [status]  # the message never changed, so one report
    k8s.close()


def test_wait_for_rollout_reports_progress_until_done(slow_fake: FakeKubernetes) -> None:
    fake = slow_fake
    clock = ManualClock()
    clock.on_sleep = lambda count: fake.complete_rollouts() if count == 2 else None
    k8s = KubernetesDeployments(
        api_client_factory=lambda ctx: fake.api_client(), clock=clock, sleep=clock.sleep
    )
    fake.create_deployment(NS, "payments", image="registry/app:1.4.1", replicas=3)
    seen: list[str] = []

    status = k8s.wait_for_rollout(REF, timeout=600, poll=5, on_progress=lambda s: seen.append(s.message))

    assert status.done
    assert clock.sleeps == [5, 5]
    assert seen == [
        'Waiting for deployment "payments" rollout to finish: 0 out of 3 new replicas have been updated...',
        'deployment "payments" successfully rolled out',
    ]
    k8s.close()


# ---- configuration, snapshots, errors --------------------------------------------------------


def test_default_factory_uses_kubeconfig_and_context(
    fake: FakeKubernetes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An explicit kubeconfig wins even inside a pod.
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    with FakeKubernetes() as other:
        path = tmp_path / "kubeconfig"
        fake.write_kubeconfig(path, context="prod-eu")
        # A second cluster as the *current* context: a ref naming "prod-eu" must not land there.
        config = json.loads(path.read_text())
        other_path = tmp_path / "other"
        other.write_kubeconfig(other_path, context="staging")
        extra = json.loads(other_path.read_text())
        for key in ("clusters", "users", "contexts"):
            config[key] += extra[key]
        config["current-context"] = "staging"
        path.write_text(json.dumps(config))

        fake.create_deployment(NS, "payments", image="registry/app:1.4.1")
        other.create_deployment(NS, "payments", image="registry/app:9.9.9")
        k8s = KubernetesDeployments(kubeconfig=str(path))

        named = k8s.snapshot(DeploymentRef(NS, "payments", context="prod-eu"))
        current = k8s.snapshot(DeploymentRef(NS, "payments"))
        assert named.images == {"app": "registry/app:1.4.1"}
        assert current.images == {"app": "registry/app:9.9.9"}
        assert named.ref.context == "prod-eu"
        assert k8s.plan_scale(named.ref, 4).describe() == (
            "deploy/payments (ns prod, context prod-eu): replicas 2 → 4"
        )

        with pytest.raises(IntegrationError, match="cannot load Kubernetes configuration for context 'nope'"):
            k8s.snapshot(DeploymentRef(NS, "payments", context="nope"))
        k8s.close()


def test_default_factory_goes_in_cluster_without_kubeconfig(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    # Hermetic even when the test itself runs in a pod: point the loader at a token that isn't there.
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(tmp_path / "token"))
    k8s = KubernetesDeployments()
    with pytest.raises(IntegrationError) as raised:
        k8s.snapshot(REF)
    assert raised.value.message == (
        "cannot load Kubernetes configuration for the current context: Service token file does not exist."
    )


def test_snapshot_fields_and_last_deployed_at(fake: FakeKubernetes, k8s: KubernetesDeployments) -> None:
    three_revisions(fake)
    snap = k8s.snapshot(REF)
    dep = fake.deployment(NS, "payments")

    assert snap.ref == REF
    assert (snap.revision, snap.replicas, snap.paused) == (3, 3, False)
    assert snap.images == {"app": "registry/app:1.5.0"}
    assert snap.generation == dep["metadata"]["generation"]
    assert snap.resource_version == dep["metadata"]["resourceVersion"]
    assert snap.last_deployed_at is not None and snap.last_deployed_at.tzinfo is not None
    assert snap.last_deployed_at.utcoffset() == timedelta(0)
    created = rs_by_revision(fake)["3"]["metadata"]["creationTimestamp"]
    assert snap.last_deployed_at == datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert abs(datetime.now(UTC) - snap.last_deployed_at) < timedelta(minutes=1)


def test_api_errors_carry_status_and_message(fake: FakeKubernetes, k8s: KubernetesDeployments) -> None:
    with pytest.raises(IntegrationError) as raised:
        k8s.snapshot(DeploymentRef(NS, "nope"))
    assert raised.value.message == 'Kubernetes API 404: deployments.apps "nope" not found'
    assert raised.value.status == 404
    with pytest.raises(IntegrationError, match="404"):
        k8s.rollout_status(DeploymentRef(NS, "nope"))


def test_unreachable_api_is_an_integration_error(fake: FakeKubernetes) -> None:
    url = fake.url
    fake.stop()
    configuration = client.Configuration(host=url)
    configuration.retries = False
    k8s = KubernetesDeployments(api_client_factory=lambda ctx: client.ApiClient(configuration))
    with pytest.raises(IntegrationError, match="cannot reach the Kubernetes API for deploy/payments"):
        k8s.snapshot(REF)
    k8s.close()


def test_label_selector_and_template_equality() -> None:
    selector = client.V1LabelSelector(
        match_labels={"tier": "web", "app": "payments"},
        match_expressions=[
            client.V1LabelSelectorRequirement(key="track", operator="In", values=["stable", "canary"]),
            client.V1LabelSelectorRequirement(key="legacy", operator="DoesNotExist"),
            client.V1LabelSelectorRequirement(key="zone", operator="NotIn", values=["b"]),
            client.V1LabelSelectorRequirement(key="owner", operator="Exists"),
        ],
    )
    assert label_selector(selector) == (
        "app=payments,tier=web,track in (canary,stable),!legacy,zone notin (b),owner"
    )

    rs_template = {
        "metadata": {"labels": {"app": "payments", POD_TEMPLATE_HASH: "abc"}},
        "spec": {"containers": [{"name": "app", "image": "a:1", "resources": {}}]},
    }
    dep_template = {
        "metadata": {"labels": {"app": "payments"}},
        "spec": {"containers": [{"name": "app", "image": "a:1"}]},
    }
    assert templates_equal(rs_template, dep_template)
    dep_template["spec"]["containers"][0]["image"] = "a:2"
    assert not templates_equal(rs_template, dep_template)
