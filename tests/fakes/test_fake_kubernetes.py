"""Drives FakeKubernetes with nothing but the official ``kubernetes`` client, so the fake is held to
the wire protocol the client really speaks (paths, patch content types, Status errors)."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from sandbox.fakes.kubernetes_api import (
    JSON_PATCH,
    MERGE_PATCH,
    POD_TEMPLATE_HASH,
    REVISION,
    REVISION_HISTORY,
    STRATEGIC_MERGE_PATCH,
    FakeKubernetes,
)

NS = "prod"


@pytest.fixture
def fake() -> Iterator[FakeKubernetes]:
    with FakeKubernetes() as server:
        yield server


@pytest.fixture
def api_client(fake: FakeKubernetes) -> Iterator[client.ApiClient]:
    api = fake.api_client()
    try:
        yield api
    finally:
        api.close()


@pytest.fixture
def apps(api_client: client.ApiClient) -> client.AppsV1Api:
    return client.AppsV1Api(api_client)


def owned_replica_sets(apps: client.AppsV1Api, name: str, namespace: str = NS) -> list[client.V1ReplicaSet]:
    """The ReplicaSet lookup `kubectl rollout undo` does: selector match + controller owner ref."""
    dep = apps.read_namespaced_deployment(name, namespace)
    selector = ",".join(f"{k}={v}" for k, v in sorted(dep.spec.selector.match_labels.items()))
    found = apps.list_namespaced_replica_set(namespace, label_selector=selector).items
    return [
        rs
        for rs in found
        if any(ref.controller and ref.uid == dep.metadata.uid for ref in rs.metadata.owner_references or [])
    ]


def revisions(apps: client.AppsV1Api, name: str) -> dict[str, client.V1ReplicaSet]:
    return {rs.metadata.annotations[REVISION]: rs for rs in owned_replica_sets(apps, name)}


def rollout_done(dep: client.V1Deployment) -> bool:
    """kubectl's DeploymentStatusViewer rule (minus the timeout branch)."""
    status = dep.status
    if dep.metadata.generation > (status.observed_generation or 0):
        return False
    if (status.updated_replicas or 0) < dep.spec.replicas:
        return False
    if (status.replicas or 0) > (status.updated_replicas or 0):
        return False
    return (status.available_replicas or 0) >= (status.updated_replicas or 0)


def condition(dep: client.V1Deployment, ctype: str) -> client.V1DeploymentCondition:
    return next(c for c in dep.status.conditions if c.type == ctype)


def error_status(exc: ApiException) -> dict[str, Any]:
    body = json.loads(exc.body)
    assert body["kind"] == "Status"
    assert body["code"] == exc.status
    return body


def test_create_makes_revision_one_owned_by_the_deployment(
    fake: FakeKubernetes, apps: client.AppsV1Api
) -> None:
    fake.create_deployment(NS, "payments", image="registry.local/payments:1.0")

    dep = apps.read_namespaced_deployment("payments", NS)
    (rs,) = apps.list_namespaced_replica_set(NS).items
    template_hash = rs.metadata.labels[POD_TEMPLATE_HASH]

    assert rs.metadata.name == f"payments-{template_hash}"
    assert len(template_hash) == 10 and template_hash.isalnum() and template_hash.islower()
    assert rs.metadata.annotations[REVISION] == "1"
    assert rs.spec.selector.match_labels == {"app": "payments", POD_TEMPLATE_HASH: template_hash}
    assert rs.spec.template.metadata.labels == {"app": "payments", POD_TEMPLATE_HASH: template_hash}
    (owner,) = rs.metadata.owner_references
    assert (owner.kind, owner.name, owner.uid, owner.controller) == (
        "Deployment",
        "payments",
        dep.metadata.uid,
        True,
    )
    assert owner.block_owner_deletion is True
    assert rs.spec.replicas == 2 and rs.status.ready_replicas == 2

    assert dep.metadata.annotations[REVISION] == "1"
    assert dep.metadata.generation == 1 and dep.status.observed_generation == 1
    assert dep.status.updated_replicas == dep.status.available_replicas == 2
    assert dep.status.unavailable_replicas is None  # omitempty, exactly like a real apiserver
    assert condition(dep, "Progressing").reason == "NewReplicaSetAvailable"
    assert condition(dep, "Available").status == "True"
    assert rollout_done(dep)
    # defaulted like the apiserver does, so RS and Deployment templates stay comparable
    assert dep.spec.template.spec.containers[0].image_pull_policy == "IfNotPresent"
    assert dep.spec.revision_history_limit == 10


