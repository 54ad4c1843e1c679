"""The IAM policy `tars policy aws` generates is enough for every AWS remediation, and allows nothing else.

TARS's boto3 clients talk to moto's server through tests/fakes/iam_gate.py, which enforces the generated policy
with each request's resource ARN (moto's own IAM enforcement checks these services against "*" only).
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from bot.core.settings import AwsConfig, Config, EcsTarget, FlagConfig, ServiceConfig
from bot.remediation.least_privilege import aws_policy
from bot.remediation.platforms import Platforms
from integrations.ecs_services import EcsServices
from integrations.lambda_env import LambdaEnvironment
from integrations.ssm_flags import FeatureFlags
from tests.fakes.iam_gate import IamGate
from tests.integrations.aws_fixtures import REGION, client, client_factory, moto_server, reset_moto

CONFIG = Config(
    aws=AwsConfig(region=REGION),
    services={
        "billing": ServiceConfig(
            oncall="U0BILLONCALL",
            ecs=EcsTarget(cluster="main", service="billing"),
            lambda_functions=["billing-webhook"],
        ),
        "ledger": ServiceConfig(oncall="U0LEDGERONCALL"),
    },
    flags={"billing.retries.enabled": FlagConfig(service="billing")},
)


@pytest.fixture(scope="module")
def moto() -> Iterator[str]:
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture
def aws(moto: str) -> Iterator[str]:
    """moto with the catalog's resources and some that are not in it; yields the gate TARS goes through."""
    reset_moto(moto)
    ecs = client(moto, "ecs")
    ecs.create_cluster(clusterName="main")
    for image in ("repo/billing:1", "repo/billing:2"):
        ecs.register_task_definition(
            family="billing", containerDefinitions=[{"name": "app", "image": image, "memory": 128}]
        )
    for service in ("billing", "ledger"):
        ecs.create_service(cluster="main", serviceName=service, taskDefinition="billing:2", desiredCount=2)
    ssm = client(moto, "ssm")
    for name in ("/production/billing/billing.retries.enabled", "/production/ledger/secret.switch"):
        ssm.put_parameter(Name=name, Value="true", Type="String")
    role = client(moto, "iam").create_role(
        RoleName="fn", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []})
    )["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("handler.py", "def handle(event, context):\n    return None\n")
    for function in ("billing-webhook", "ledger-webhook"):
        client(moto, "lambda").create_function(
            FunctionName=function,
            Runtime="python3.11",
            Role=role,
            Handler="handler.handle",
            Code={"ZipFile": code.getvalue()},
            Environment={"Variables": {"MODE": "normal"}},
        )
    with IamGate(moto, aws_policy(CONFIG, account="123456789012", region=None)) as gate:
        yield gate.url


def _platforms(gate: str) -> Platforms:
    return Platforms(
        CONFIG,
        ecs=EcsServices(client_factory=client_factory(gate, "ecs")),
        flags=FeatureFlags(client_factory=client_factory(gate, "ssm")),
        lambdas=LambdaEnvironment(client_factory=client_factory(gate, "lambda")),
        rollout_timeout=5,
        poll_seconds=0.05,
    )


def _run(platforms: Platforms, planned: Any) -> None:
    result = platforms.execute(planned.action_kind, planned.service, planned.params, planned.snapshot)
    assert result.ok and not result.dry_run, result


def test_every_aws_remediation_works_with_only_the_generated_policy(aws: str, moto: str) -> None:
    platforms = _platforms(aws)
    _run(platforms, platforms.plan_scale("billing", 3))
    _run(platforms, platforms.plan_rollback("billing", 1))
    _run(platforms, platforms.plan_flag("billing.retries.enabled", "false"))
    _run(platforms, platforms.plan_env("billing", "billing-webhook", {"MODE": "safe"}))
    assert platforms.follow("ecs_scale", "billing", lambda _status: None) is not None
    service = client(moto, "ecs").describe_services(cluster="main", services=["billing"])["services"][0]
    assert service["desiredCount"] == 3 and service["taskDefinition"].endswith("billing:1")
    parameter = client(moto, "ssm").get_parameter(Name="/production/billing/billing.retries.enabled")
    assert parameter["Parameter"]["Value"] == "false"
    configuration = client(moto, "lambda").get_function_configuration(FunctionName="billing-webhook")
    assert configuration["Environment"]["Variables"]["MODE"] == "safe"


@pytest.mark.parametrize(
    "call",
    [
        lambda gate: client(gate, "ecs").update_service(cluster="main", service="ledger", desiredCount=9),
        lambda gate: client(gate, "ssm").get_parameter(Name="/production/ledger/secret.switch"),
        lambda gate: client(gate, "ssm").put_parameter(
            Name="/production/ledger/secret.switch", Value="false", Type="String", Overwrite=True
        ),
        lambda gate: client(gate, "ssm").delete_parameter(Name="/production/billing/billing.retries.enabled"),
        lambda gate: client(gate, "lambda").get_function_configuration(FunctionName="ledger-webhook"),
    ],
    ids=["ecs outside", "ssm read outside", "ssm write outside", "ssm delete", "lambda outside"],
)
def test_anything_outside_the_catalog_is_access_denied(aws: str, call: Any) -> None:
    with pytest.raises(ClientError) as denied:
        call(aws)
    assert denied.value.response["Error"]["Code"] in ("AccessDeniedException", "AccessDenied")
