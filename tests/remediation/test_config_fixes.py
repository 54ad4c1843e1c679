"""Config fixes through Slack: feature flags in SSM and Lambda environment changes, approval-gated."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine

from bot.core.clock import FrozenClock
from bot.core.settings import ApproversConfig, Config, FlagConfig, ServiceConfig
from bot.remediation.platforms import Platforms
from bot.slack import rendering
from integrations.lambda_env import LambdaEnvironment
from integrations.ssm_flags import FeatureFlags
from sandbox.emulator import SlackEmulator
from tests.integrations.aws_fixtures import client, client_factory, moto_server, reset_moto
from tests.support import CHANNEL, Workspace, finished, latest_action, request, start_tars, vote

FLAG = "payment.new_processor.enabled"
PATH = "/production/payments/payment.new_processor.enabled"
SERVICES = {"payments": ServiceConfig(oncall="U0PAYONCALL", lambda_functions=["payments-webhook"])}
FLAGS = {
    FLAG: FlagConfig(
        service="payments", values=["true", "false"], description="Falls back to legacy processor"
    ),
    "notifications.email.enabled": FlagConfig(service="payments", description="Disables email"),
}


@pytest.fixture(scope="module")
def aws() -> Iterator[str]:
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture
def team(slack: SlackEmulator, engine: Engine, clock: FrozenClock, aws: str) -> Iterator[Workspace]:
    reset_moto(aws)
    slack.add_user("U0CAROL", "carol")
    ssm = client(aws, "ssm")
    ssm.put_parameter(Name=PATH, Value="true", Type="String")
    ssm.put_parameter(Name=PATH, Value="true", Type="String", Overwrite=True)  # version 2
    config = Config(database_url="", services=SERVICES, flags=FLAGS)
    platforms = Platforms(
        config,
        kubernetes=None,
        flags=FeatureFlags(client_factory=client_factory(aws, "ssm")),
        lambdas=LambdaEnvironment(client_factory=client_factory(aws, "lambda"), sleep=lambda _s: None),
    )
    with start_tars(
        slack,
        engine,
        clock,
        services=SERVICES,
        flags=FLAGS,
        approvers=ApproversConfig(users=["U0BOB", "U0CAROL"]),
        platforms=platforms,
    ) as running:
        yield Workspace(running, slack, engine, clock)


def _parameter(aws: str) -> dict[str, Any]:
    return dict(client(aws, "ssm").get_parameter(Name=PATH)["Parameter"])


def test_flag_change_after_approval_then_revert(team: Workspace, aws: str) -> None:
    incident = team.declare()
    action = request(team, f"flag {incident.id} {FLAG} false")
    card = team.slack.message(CHANNEL, action.card_ts or "")
    assert f"payments: flag {FLAG}: {PATH}: true (v2) → false" in card.text
    assert _parameter(aws)["Value"] == "true"

    vote(team, action, "U0BOB")
    done = finished(team, action.id)
    assert done.state == "succeeded", done.result
    assert _parameter(aws)["Value"] == "false" and _parameter(aws)["Version"] == 3
    result = next(c for c in team.channel_posts("✅") if "remediation #1 succeeded" in c.args["text"])
    assert "takes effect within 60 seconds" in result.args["text"]
    succeeded = next(e for e in team.timeline(incident.id) if e.kind == "action_succeeded")
    assert succeeded.data["details"]["version"] == 3

    # The thread carries a Revert flag button; reverting is itself a request that needs approval.
    note = team.slack.wait_for(
        "chat.postMessage",
        lambda c: c.args.get("thread_ts") == incident.card_ts and "Revert flag" in str(c.args.get("blocks")),
    )
    response = team.client.click_button(
        user_id="U0CAROL",
        channel_id=CHANNEL,
        message_ts=note.response["ts"],
        action_id=rendering.REVERT_FLAG_ACTION,
        value=str(action.id),
    )
    assert response.status == 200
    team.ephemeral_to("U0CAROL", "Requested #2 to revert")
    team.wait_until(lambda: latest_action(team).id == 2 and latest_action(team).card_ts is not None)
    revert = latest_action(team)
    assert f"{PATH}: false (v3) → true" in revert.summary
    assert _parameter(aws)["Value"] == "false"
    vote(team, revert, "U0BOB")
    assert finished(team, revert.id).state == "succeeded"
    assert _parameter(aws)["Value"] == "true" and _parameter(aws)["Version"] == 4


@pytest.mark.parametrize(
    ("text", "reply"),
    [
        (
            "flag 1 checkout.beta.enabled true",
            "`checkout.beta.enabled` is not a flag TARS may change. Flags in the catalog: `notifications.email.enabled`, `payment.new_processor.enabled`.",
        ),
        (
            f"flag 1 {FLAG} maybe",
            "`maybe` is not an allowed value for `payment.new_processor.enabled`; allowed: `true`, `false`.",
        ),
        (f"flag 1 {FLAG} true", "Nothing to do"),
        (
            "env 1 billing-cron MODE=safe",
            "`billing-cron` is not a Lambda function in the catalog. Known functions: `payments-webhook`.",
        ),
    ],
)
def test_config_fix_refusals(team: Workspace, text: str, reply: str) -> None:
    team.declare()
    team.command(text, user="U0BOB")
    team.ephemeral_to("U0BOB", reply)


def test_help_flags_lists_effects(team: Workspace) -> None:
    body = team.command("help flags").json()
    assert f"`{FLAG}` (payments) [true | false]: Falls back to legacy processor — `{PATH}`" in body["text"]


def test_lambda_environment_change_touches_only_named_keys_and_masks_secrets(
    team: Workspace, aws: str
) -> None:
    role = client(aws, "iam").create_role(
        RoleName="webhook-role",
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
    )["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("handler.py", "def handle(event, context):\n    return None\n")
    lam = client(aws, "lambda")
    lam.create_function(
        FunctionName="payments-webhook",
        Runtime="python3.11",
        Role=role,
        Handler="handler.handle",
        Code={"ZipFile": code.getvalue()},
        Environment={"Variables": {"MODE": "fast", "DB_PASSWORD": "hunter2", "REGION": "eu"}},
    )
    incident = team.declare()
    action = request(team, f'env {incident.id} payments-webhook MODE=safe DB_PASSWORD="n3w secret"')
    assert "MODE: 'fast' → 'safe'" in action.summary
    assert "hunter2" not in action.summary and "n3w secret" not in action.summary
    vote(team, action, "U0BOB")
    assert finished(team, action.id).state == "succeeded", finished(team, action.id).result
    variables = lam.get_function_configuration(FunctionName="payments-webhook")["Environment"]["Variables"]
    assert variables == {"MODE": "safe", "DB_PASSWORD": "n3w secret", "REGION": "eu"}
    everything_said = json.dumps([c.args for c in team.slack.calls]) + json.dumps(
        [e.data for e in team.timeline(incident.id)]
    )
    assert "hunter2" not in everything_said and "n3w secret" not in everything_said