def test_set_image_twice_makes_revisions_one_two_three(fake: FakeKubernetes, apps: client.AppsV1Api) -> None:
    fake.create_deployment(NS, "payments", image="payments:1")
    fake.set_image(NS, "payments", "payments:2")
    fake.set_image(NS, "payments", "payments:3")

    by_revision = revisions(apps, "payments")
    assert sorted(by_revision) == ["1", "2", "3"]
    assert {r: rs.spec.template.spec.containers[0].image for r, rs in by_revision.items()} == {
        "1": "payments:1",
        "2": "payments:2",
        "3": "payments:3",
    }
    assert {r: rs.spec.replicas for r, rs in by_revision.items()} == {"1": 0, "2": 0, "3": 2}
    dep = apps.read_namespaced_deployment("payments", NS)
    assert dep.metadata.annotations[REVISION] == "3"
    assert dep.metadata.generation == 3
    assert (
        condition(dep, "Progressing").message
        == f'ReplicaSet "{by_revision["3"].metadata.name}" has successfully progressed.'
    )


def test_json_patch_back_to_an_old_template_reuses_its_replica_set(
    fake: FakeKubernetes, apps: client.AppsV1Api, api_client: client.ApiClient
) -> None:
    fake.create_deployment(NS, "payments", image="payments:1")
    fake.set_image(NS, "payments", "payments:2")
    fake.set_image(NS, "payments", "payments:3")
    first = revisions(apps, "payments")["1"]

    # What kubectl rollout undo --to-revision=1 sends: the RS template without pod-template-hash.
    template = api_client.sanitize_for_serialization(first.spec.template)
    del template["metadata"]["labels"][POD_TEMPLATE_HASH]
    dep = apps.read_namespaced_deployment("payments", NS)
    annotations = dict(dep.metadata.annotations)
    patch = [
        {"op": "replace", "path": "/spec/template", "value": template},
        {"op": "replace", "path": "/metadata/annotations", "value": annotations},
    ]
    before = len(fake.requests)
    apps.patch_namespaced_deployment("payments", NS, patch)

    (sent,) = [r for r in fake.requests[before:] if r.method == "PATCH"]
    assert sent.path == f"/apis/apps/v1/namespaces/{NS}/deployments/payments"
    assert sent.content_type == JSON_PATCH
    assert sent.body == patch

    after = revisions(apps, "payments")
    assert sorted(after) == ["2", "3", "4"]  # revision 1 was renumbered, not copied
    reused = after["4"]
    assert reused.metadata.name == first.metadata.name
    assert reused.metadata.annotations[REVISION_HISTORY] == "1"
    assert reused.spec.replicas == 2 and after["3"].spec.replicas == 0
    dep = apps.read_namespaced_deployment("payments", NS)
    assert dep.metadata.annotations[REVISION] == "4"
    assert dep.spec.template.spec.containers[0].image == "payments:1"

    # Revision history accumulates when a ReplicaSet is reused again.
    fake.set_image(NS, "payments", "payments:2")
    fake.set_image(NS, "payments", "payments:1")
    final = revisions(apps, "payments")
    assert sorted(final) == ["3", "5", "6"]
    assert final["5"].metadata.annotations[REVISION_HISTORY] == "2"
    assert final["6"].metadata.name == first.metadata.name
    assert final["6"].metadata.annotations[REVISION_HISTORY] == "1,4"


