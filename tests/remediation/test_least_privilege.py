"""`tars policy kubernetes|aws`: the permissions the catalog's remediation needs, and nothing else."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

from tests.support import run_tars

CATALOG = """\
aws:
  region: eu-west-1
services:
  payments:
    oncall: U0PAYONCALL
    kubernetes: {namespace: prod, deployment: payments-api}
    lambda_functions: [payments-webhook]
  checkout:
    oncall: U0CHKONCALL
    kubernetes: {namespace: prod, deployment: checkout}
  search:
    oncall: U0SRCHONCALL
    kubernetes: {namespace: search, deployment: search-web, context: eu}
  billing:
    oncall: U0BILLONCALL
    ecs: {cluster: main, service: billing, region: us-east-1}
flags:
  payment.new_processor.enabled:
    service: payments
"""


def policy(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    catalog = tmp_path / "tars.yaml"
    catalog.write_text(CATALOG)
    return run_tars("policy", *args, env={"TARS_CONFIG": str(catalog)})


def test_kubernetes_roles_are_per_namespace_and_name_only_the_catalogs_deployments(tmp_path: Path) -> None:
    result = policy(tmp_path, "kubernetes", "--namespace", "tars-system")
    assert result.returncode == 0, result.stderr
    objects = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    for obj in objects:
        kubernetes_validate.validate(obj, "1.30", strict=True)
    roles = {obj["metadata"]["namespace"]: obj for obj in objects if obj["kind"] == "Role"}
    assert sorted(roles) == ["prod", "search"]
    named = {
        namespace: {
            (resource, verb)
            for rule in role["rules"]
            if "resourceNames" in rule
            for resource in rule["resources"]
            for verb in rule["verbs"]
        }
        for namespace, role in roles.items()
    }
    assert named["prod"] == {
        ("deployments", "get"),
        ("deployments", "patch"),
        ("deployments/scale", "get"),
        ("deployments/scale", "patch"),
    }
    prod_names = {tuple(rule["resourceNames"]) for rule in roles["prod"]["rules"] if "resourceNames" in rule}
    assert prod_names == {("checkout", "payments-api")}
    unnamed = [rule for rule in roles["prod"]["rules"] if "resourceNames" not in rule]
    assert unnamed == [{"apiGroups": ["apps"], "resources": ["replicasets"], "verbs": ["list"]}]
    bindings = [obj for obj in objects if obj["kind"] == "RoleBinding"]
    assert {b["metadata"]["namespace"] for b in bindings} == {"prod", "search"}
    for binding in bindings:
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "tars", "namespace": "tars-system"}]


def test_the_aws_policy_names_exactly_the_catalogs_resources(tmp_path: Path) -> None:
    result = policy(tmp_path, "aws", "--account", "123456789012")
    assert result.returncode == 0, result.stderr
    statements = {s["Sid"]: s for s in json.loads(result.stdout)["Statement"]}
    assert statements["EcsServicesInTheCatalog"]["Resource"] == [
        "arn:aws:ecs:us-east-1:123456789012:service/main/billing"
    ]
    assert statements["SsmFlagsInTheCatalog"]["Resource"] == [
        "arn:aws:ssm:eu-west-1:123456789012:parameter/production/payments/payment.new_processor.enabled"
    ]
    assert statements["LambdaFunctionsInTheCatalog"]["Resource"] == [
        "arn:aws:lambda:eu-west-1:123456789012:function:payments-webhook"
    ]
    # The only wildcard: the two ECS reads AWS cannot scope to a resource.
    wildcards = [s for s in statements.values() if s["Resource"] == "*"]
    assert [s["Action"] for s in wildcards] == [["ecs:DescribeTaskDefinition", "ecs:ListTaskDefinitions"]]
    assert all("*" not in action for s in statements.values() for action in s["Action"])


def test_a_bad_account_id_is_refused(tmp_path: Path) -> None:
    result = policy(tmp_path, "aws", "--account", "1234")
    assert result.returncode == 2
    assert "an AWS account id is 12 digits" in result.stderr


def test_the_generated_role_is_all_tars_can_do_on_a_cluster_that_enforces_it() -> None:
    from kubernetes.client import AppsV1Api
    from kubernetes.client.exceptions import ApiException

    from bot.core.settings import Config, KubernetesTarget, ServiceConfig
    from bot.remediation.least_privilege import kubernetes_rbac
    from sandbox.fakes.kubernetes_api import FakeKubernetes

    services = {
        "payments": ServiceConfig(
            oncall="U0PAYONCALL", kubernetes=KubernetesTarget(namespace="prod", deployment="payments")
        )
    }
    rbac = kubernetes_rbac(Config(services=services), service_account="tars", account_namespace="tars")
    with FakeKubernetes() as cluster:
        for namespace, name in (("prod", "payments"), ("prod", "ledger"), ("staging", "payments")):
            cluster.create_deployment(namespace, name, image="registry/app:1.0")
        cluster.enforce_rbac(rbac, {"tars-token": "system:serviceaccount:tars:tars"})
        apps = AppsV1Api(cluster.api_client("tars-token"))
        assert apps.read_namespaced_deployment("payments", "prod").metadata.name == "payments"
        assert apps.read_namespaced_deployment_scale("payments", "prod").spec.replicas == 2
        assert apps.list_namespaced_replica_set("prod").items

        def refused(call: Any) -> int:
            try:
                call()
            except ApiException as error:
                return int(error.status)
            raise AssertionError("the cluster let it through")

        assert refused(lambda: apps.read_namespaced_deployment("ledger", "prod")) == 403  # not in the catalog
        assert (
            refused(lambda: apps.read_namespaced_deployment("payments", "staging")) == 403
        )  # other namespace
        assert (
            refused(lambda: apps.delete_namespaced_deployment("payments", "prod")) == 403
        )  # a verb TARS never uses
        assert refused(lambda: apps.list_namespaced_deployment("prod")) == 403  # listing is not naming
        assert (
            refused(
                lambda: AppsV1Api(cluster.api_client("stolen")).read_namespaced_deployment("payments", "prod")
            )
            == 401
        )
