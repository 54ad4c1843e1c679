"""The least privilege TARS needs, generated from the catalog: Kubernetes RBAC and an AWS IAM policy.

Each integration module declares what its calls need (`integrations.kubernetes_rollouts.RBAC_RULES`,
`IAM_ACTIONS` in the AWS modules); this module names the catalog's targets in them, so a new call or a new
service changes the output without anyone rereading the code.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from bot.core.domain_errors import UsageError
from bot.core.settings import Config


def kubernetes_rbac(config: Config, *, service_account: str, account_namespace: str) -> list[dict[str, Any]]:
    """A Role and RoleBinding per namespace the catalog names, limited to the catalog's deployments."""
    from integrations.kubernetes_rollouts import RBAC_RULES

    deployments: dict[str, set[str]] = defaultdict(set)
    for service in config.services.values():
        if service.kubernetes is not None:
            deployments[service.kubernetes.namespace].add(service.kubernetes.deployment)
    objects: list[dict[str, Any]] = []
    for namespace, names in sorted(deployments.items()):
        rules = []
        for rule in RBAC_RULES:
            written: dict[str, Any] = {
                "apiGroups": list(rule["apiGroups"]),
                "resources": list(rule["resources"]),
                "verbs": list(rule["verbs"]),
            }
            if rule["named"]:
                written["resourceNames"] = sorted(names)
            rules.append(written)
        metadata = {
            "name": "tars-remediation",
            "namespace": namespace,
            "labels": {"app.kubernetes.io/name": "tars"},
        }
        objects.append(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": metadata,
                "rules": rules,
            }
        )
        objects.append(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": dict(metadata),
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": "tars-remediation",
                },
                "subjects": [
                    {"kind": "ServiceAccount", "name": service_account, "namespace": account_namespace}
                ],
            }
        )
    return objects


def aws_policy(config: Config, *, account: str, region: str | None) -> dict[str, Any]:
    """An IAM policy whose resources are exactly the catalog's ECS services, SSM parameters, Lambda functions and
    log groups (and CloudWatch's GetMetricData, which takes no resource)."""
    from integrations.cloudwatch_logs import IAM_ACTIONS as LOGS
    from integrations.cloudwatch_metrics import IAM_ACTIONS as METRICS
    from integrations.ecs_services import IAM_ACTIONS as ECS
    from integrations.lambda_env import IAM_ACTIONS as LAMBDA
    from integrations.ssm_flags import IAM_ACTIONS as SSM

    def where(own: str | None) -> str:
        chosen = own or region or config.aws.region
        if not chosen:
            raise UsageError("the catalog names no AWS region here: give --region")
        return chosen

    services = [
        f"arn:aws:ecs:{where(s.ecs.region)}:{account}:service/{s.ecs.cluster}/{s.ecs.service}"
        for s in config.services.values()
        if s.ecs is not None
    ]
    parameters = [
        f"arn:aws:ssm:{where(None)}:{account}:parameter{flag.parameter_path(name)}"
        for name, flag in config.flags.items()
    ]
    functions = [
        f"arn:aws:lambda:{where(None)}:{account}:function:{function}"
        for s in config.services.values()
        for function in s.lambda_functions
    ]
    log_groups = [
        f"arn:aws:logs:{where(s.logs.region)}:{account}:log-group:{group}:*"
        for s in config.services.values()
        if s.logs is not None
        for group in s.logs.log_groups
    ]
    statements: list[dict[str, Any]] = []
    for sid, actions, resources in (
        ("EcsServicesInTheCatalog", ECS["scoped"], services),
        ("SsmFlagsInTheCatalog", SSM["scoped"], parameters),
        ("LambdaFunctionsInTheCatalog", LAMBDA["scoped"], functions),
        ("LogGroupsInTheCatalog", LOGS["scoped"], log_groups),
    ):
        if resources:
            statements.append(
                {"Sid": sid, "Effect": "Allow", "Action": sorted(actions), "Resource": sorted(resources)}
            )
    if services:
        # ECS task definitions are read by family and revision; AWS supports no resource for these two actions.
        statements.append(
            {
                "Sid": "EcsTaskDefinitionsReadOnly",
                "Effect": "Allow",
                "Action": sorted(ECS["unscoped"]),
                "Resource": "*",
            }
        )
    if any(s.metrics is not None and s.metrics.cloudwatch is not None for s in config.services.values()):
        # GetMetricData takes no resource: AWS authorizes it for the account as a whole.
        statements.append(
            {
                "Sid": "CloudWatchMetricsReadOnly",
                "Effect": "Allow",
                "Action": sorted(METRICS["unscoped"]),
                "Resource": "*",
            }
        )
    return {"Version": "2012-10-17", "Statement": statements}