def test_merge_and_strategic_patches(fake: FakeKubernetes, apps: client.AppsV1Api) -> None:
    fake.create_deployment(NS, "payments", image="payments:1")

    before = len(fake.requests)
    dep = apps.patch_namespaced_deployment("payments", NS, {"spec": {"replicas": 5}})
    assert fake.requests[before].content_type == STRATEGIC_MERGE_PATCH  # dict body: client's choice
    assert dep.spec.replicas == 5 and dep.status.ready_replicas == 5
    assert dep.metadata.generation == 2 and dep.metadata.annotations[REVISION] == "1"

    dep = apps.patch_namespaced_deployment(
        "payments", NS, {"spec": {"replicas": 3}}, _content_type=MERGE_PATCH
    )
    assert fake.requests[-1].content_type == MERGE_PATCH
    assert dep.spec.replicas == 3
    (rs,) = apps.list_namespaced_replica_set(NS).items
    assert rs.spec.replicas == 3
    assert rs.metadata.annotations["deployment.kubernetes.io/desired-replicas"] == "3"
    assert (
        rs.metadata.annotations["deployment.kubernetes.io/max-replicas"] == "4"
    )  # 3 + 25% surge, rounded up

    # Strategic merge merges containers by name; a merge patch replaces the list.
    sidecar = {"spec": {"template": {"spec": {"containers": [{"name": "envoy", "image": "envoy:1"}]}}}}
    dep = apps.patch_namespaced_deployment("payments", NS, sidecar)
    assert [c.name for c in dep.spec.template.spec.containers] == ["app", "envoy"]
    dep = apps.patch_namespaced_deployment("payments", NS, sidecar, _content_type=MERGE_PATCH)
    assert [c.name for c in dep.spec.template.spec.containers] == ["envoy"]
    assert dep.metadata.annotations[REVISION] == "3"

    # Metadata-only changes don't bump generation; no-op patches don't bump resourceVersion.
    gen = dep.metadata.generation
    dep = apps.patch_namespaced_deployment("payments", NS, {"metadata": {"labels": {"team": "pay"}}})
    assert dep.metadata.generation == gen
    again = apps.patch_namespaced_deployment("payments", NS, {"metadata": {"labels": {"team": "pay"}}})
    assert again.metadata.resource_version == dep.metadata.resource_version


def test_scale_subresource(fake: FakeKubernetes, apps: client.AppsV1Api) -> None:
    fake.create_deployment(NS, "payments", image="payments:1", labels={"app": "payments", "tier": "web"})

    scale = apps.read_namespaced_deployment_scale("payments", NS)
    assert (scale.kind, scale.api_version) == ("Scale", "autoscaling/v1")
    assert scale.spec.replicas == 2 and scale.status.replicas == 2
    assert scale.status.selector == "app=payments,tier=web"

    scale = apps.patch_namespaced_deployment_scale("payments", NS, {"spec": {"replicas": 4}})
    assert fake.requests[-1].path.endswith("/deployments/payments/scale")
    assert fake.requests[-1].content_type == STRATEGIC_MERGE_PATCH
    assert scale.spec.replicas == 4 and scale.status.replicas == 4
    dep = apps.read_namespaced_deployment("payments", NS)
    assert dep.spec.replicas == 4 and dep.metadata.generation == 2 and rollout_done(dep)

    body = client.V1Scale(
        metadata=client.V1ObjectMeta(name="payments", resource_version=scale.metadata.resource_version),
        spec=client.V1ScaleSpec(replicas=0),
    )
    scale = apps.replace_namespaced_deployment_scale("payments", NS, body)
    assert scale.spec.replicas is None  # ScaleSpec.replicas is omitempty on a real cluster too
    assert apps.read_namespaced_deployment("payments", NS).spec.replicas == 0

    with pytest.raises(ApiException) as excinfo:
        apps.replace_namespaced_deployment_scale("payments", NS, body)  # stale resourceVersion
    assert excinfo.value.status == 409


