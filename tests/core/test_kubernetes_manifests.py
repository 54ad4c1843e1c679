"""deploy/kubernetes: a Kustomize base whose every object is valid Kubernetes and runs TARS the way it needs.

The base is rendered here the way `kubectl kustomize` renders it (resources, namespace, labels, and a
ConfigMap generated from the catalog file) and each object is checked against the Kubernetes OpenAPI schema
with kubernetes-validate (strict: unknown fields fail).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from bot.core.settings import load_config

BASE = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.30"
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding"}


def render(base: Path = BASE) -> list[dict[str, Any]]:
    """The subset of `kubectl kustomize` the base uses."""
    kustomization = yaml.safe_load((base / "kustomization.yaml").read_text())
    objects: list[dict[str, Any]] = []
    for resource in kustomization.get("resources", []):
        objects += [doc for doc in yaml.safe_load_all((base / resource).read_text()) if doc]
    for generator in kustomization.get("configMapGenerator", []):
        assert generator.get("options", {}).get("disableNameSuffixHash"), "this renderer adds no hash suffix"
        data = {Path(name).name: (base / name).read_text() for name in generator.get("files", [])}
        objects.append(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": generator["name"]}, "data": data}
        )
    for obj in objects:
        metadata = obj.setdefault("metadata", {})
        if "namespace" in kustomization and obj["kind"] not in CLUSTER_SCOPED:
            metadata["namespace"] = kustomization["namespace"]
        for label_set in kustomization.get("labels", []):
            assert not label_set.get("includeSelectors"), "this renderer leaves selectors alone"
            metadata.setdefault("labels", {}).update(label_set["pairs"])
    return objects


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [obj for obj in objects if obj["kind"] == kind]
    assert len(found) == 1, f"{len(found)} {kind} objects"
    return found[0]


@pytest.mark.parametrize("obj", render(), ids=lambda obj: f"{obj['kind']}/{obj['metadata']['name']}")
def test_every_object_is_valid_kubernetes(obj: dict[str, Any]) -> None:
    kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_the_base_has_what_a_production_deployment_needs() -> None:
    kinds = sorted(obj["kind"] for obj in render())
    assert kinds == sorted(
        ["ConfigMap", "Deployment", "NetworkPolicy", "PodDisruptionBudget", "Service", "ServiceAccount"]
    )


def test_the_deployment_runs_tars_hardened_and_probed() -> None:
    objects = render()
    deployment = one(objects, "Deployment")
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert spec["replicas"] == 3
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert {"cpu", "memory"} <= container["resources"]["requests"].keys()
    assert {"cpu", "memory"} <= container["resources"]["limits"].keys()
    assert {c["topologyKey"] for c in pod["topologySpreadConstraints"]} >= {"topology.kubernetes.io/zone"}
    # SIGTERM: TARS drains within 10 s (posts in flight), so the grace period must leave room beyond that.
    assert pod["terminationGracePeriodSeconds"] >= 20
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["command"] == ["tars", "serve"]
    assert pod["serviceAccountName"] == one(objects, "ServiceAccount")["metadata"]["name"]


def test_secrets_are_referenced_never_shipped() -> None:
    objects = render()
    assert not [obj for obj in objects if obj["kind"] == "Secret"]
    (container,) = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    env = {item["name"]: item for item in container["env"]}
    for name in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "DATABASE_URL", "GITHUB_TOKEN"):
        assert "value" not in env[name] and "secretKeyRef" in env[name]["valueFrom"], name


def test_service_budget_and_policy_select_the_deployments_pods() -> None:
    objects = render()
    pod_labels = one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    selectors = [
        one(objects, "Service")["spec"]["selector"],
        one(objects, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
        one(objects, "NetworkPolicy")["spec"]["podSelector"]["matchLabels"],
    ]
    for selector in selectors:
        assert selector.items() <= pod_labels.items()


def test_the_catalog_configmap_is_one_tars_accepts(tmp_path: Path) -> None:
    configmap = one(render(), "ConfigMap")
    (deployment_env,) = [
        item
        for item in one(render(), "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]
        if item["name"] == "TARS_CONFIG"
    ]
    assert Path(deployment_env["value"]).name in configmap["data"]
    catalog = tmp_path / "tars.yaml"
    catalog.write_text(configmap["data"]["tars.yaml"])
    assert load_config({"TARS_CONFIG": str(catalog)}).services
