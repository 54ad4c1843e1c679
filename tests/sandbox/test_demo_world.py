"""The sandbox's simulated world, remediated for real: TARS, built the way the sandbox builds it, rolls back the
fake cluster and moto's ECS, flips moto's SSM flags and changes moto's Lambda, and the demo metrics source tells
what that did to the error rate, read with TARS's own Prometheus reader."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from bot.core.clock import FrozenClock
from bot.core.settings import Config
from integrations.observability_reads import Point, ReadFailed
from integrations.prometheus_metrics import PrometheusReader
from sandbox.demo_world import DemoWorld, error_rate_query, latency_query
from sandbox.emulator import SlackEmulator
from tests.signals.signal_helpers import triage_cards
from tests.support import CHANNEL, Workspace, finished, request, start_tars, vote

HEALTHY, BROKEN = 0.0005, 0.05


@pytest.fixture
def world() -> Iterator[DemoWorld]:
    with DemoWorld() as world:
        yield world


@pytest.fixture
def clock() -> FrozenClock:
    # The simulated platforms live in real time (moto and the fake cluster stamp with it); TARS's clock is too.
    return FrozenClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def team(slack: SlackEmulator, engine: Engine, clock: FrozenClock, world: DemoWorld) -> Iterator[Workspace]:
    for persona in world.personas.values():
        slack.add_user(persona.slack_id, persona.name, persona.real_name)
    overrides = world.config_overrides()
    platforms = world.platforms(Config(database_url="", **overrides), poll_seconds=0.05)
    with start_tars(
        slack, engine, clock, platforms=platforms, github_client=world.github_client(), **overrides
    ) as running:
        yield Workspace(running, slack, engine, clock)


def _person(world: DemoWorld, name: str) -> str:
    return world.personas[name].slack_id


def _error_rates(world: DemoWorld, service: str, since: float) -> tuple[Point, ...]:
    """The service's error rate from `since` until now, four points a second, as TARS reads it."""
    reader = PrometheusReader(world.metrics_url, error_rate_query(service), latency_query(service))
    return reader.error_rate(_utc(since), datetime.now(UTC), timedelta(seconds=0.25))


def _recovers(team: Workspace, world: DemoWorld, service: str, since: float) -> tuple[Point, ...]:
    """Wait until the metrics say the service is healthy again; the points read then."""
    points: list[Point] = []

    def healthy() -> bool:
        points[:] = _error_rates(world, service, since)
        return bool(points) and points[-1].value == HEALTHY

    team.wait_until(healthy, timeout=10, message=f"{service}'s error rate never fell")
    return tuple(points)


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _payments_image(world: DemoWorld) -> str:
    deployment = world.kubernetes.deployment("production", "payments")
    return str(deployment["spec"]["template"]["spec"]["containers"][0]["image"])


def test_a_p1_rollback_rolls_the_fake_cluster_back_and_the_error_rate_falls_from_then_on(
    team: Workspace, world: DemoWorld
) -> None:
    payments = world.services["payments"]
    you, alex = _person(world, "you"), _person(world, "alex")
    assert _payments_image(world) == payments.bad.image == "acme/payments:2.4.0"
    # The bad deploy went out 20 minutes ago: healthy before it, failing since.
    story = _error_rates(world, "payments", time.time() - 30 * 60)
    assert {p.value for p in story if p.at < payments.bad.deployed_at} == {HEALTHY}
    assert {p.value for p in story if p.at >= payments.bad.deployed_at} == {BROKEN}

    incident = team.declare("payments P1 Card payments failing with 502", user=you)
    action = request(team, f"rollback {incident.id}", user=you)
    card = team.slack.message(CHANNEL, action.card_ts or "")
    assert "image app=acme/payments:2.4.0 → acme/payments:2.3.1" in card.text
    assert "✅ the runbook's rollback rule holds" in card.text

    assert vote(team, action, you).args["text"] == "You requested #1; someone else has to approve it."
    assert _payments_image(world) == payments.bad.image
    approved_at = time.time()
    assert vote(team, action, alex).args["text"] == "Approved; running #1 now."
    done = finished(team, action.id)
    assert done.state == "succeeded", done.result
    assert _payments_image(world) == payments.good.image == "acme/payments:2.3.1"

    rolled_back = world.history("payments")[-1]
    assert (rolled_back.version, rolled_back.broken) == ("2.3.1", False)
    assert approved_at <= rolled_back.at.timestamp() <= time.time()
    points = _recovers(team, world, "payments", approved_at - 60)
    assert {p.value for p in points if p.at.timestamp() < approved_at} == {BROKEN}
    assert {p.value for p in points if p.at >= rolled_back.at} == {HEALTHY}
    assert world.latency("payments") == payments.healthy_latency