def test_label_selectors(fake: FakeKubernetes, apps: client.AppsV1Api) -> None:
    fake.create_deployment(NS, "payments-web", image="p:1", labels={"app": "payments", "tier": "web"})
    fake.create_deployment(NS, "payments-worker", image="p:1", labels={"app": "payments", "tier": "worker"})
    fake.create_deployment(
        NS, "checkout", image="c:1", labels={"app": "checkout", "tier": "web", "canary": "yes"}
    )
    fake.create_deployment("staging", "payments-web", image="p:1", labels={"app": "payments", "tier": "web"})

    def rs_owners(selector: str) -> list[str]:
        items = apps.list_namespaced_replica_set(NS, label_selector=selector).items
        return sorted(rs.metadata.owner_references[0].name for rs in items)

    assert rs_owners("app=payments,tier=web") == ["payments-web"]
    assert rs_owners("app==checkout") == ["checkout"]
    assert rs_owners("app!=payments") == ["checkout"]
    assert rs_owners("tier in (web, worker)") == ["checkout", "payments-web", "payments-worker"]
    assert rs_owners("app in (payments),tier notin (worker)") == ["payments-web"]
    assert rs_owners("canary") == ["checkout"]
    assert rs_owners("!canary,app") == ["payments-web", "payments-worker"]
    assert rs_owners("track") == []
    assert fake.requests[-1].query["labelSelector"] == ["track"]

    everywhere = apps.list_replica_set_for_all_namespaces(label_selector="app=payments,tier=web").items
    assert sorted(rs.metadata.namespace for rs in everywhere) == [NS, "staging"]
    deployments = apps.list_deployment_for_all_namespaces(label_selector="tier=web").items
    assert sorted((d.metadata.namespace, d.metadata.name) for d in deployments) == [
        (NS, "checkout"),
        (NS, "payments-web"),
        ("staging", "payments-web"),
    ]
    listed = apps.list_namespaced_deployment(NS, field_selector="metadata.name=checkout")
    assert [d.metadata.name for d in listed.items] == ["checkout"]
    assert listed.kind == "DeploymentList" and listed.metadata.resource_version

    with pytest.raises(ApiException) as excinfo:
        apps.list_namespaced_replica_set(NS, label_selector="app in payments")
    assert excinfo.value.status == 400
    assert error_status(excinfo.value)["reason"] == "BadRequest"


def test_not_found_is_a_status_404(fake: FakeKubernetes, apps: client.AppsV1Api) -> None:
    with pytest.raises(ApiException) as excinfo:
        apps.read_namespaced_deployment("nope", NS)
    assert excinfo.value.status == 404
    body = error_status(excinfo.value)
    assert body["reason"] == "NotFound"
    assert body["message"] == 'deployments.apps "nope" not found'
    assert body["details"] == {"name": "nope", "group": "apps", "kind": "deployments"}

    for call in (
        lambda: apps.patch_namespaced_deployment("nope", NS, {"spec": {"replicas": 1}}),
        lambda: apps.read_namespaced_deployment_scale("nope", NS),
        lambda: apps.read_namespaced_replica_set("nope", NS),
        lambda: apps.delete_namespaced_deployment("nope", NS),
    ):
        with pytest.raises(ApiException) as excinfo:
            call()
        assert excinfo.value.status == 404


def test_create_conflicts_and_validation(fake: FakeKubernetes, apps: client.AppsV1Api) -> None:
    fake.create_deployment(NS, "payments", image="payments:1")
    body = {
        "metadata": {"name": "payments"},
        "spec": {
            "selector": {"matchLabels": {"app": "payments"}},
            "template": {
                "metadata": {"labels": {"app": "other"}},
                "spec": {"containers": [{"name": "a", "image": "x"}]},
            },
        },
    }
    with pytest.raises(ApiException) as excinfo:
        apps.create_namespaced_deployment(NS, body)
    assert excinfo.value.status == 409 and error_status(excinfo.value)["reason"] == "AlreadyExists"

    body["metadata"]["name"] = "orders"
    with pytest.raises(ApiException) as excinfo:
        apps.create_namespaced_deployment(NS, body)
    status = error_status(excinfo.value)
    assert excinfo.value.status == 422 and status["reason"] == "Invalid"
    assert status["details"]["causes"][0]["field"] == "spec.template.metadata.labels"

    body["spec"]["template"]["metadata"]["labels"] = {"app": "payments"}
    created = apps.create_namespaced_deployment(NS, body)
    assert created.spec.replicas == 1 and created.metadata.annotations[REVISION] == "1"
    # This client generation sends create/replace bodies without any Content-Type header.
    assert fake.requests[-1][:3] == ("POST", f"/apis/apps/v1/namespaces/{NS}/deployments", "")


def test_put_with_stale_resource_version_conflicts(fake: FakeKubernetes, apps: client.AppsV1Api) -> None:
    fake.create_deployment(NS, "payments", image="payments:1")
    stale = apps.read_namespaced_deployment("payments", NS)
    fake.set_image(NS, "payments", "payments:2")

    stale.spec.replicas = 7
    with pytest.raises(ApiException) as excinfo:
        apps.replace_namespaced_deployment("payments", NS, stale)
    assert excinfo.value.status == 409
    body = error_status(excinfo.value)
    assert body["reason"] == "Conflict"
    assert "the object has been modified" in body["message"]

    fresh = apps.read_namespaced_deployment("payments", NS)
    fresh.spec.replicas = 7
    fresh.status.replicas = 999  # ignored: status belongs to the /status subresource
    updated = apps.replace_namespaced_deployment("payments", NS, fresh)
    assert updated.spec.replicas == 7 and updated.status.replicas == 7
    assert int(updated.metadata.resource_version) > int(fresh.metadata.resource_version)

    with pytest.raises(ApiException) as excinfo:
        apps.patch_namespaced_deployment(
            "payments",
            NS,
            {"metadata": {"resourceVersion": fresh.metadata.resource_version}, "spec": {"replicas": 1}},
        )
    assert excinfo.value.status == 409  # a resourceVersion in a patch is a precondition


def test_paused_deployment_keeps_its_revision(fake: FakeKubernetes, apps: client.AppsV1Api) -> None:
    fake.create_deployment(NS, "payments", image="payments:1", paused=True)
    dep = apps.read_namespaced_deployment("payments", NS)
    assert dep.spec.paused is True and dep.metadata.annotations[REVISION] == "1"

    fake.set_image(NS, "payments", "payments:2")
    apps.patch_namespaced_deployment_scale("payments", NS, {"spec": {"replicas": 3}})

    dep = apps.read_namespaced_deployment("payments", NS)
    assert dep.metadata.annotations[REVISION] == "1"
    assert dep.status.observed_generation == dep.metadata.generation
    assert condition(dep, "Progressing").reason == "DeploymentPaused"
    (rs,) = owned_replica_sets(apps, "payments")
    assert rs.metadata.annotations[REVISION] == "1"
    assert rs.spec.template.spec.containers[0].image == "payments:1"
    assert rs.spec.replicas == 3  # scaling still reaches the current ReplicaSet
    assert not rollout_done(dep)  # the new template isn't rolled out

    apps.patch_namespaced_deployment("payments", NS, {"spec": {"paused": False}})
    assert sorted(revisions(apps, "payments")) == ["1", "2"]
    assert rollout_done(apps.read_namespaced_deployment("payments", NS))


def test_manual_rollouts_leave_status_behind() -> None:
    with FakeKubernetes(auto_rollout=False) as fake:
        api_client = fake.api_client()
        apps = client.AppsV1Api(api_client)
        try:
            fake.create_deployment(NS, "payments", image="payments:1", replicas=3)
            dep = apps.read_namespaced_deployment("payments", NS)
            assert not rollout_done(dep)
            assert condition(dep, "Progressing").reason == "ReplicaSetUpdated"
            fake.complete_rollouts()
            assert rollout_done(apps.read_namespaced_deployment("payments", NS))

            fake.set_image(NS, "payments", "payments:2")
            dep = apps.read_namespaced_deployment("payments", NS)
            assert dep.metadata.annotations[REVISION] == "2"  # the controller has picked the new RS
            assert (dep.status.updated_replicas or 0) < dep.spec.replicas
            assert condition(dep, "Progressing").reason == "ReplicaSetUpdated"
            assert not rollout_done(dep)
            by_revision = revisions(apps, "payments")
            assert by_revision["1"].spec.replicas == 3  # old pods still serving
            assert by_revision["2"].spec.replicas == 3 and by_revision["2"].status.ready_replicas is None

            fake.complete_rollouts()
            dep = apps.read_namespaced_deployment("payments", NS)
            assert rollout_done(dep)
            assert condition(dep, "Progressing").reason == "NewReplicaSetAvailable"
            assert {r: rs.spec.replicas for r, rs in revisions(apps, "payments").items()} == {"1": 0, "2": 3}
        finally:
            api_client.close()