def test_a_p2_flag_change_needs_both_approvers_and_changes_the_ssm_parameter(
    team: Workspace, world: DemoWorld
) -> None:
    path = "/production/checkout/checkout.address_validation.strict"
    ssm = world.aws_client("ssm")
    assert ssm.get_parameter(Name=path)["Parameter"]["Value"] == "true"
    incident = team.declare("checkout P2 Valid addresses refused at checkout", user=_person(world, "you"))

    action = request(
        team, f"flag {incident.id} checkout.address_validation.strict false", user=_person(world, "you")
    )
    assert (
        vote(team, action, _person(world, "alex")).args["text"]
        == "Approved; #1 needs 1 more approval(s) from a different approver."
    )
    assert ssm.get_parameter(Name=path)["Parameter"]["Value"] == "true"
    approved_at = time.time()
    assert vote(team, action, _person(world, "jordan")).args["text"] == "Approved; running #1 now."
    done = finished(team, action.id)
    assert done.state == "succeeded", done.result

    assert ssm.get_parameter(Name=path)["Parameter"]["Value"] == "false"
    # 5.1.0 still runs, but its strict validation is off: checkout recovers from the flag's change on.
    flipped = world.history("checkout")[-1]
    assert (flipped.version, flipped.flag_value, flipped.broken) == ("5.1.0", "false", False)
    points = _recovers(team, world, "checkout", approved_at - 60)
    assert {p.value for p in points if p.at.timestamp() < approved_at} == {BROKEN}


def test_an_ecs_rollback_and_a_lambda_environment_change_happen_in_moto(
    team: Workspace, world: DemoWorld
) -> None:
    you, jordan = _person(world, "you"), _person(world, "jordan")
    checkout = team.declare("checkout P1 Orders failing", user=you)
    rollback = request(team, f"rollback {checkout.id}", user=you)
    vote(team, rollback, jordan)
    done = finished(team, rollback.id)
    assert done.state == "succeeded", done.result
    [service] = world.aws_client("ecs").describe_services(cluster="production", services=["checkout"])[
        "services"
    ]
    assert service["taskDefinition"].endswith("task-definition/checkout:1")
    assert world.history("checkout")[-1].version == "5.0.2"

    payments = team.declare("payments P1 Webhooks slow", user=you)
    change = request(team, f"env {payments.id} payments-webhook WEBHOOK_TIMEOUT_MS=8000", user=you)
    vote(team, change, jordan)
    done = finished(team, change.id)
    assert done.state == "succeeded", done.result
    configured = world.aws_client("lambda").get_function_configuration(FunctionName="payments-webhook")
    assert configured["Environment"]["Variables"] == {"PROCESSOR": "new", "WEBHOOK_TIMEOUT_MS": "8000"}


def test_the_alert_and_the_metrics_speak_alertmanager_and_prometheus(
    team: Workspace, world: DemoWorld
) -> None:
    status, answer = world.fire_alert(team.running.url, "payments", "HighErrorRate")

    assert (status, answer) == (200, {"new": 1, "repeated": 0, "attached": 0, "declared": 0})
    [card] = triage_cards(team)
    assert card.text == "🔔 [firing] payments: HighErrorRate — 5xx at 5.00% of requests"
    assert "<@U0PAYONCALL>" in json.dumps(card.blocks)
    # Fired again, it is the same alert (Alertmanager's fingerprint): the card is updated, not repeated.
    assert world.fire_alert(team.running.url, "payments", "HighErrorRate")[1]["repeated"] == 1

    # The latency tells the same story as the error rate; a query the source does not know is Prometheus's 400.
    now = datetime.now(UTC)
    reader = PrometheusReader(world.metrics_url, error_rate_query("checkout"), latency_query("checkout"))
    points = reader.latency(now - timedelta(hours=1), now, timedelta(minutes=1))
    checkout = world.services["checkout"]
    assert {p.value for p in points if p.at < checkout.bad.deployed_at} == {checkout.healthy_latency}
    assert {p.value for p in points if p.at >= checkout.bad.deployed_at} == {checkout.broken_latency}
    with pytest.raises(ReadFailed, match="Prometheus rejected the query: unknown query 'up'"):
        PrometheusReader(world.metrics_url, "up").error_rate(
            now - timedelta(hours=1), now, timedelta(minutes=1)
        )