def test_fail_rollout_until_undone(fake: FakeKubernetes, apps: client.AppsV1Api) -> None:
    fake.create_deployment(NS, "payments", image="payments:1")
    fake.set_image(NS, "payments", "payments:broken")
    fake.fail_rollout(NS, "payments")

    dep = apps.read_namespaced_deployment("payments", NS)
    progressing = condition(dep, "Progressing")
    assert (progressing.status, progressing.reason) == ("False", "ProgressDeadlineExceeded")
    assert progressing.message.endswith("has timed out progressing.")

    # A scale doesn't un-stick it; rolling back to a good template does.
    apps.patch_namespaced_deployment("payments", NS, {"spec": {"replicas": 3}})
    assert (
        condition(apps.read_namespaced_deployment("payments", NS), "Progressing").reason
        == "ProgressDeadlineExceeded"
    )
    fake.set_image(NS, "payments", "payments:1")
    dep = apps.read_namespaced_deployment("payments", NS)
    assert condition(dep, "Progressing").reason == "NewReplicaSetAvailable"
    assert dep.metadata.annotations[REVISION] == "3" and rollout_done(dep)


def test_kubeconfig_from_write_kubeconfig(fake: FakeKubernetes, tmp_path: Path) -> None:
    fake.create_deployment(NS, "payments", image="payments:1")
    path = tmp_path / "kubeconfig"
    context = fake.write_kubeconfig(path, context="incident")
    assert context == "incident"

    api_client = config.new_client_from_config(config_file=str(path), context=context)
    try:
        apps = client.AppsV1Api(api_client)
        names = [d.metadata.name for d in apps.list_deployment_for_all_namespaces().items]
        assert names == ["payments"]
        assert client.VersionApi(api_client).get_code().git_version.startswith("v1.")
        groups = client.ApisApi(api_client).get_api_versions().groups
        assert "apps" in {g.name for g in groups}
    finally:
        api_client.close()


def test_json_patch_operations_and_failed_test(fake: FakeKubernetes, apps: client.AppsV1Api) -> None:
    fake.create_deployment(NS, "payments", image="payments:1")

    dep = apps.patch_namespaced_deployment(
        "payments",
        NS,
        [
            {"op": "test", "path": "/spec/replicas", "value": 2},
            {"op": "add", "path": "/metadata/annotations/example.com~1owner", "value": "sre"},
            {"op": "add", "path": "/metadata/labels/a~0b", "value": "1"},
            {
                "op": "copy",
                "from": "/spec/template/spec/containers/0",
                "path": "/spec/template/spec/containers/-",
            },
            {"op": "replace", "path": "/spec/template/spec/containers/1/name", "value": "copy"},
            {"op": "move", "from": "/metadata/labels/a~0b", "path": "/metadata/labels/moved"},
        ],
    )
    assert dep.metadata.annotations["example.com/owner"] == "sre"
    assert dep.metadata.labels == {"app": "payments", "moved": "1"}
    assert [c.name for c in dep.spec.template.spec.containers] == ["app", "copy"]

    rv = dep.metadata.resource_version
    with pytest.raises(ApiException) as excinfo:
        apps.patch_namespaced_deployment(
            "payments",
            NS,
            [
                {"op": "replace", "path": "/spec/replicas", "value": 9},
                {"op": "test", "path": "/spec/replicas", "value": 7},
            ],
        )
    assert excinfo.value.status == 422
    assert error_status(excinfo.value)["reason"] == "Invalid"
    after = apps.read_namespaced_deployment("payments", NS)
    assert after.spec.replicas == 2 and after.metadata.resource_version == rv  # atomic

    with pytest.raises(ApiException) as excinfo:
        apps.patch_namespaced_deployment("payments", NS, [{"op": "remove", "path": "/spec/nope"}])
    assert excinfo.value.status == 422

    with pytest.raises(ApiException) as excinfo:
        apps.patch_namespaced_deployment(
            "payments", NS, {"spec": {"replicas": 1}}, _content_type="application/apply-patch+yaml"
        )
    assert excinfo.value.status == 415
    assert error_status(excinfo.value)["reason"] == "UnsupportedMediaType"


def test_foreign_replica_sets_are_listed_but_not_owned(fake: FakeKubernetes, apps: client.AppsV1Api) -> None:
    fake.create_deployment(NS, "payments", image="payments:1")
    orphan = fake.add_foreign_replica_set(NS, labels={"app": "payments"}, image="payments:evil", revision="7")
    adopted_elsewhere = fake.add_foreign_replica_set(
        NS, labels={"app": "payments"}, image="payments:other", revision="9", owner_uid=str(uuid.uuid4())
    )
    dep = apps.read_namespaced_deployment("payments", NS)

    listed = apps.list_namespaced_replica_set(NS, label_selector="app=payments").items
    assert {rs.metadata.name for rs in listed} >= {
        orphan["metadata"]["name"],
        adopted_elsewhere["metadata"]["name"],
    }
    assert len(listed) == 3
    foreign = [
        rs for rs in listed if rs.metadata.name != owned_replica_sets(apps, "payments")[0].metadata.name
    ]
    for rs in foreign:
        refs = rs.metadata.owner_references or []
        assert not any(ref.controller and ref.uid == dep.metadata.uid for ref in refs)

    # The controller ignores them too: the next revision is 2, not 10.
    fake.set_image(NS, "payments", "payments:2")
    assert sorted(revisions(apps, "payments")) == ["1", "2"]
    assert apps.read_namespaced_deployment("payments", NS).metadata.annotations[REVISION] == "2"


def test_revision_history_limit_and_revision_gaps(fake: FakeKubernetes, apps: client.AppsV1Api) -> None:
    fake.create_deployment(NS, "payments", image="payments:1")
    apps.patch_namespaced_deployment("payments", NS, {"spec": {"revisionHistoryLimit": 2}})
    for tag in range(2, 6):
        fake.set_image(NS, "payments", f"payments:{tag}")
    assert sorted(revisions(apps, "payments")) == ["3", "4", "5"]

    fake.delete_replica_set(NS, revisions(apps, "payments")["4"].metadata.name)
    assert sorted(revisions(apps, "payments")) == ["3", "5"]
    apps.delete_namespaced_replica_set(revisions(apps, "payments")["3"].metadata.name, NS)
    assert sorted(revisions(apps, "payments")) == ["5"]

    # In this client generation delete_* returns the raw JSON dict ("object"), not a V1Status.
    status = apps.delete_namespaced_deployment("payments", NS)
    assert status["kind"] == "Status" and status["status"] == "Success"
    assert fake.replica_sets(NS) == []  # background cascade, as the garbage collector would


def test_watch_follows_deployment_changes(fake: FakeKubernetes, apps: client.AppsV1Api) -> None:
    fake.create_deployment(NS, "payments", image="payments:1")
    start = apps.read_namespaced_deployment("payments", NS).metadata.resource_version

    threading.Timer(0.1, fake.set_image, args=(NS, "payments", "payments:2")).start()
    watcher = watch.Watch()
    seen: list[tuple[str, str]] = []
    for event in watcher.stream(
        apps.list_namespaced_deployment,
        NS,
        field_selector="metadata.name=payments",
        resource_version=start,
        timeout_seconds=3,
    ):
        dep = event["object"]
        seen.append((event["type"], dep.metadata.annotations.get(REVISION, "")))
        if dep.metadata.annotations.get(REVISION) == "2" and rollout_done(dep):
            watcher.stop()
    assert seen[-1] == ("MODIFIED", "2")


def test_discovery_documents(api_client: client.ApiClient) -> None:
    assert client.CoreApi(api_client).get_api_versions().versions == ["v1"]
    apps_group = client.AppsApi(api_client).get_api_group()
    assert apps_group.preferred_version.group_version == "apps/v1"
    resources = client.AppsV1Api(api_client).get_api_resources().resources
    assert {"deployments", "deployments/scale", "replicasets"} <= {r.name for r in resources}
