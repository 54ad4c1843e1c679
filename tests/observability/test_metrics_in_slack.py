"""TARS reads a real Prometheus and CloudWatch Logs (moto): the chart in the thread, its validation of a fix, the
resolve criterion, the rollback advice and the runbook's log queries.

One Prometheus serves two services' traffic, backfilled around a bad deploy an hour into the data:
- payments: 0.05% errors, 5% from the deploy until the rollback 60 minutes later, then 0.05% again;
- checkout: 0.05%, then 0.3% from the deploy on, never fixed (between P1's 0.1% and P2's 0.5%), and its p99
  latency goes from 120 ms to 500 ms.
Their log groups hold the same story: payments logs the same two errors before and after the fix, checkout
starts logging a new one after it. TARS's clock is set inside that story; everything it reports is what
Prometheus and CloudWatch Logs computed from what was loaded.
"""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import PIL.Image
import pytest
from sqlalchemy import Engine

from bot.core.clock import FrozenClock
from bot.core.settings import (
    ApproversConfig,
    AwsConfig,
    Config,
    KubernetesTarget,
    LogsConfig,
    MetricsConfig,
    PrometheusSource,
    ServiceConfig,
)
from bot.remediation.platforms import Platforms
from integrations.github_repos import GitHubClient
from integrations.kubernetes_rollouts import KubernetesDeployments
from sandbox.emulator import SlackEmulator
from sandbox.fakes.github_api import FakeGitHub
from sandbox.fakes.kubernetes_api import FakeKubernetes
from tests.integrations.aws_fixtures import REGION, client, moto_server
from tests.observability.prometheus_server import (
    ErrorScenario,
    error_scenario,
    recent_anchor,
    running_prometheus,
)
from tests.support import CHANNEL, Workspace, finished, request, start_tars, vote

MINUTE = timedelta(minutes=1)
ANCHOR = recent_anchor(timedelta(hours=3))
DEPLOY = ANCHOR + 60 * MINUTE  # both services' bad deploy
FIX = ANCHOR + 120 * MINUTE  # payments is rolled back here
PAYMENTS = error_scenario(
    ANCHOR,
    service="payments",
    deploy_after=60 * MINUTE,
    rollback_after=120 * MINUTE,
    until=170 * MINUTE,
)
CHECKOUT = error_scenario(
    ANCHOR,
    service="checkout",
    deploy_error_ratio=0.003,
    deploy_latency=0.5,
    deploy_after=60 * MINUTE,
    rollback_after=170 * MINUTE,
    until=170 * MINUTE,
)
APPROVERS = ApproversConfig(users=["U0BOB", "U0CAROL"])


@pytest.fixture(scope="module")
def prometheus() -> Iterator[str]:
    with running_prometheus([*PAYMENTS.samples, *CHECKOUT.samples], PAYMENTS.types) as url:
        yield url


# What each service logged, minute by minute from the deploy: (minutes after ANCHOR, group, message).
LOG_LINES = [
    *(
        (
            minute,
            "/tars/payments",
            f"ERROR payment {minute:04d}-ab12cd declined: upstream timed out after {3000 + minute} ms",
        )
        for minute in range(61, 121, 3)
    ),
    *(
        (
            minute,
            "/tars/payments",
            f"ERROR payment {minute:04d}-ef34ab failed: connection refused by 10.0.4.{minute % 200}:5432",
        )
        for minute in range(62, 160, 7)
    ),
    *(
        (minute, "/tars/checkout", f"ERROR cart {minute}9f2a1 total mismatch by {minute} cents")
        for minute in range(61, 160, 5)
    ),
    # New since the fix: checkout starts failing on a missing field.
    *(
        (minute, "/tars/checkout", f"ERROR KeyError: 'customer_id' in order {minute}77c0")
        for minute in (123, 126, 128)
    ),
    (100, "/tars/payments", "INFO request corr=abc-123 accepted by payments"),
    (101, "/tars/checkout", "ERROR corr=abc-123 checkout could not reserve stock"),
    (102, "/tars/payments", "WARN corr=abc-123 payment retried"),
]


@pytest.fixture(scope="module")
def aws() -> Iterator[str]:
    """A moto server holding both services' log groups, and credentials for TARS's boto3 clients."""
    saved = {name: os.environ.get(name) for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    try:
        with moto_server() as endpoint:
            logs = client(endpoint, "logs")
            for group in ("/tars/payments", "/tars/checkout"):
                logs.create_log_group(logGroupName=group)
                logs.create_log_stream(logGroupName=group, logStreamName="app")
                events = [
                    {"timestamp": int((ANCHOR + minute * MINUTE).timestamp() * 1000), "message": message}
                    for minute, where, message in sorted(LOG_LINES)
                    if where == group
                ]
                logs.put_log_events(logGroupName=group, logStreamName="app", logEvents=events)
            yield endpoint
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _services(url: str) -> dict[str, ServiceConfig]:
    def entry(oncall: str, scenario: ErrorScenario) -> ServiceConfig:
        source = PrometheusSource(
            url=url, error_rate=scenario.error_rate_query(), latency=scenario.latency_query()
        )
        return ServiceConfig(
            oncall=oncall,
            kubernetes=KubernetesTarget(namespace="prod", deployment=scenario.service),
            metrics=MetricsConfig(prometheus=source),
            logs=LogsConfig(log_groups=[f"/tars/{scenario.service}"]),
            repository=f"acme/{scenario.service}",
        )

    return {"payments": entry("U0PAYONCALL", PAYMENTS), "checkout": entry("U0CHKONCALL", CHECKOUT)}


@pytest.fixture
def deployed_at(request: pytest.FixtureRequest) -> datetime:
    """When the bad version's ReplicaSet was created; tests of the rollback rule move it."""
    return getattr(request, "param", DEPLOY)


@pytest.fixture
def cluster(deployed_at: datetime) -> Iterator[FakeKubernetes]:
    moment = [ANCHOR - 300 * MINUTE]
    with FakeKubernetes(wall_clock=lambda: moment[0].timestamp()) as fake:
        for name in ("payments", "checkout"):
            fake.create_deployment("prod", name, image=f"registry/{name}:1.0", replicas=3)
        moment[0] = deployed_at
        for name in ("payments", "checkout"):
            fake.set_image("prod", name, f"registry/{name}:1.1")
        yield fake


def _team(
    slack: SlackEmulator,
    engine: Engine,
    clock: FrozenClock,
    cluster: FakeKubernetes,
    prometheus: str,
    aws: str,
    github: GitHubClient | None = None,
) -> Iterator[Workspace]:
    slack.add_user("U0CAROL", "carol")
    services = _services(prometheus)
    platforms = Platforms(
        Config(database_url="", services=services),
        kubernetes=KubernetesDeployments(api_client_factory=lambda _context: cluster.api_client()),
        rollout_timeout=5,
        poll_seconds=0.05,
    )
    with start_tars(
        slack,
        engine,
        clock,
        services=services,
        approvers=APPROVERS,
        platforms=platforms,
        aws=AwsConfig(region=REGION, endpoint_url=aws),
        github_client=github,
    ) as running:
        yield Workspace(running, slack, engine, clock)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(ANCHOR + 100 * MINUTE)


@pytest.fixture
def team(
    slack: SlackEmulator,
    engine: Engine,
    clock: FrozenClock,
    cluster: FakeKubernetes,
    prometheus: str,
    aws: str,
) -> Iterator[Workspace]:
    yield from _team(slack, engine, clock, cluster, prometheus, aws)


def _png_size(content: bytes) -> tuple[int, int]:
    assert content[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", content[16:24])
    return int(width), int(height)


def _thread_texts(team: Workspace, incident_id: int) -> list[str]:
    incident = team.incident(incident_id)
    assert incident.card_ts is not None
    return [message.text for message in team.slack.thread_replies(CHANNEL, incident.card_ts)]


def _wait_for_thread(team: Workspace, incident_id: int, contains: str) -> str:
    found: list[str] = []

    def posted() -> bool:
        found[:] = [text for text in _thread_texts(team, incident_id) if contains in text]
        return bool(found)

    team.wait_until(posted, timeout=20, message=f"nothing in the thread says {contains!r}")
    return found[-1]


def _at(moment: datetime) -> str:
    return f"{moment:%H:%M} UTC"


def test_metrics_posts_the_chart_and_the_runbook_numbers_to_the_thread(team: Workspace) -> None:
    incident = team.declare("payments P1 card payments failing")
    team.clock.advance(50 * MINUTE)  # 30 minutes after the rollback

    reply = team.command(f"metrics {incident.id}")
    assert "error rate" in str(reply.body)

    summary = _wait_for_thread(team, incident.id, "error rate, last 2h")
    assert "Now: *0.05%*" in summary
    assert "Baseline (hour before onset): 0.05%" in summary
    assert "Peak: 5%" in summary
    # rate()[1m] first sees the deploy's errors one minute after it.
    assert f"Onset: {_at(DEPLOY + MINUTE)}" in summary
    assert "threshold 0.1%" in summary
    chart = team.slack.uploaded_files()[-1]
    assert chart.thread_ts == incident.card_ts
    assert chart.filename == f"inc-{incident.id}-error-rate.png"
    assert _png_size(chart.content) == (1000, 450)
    with PIL.Image.open(io.BytesIO(chart.content)) as picture:
        picture.load()  # decodes every pixel: a truncated or corrupt PNG raises here
        assert picture.size == (1000, 450)
    # The runbook's 15-minute buckets the chart draws, listed beside it, on the quarter hours: healthy, 5% while
    # the bad version ran, healthy again after the rollback (buckets that straddle a change lie between).
    listed = summary.split("15-minute means: ", 1)[1].splitlines()[0].split(" · ")
    start = ANCHOR + 30 * MINUTE
    grid = start - timedelta(minutes=start.minute % 15)
    errors_rose, errors_fell = DEPLOY + MINUTE, FIX + MINUTE
    for index, bucket in enumerate(listed):
        begins = grid + index * 15 * MINUTE
        label, value = bucket.split(" ")
        assert label == f"{begins:%H:%M}"
        if begins + 15 * MINUTE <= errors_rose or begins >= errors_fell:
            assert value == "0.05%", bucket
        elif errors_rose <= begins and begins + 15 * MINUTE <= errors_fell:
            assert value == "5%", bucket
    assert len(listed) == 9  # 2 h from a quarter hour's middle: 9 quarter hours
    team.ephemeral_to("U0ALICE", "now 0.05%")
    team.wait_until(lambda: any(e.kind == "metrics_chart" for e in team.timeline(incident.id)))


def test_ten_people_asking_at_once_cost_one_read(team: Workspace, prometheus: str) -> None:
    incident = team.declare("payments P1 card payments failing")
    reads_before = _prometheus_range_queries(prometheus)
    for person in ["U0ALICE", "U0BOB"] * 5:
        team.command(f"metrics {incident.id}", user=person)
    team.wait_until(
        lambda: len(team.slack.uploaded_files()) == 10, timeout=30, message="ten charts not posted"
    )
    assert _prometheus_range_queries(prometheus) - reads_before == 1


def _prometheus_range_queries(url: str) -> int:
    """How many range queries Prometheus has answered, from its own metrics."""
    import urllib.request

    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith("prometheus_http_requests_total{") and 'handler="/api/v1/query_range"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


def test_metrics_for_a_service_without_metrics_is_refused_before_the_ack(
    slack: SlackEmulator, engine: Engine, clock: FrozenClock
) -> None:
    with start_tars(slack, engine, clock) as running:
        team = Workspace(running, slack, engine, clock)
        incident = team.declare("payments P2 slow")
        reply = team.command(f"metrics {incident.id}")
        assert "has no `metrics:` in the catalog" in str(reply.body)


def test_an_unreachable_prometheus_is_told_to_the_thread(
    slack: SlackEmulator, engine: Engine, clock: FrozenClock, cluster: FakeKubernetes, aws: str
) -> None:
    from tests.support import loopback_port

    yield_from: Any = _team(slack, engine, clock, cluster, f"http://127.0.0.1:{loopback_port()}", aws)
    team = next(yield_from)
    try:
        incident = team.declare("payments P1 card payments failing")
        team.command(f"metrics {incident.id}")
        note = _wait_for_thread(team, incident.id, "refused the connection")
        assert note.startswith(f"⚠️ {incident.ref}: Prometheus at http://127.0.0.1:")
        team.wait_until(lambda: any(e.kind == "metrics_unavailable" for e in team.timeline(incident.id)))
    finally:
        next(yield_from, None)


def _rollback_and_approve(team: Workspace, incident_id: int) -> int:
    action = request(team, f"rollback {incident_id}", user="U0ALICE")
    vote(team, action, "U0BOB")
    done = finished(team, action.id)
    assert done.state == "succeeded", done.result
    return action.id


def test_tars_validates_a_fix_that_worked_at_plus_5_and_plus_10(team: Workspace) -> None:
    incident = team.declare("payments P1 card payments failing")
    team.clock.advance(FIX - team.clock.now())
    _rollback_and_approve(team, incident.id)

    team.later(5 * MINUTE)
    first = _wait_for_thread(team, incident.id, "+5 min")
    assert "*holding*" in first
    assert "✓ Error rate below 0.1% within 5 minutes of the fix: now 0.05%" in first
    assert "✓ Latency back within 10% of baseline: now 120 ms, baseline 120 ms" in first
    assert "✓ No new error patterns since the fix: none" in first

    team.later(5 * MINUTE)
    second = _wait_for_thread(team, incident.id, "+10 min")
    assert "The fix held for 10 minutes" in second
    team.settle()  # the verdicts' timeline entries are written as their posts are booked
    validations = [event for event in team.timeline(incident.id) if event.kind == "validation"]
    assert len(validations) == 2
    # Each verdict comes with the chart, and so does the P1's first 📊 update, due 30 minutes in.
    charts = [f for f in team.slack.uploaded_files() if f.thread_ts == incident.card_ts]
    assert len(charts) == 3
    assert [e.text for e in team.timeline(incident.id) if e.kind == "metrics_chart"] == [
        "Error-rate chart posted with the first 📊 update"
    ]


def test_tars_says_plainly_when_a_fix_did_not_work(team: Workspace) -> None:
    incident = team.declare("checkout P1 checkout errors")
    team.clock.advance(FIX - team.clock.now())
    _rollback_and_approve(team, incident.id)

    team.later(5 * MINUTE)
    first = _wait_for_thread(team, incident.id, "+5 min")
    assert "*not yet holding*" in first
    assert "✗ Error rate below 0.1% within 5 minutes of the fix: now 0.3%" in first
    assert "✗ Latency back within 10% of baseline: now 500 ms, baseline 120 ms (limit 132 ms)" in first
    assert (
        "✗ No new error patterns since the fix: new: “ERROR KeyError: &lt;str&gt; in order &lt;id&gt;” ×1"
        in first
    )

    team.later(5 * MINUTE)
    second = _wait_for_thread(team, incident.id, "+10 min")
    assert "new: “ERROR KeyError: &lt;str&gt; in order &lt;id&gt;” ×3" in second
    assert "*The fix has not worked after 10 minutes.*" in second
    assert "next option is a configuration change" in second


# --- resolving by the numbers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("service", "severity", "at", "resolved"),
    [
        # P1's threshold is 0.1%: payments is at 0.05% 15 minutes after its fix, checkout at 0.3%.
        ("payments", 1, FIX + 15 * MINUTE, True),
        ("checkout", 1, FIX + 15 * MINUTE, False),
        # P2's is 0.5%: checkout's 0.3% is under it, payments' 5% before the fix is not.
        ("checkout", 2, FIX + 15 * MINUTE, True),
        ("payments", 2, FIX - 5 * MINUTE, False),
    ],
)
def test_resolving_needs_the_error_rate_under_the_threshold_for_ten_minutes(
    team: Workspace, service: str, severity: int, at: datetime, resolved: bool
) -> None:
    incident = team.declare(f"{service} P{severity} errors")
    team.clock.advance(at - team.clock.now())

    reply = team.command(f"resolve {incident.id} bad deploy rolled back")
    assert "reading" in str(reply.body)

    if resolved:
        team.wait_until(lambda: team.incident(incident.id).status == "resolved", timeout=20)
        event = next(e for e in team.timeline(incident.id) if e.kind == "resolved")
        assert event.data["criteria"].startswith(
            f"error rate under {'0.1%' if severity == 1 else '0.5%'} for"
        )
        team.ephemeral_to("U0ALICE", f"Resolved {incident.ref}: error rate under")
    else:
        refusal = _wait_for_thread(team, incident.id, "Not resolving")
        assert "10 consecutive minutes" in refusal
        assert "now 0.3%" in refusal or "now 5%" in refusal
        team.ephemeral_to("U0ALICE", "Not resolving")
        team.settle()
        assert team.incident(incident.id).status != "resolved"
        assert any(e.kind == "resolve_refused" for e in team.timeline(incident.id))


def test_resolving_with_force_skips_the_metrics_and_is_audited(team: Workspace) -> None:
    incident = team.declare("checkout P1 errors")
    team.command(f"resolve {incident.id} good enough --force")
    assert team.incident(incident.id).status == "resolved"
    assert any(e.kind == "resolve_guard_overridden" for e in team.timeline(incident.id))


def test_just_fixed_is_not_yet_resolved(team: Workspace) -> None:
    incident = team.declare("payments P1 errors")
    team.clock.advance(FIX + 5 * MINUTE - team.clock.now())
    team.command(f"resolve {incident.id} rolled back")
    refusal = _wait_for_thread(team, incident.id, "Not resolving")
    assert f"under it since {_at(FIX + MINUTE)} (4m)" in refusal


# --- rollback advice from the data ----------------------------------------------------------------------------


def _approval_card_text(team: Workspace, incident_id: int) -> str:
    action = request(team, f"rollback {incident_id}", user="U0ALICE")
    assert action.advice is not None
    return action.advice


@pytest.mark.parametrize(
    ("deployed_at", "now", "expected"),
    [
        # Deployed 40 min before now, errors rose a minute after it: the rule holds.
        (
            DEPLOY,
            ANCHOR + 100 * MINUTE,
            "✅ the runbook's rollback rule holds (deployed within 2 h: yes; incident within 30 min of it: yes)",
        ),
        # Errors rose 41 minutes after the deploy: not within 30 minutes.
        (
            DEPLOY - 40 * MINUTE,
            ANCHOR + 100 * MINUTE,
            "(deployed within 2 h: yes; incident within 30 min of it: no)",
        ),
        # Errors rose 21 minutes after a deploy that is now 2 h 5 min old.
        (
            DEPLOY - 20 * MINUTE,
            ANCHOR + 165 * MINUTE,
            "(deployed within 2 h: no; incident within 30 min of it: yes)",
        ),
    ],
    indirect=["deployed_at"],
)
def test_the_rollback_rule_is_computed_from_the_deploy_time_and_the_metrics_onset(
    team: Workspace, deployed_at: datetime, now: datetime, expected: str
) -> None:
    team.clock.advance(now - team.clock.now())
    incident = team.declare("payments P1 errors", settle=True)
    advice = _approval_card_text(team, incident.id)
    assert f"the error rate rose at {DEPLOY + MINUTE:%Y-%m-%d %H:%M} UTC (the metrics' onset)" in advice
    assert expected in advice
    assert f"Last deployment {deployed_at:%Y-%m-%d %H:%M} UTC" in advice


def test_show_gives_the_rollback_rule_from_the_last_reading(team: Workspace) -> None:
    incident = team.declare("payments P1 errors")
    reply = team.command(f"show {incident.id}")
    assert "the incident started" in str(reply.body)  # no reading yet: from the declaration
    team.command(f"metrics {incident.id}")
    _wait_for_thread(team, incident.id, "error rate, last 2h")
    team.settle()
    reply = team.command(f"show {incident.id}")
    assert "(the metrics' onset)" in str(reply.body)


# --- the runbook's log queries --------------------------------------------------------------------------------


def test_logs_lists_the_most_frequent_errors_with_ids_and_numbers_folded(team: Workspace) -> None:
    team.clock.advance(ANCHOR + 125 * MINUTE - team.clock.now())
    incident = team.declare("payments P1 errors")
    team.command(f"logs {incident.id} errors 1h")
    text = _wait_for_thread(team, incident.id, "most frequent error messages")
    team.settle()
    lines = text.splitlines()
    # Timeouts every 3 minutes from 61 to 118, 18 of them after 65; connection refused every 7 minutes: 9.
    assert lines[1].startswith(
        "• ×18 `ERROR payment &lt;id&gt; declined: upstream timed out after &lt;n&gt; ms`"
    )
    assert lines[3].startswith("• ×9 `ERROR payment &lt;id&gt; failed: connection refused by &lt;ip&gt;`")
    assert any(e.kind == "logs_searched" for e in team.timeline(incident.id))


def test_logs_finds_timeout_and_connection_errors(team: Workspace) -> None:
    team.clock.advance(ANCHOR + 125 * MINUTE - team.clock.now())
    incident = team.declare("payments P1 errors")
    team.command(f"logs {incident.id} timeouts")
    text = _wait_for_thread(team, incident.id, "timeout and connection errors")
    assert "×18 `ERROR payment &lt;id&gt; declined: upstream timed out" in text
    assert "×9 `ERROR payment &lt;id&gt; failed: connection refused" in text


def test_logs_follows_a_correlation_id_across_services_in_time_order(team: Workspace) -> None:
    team.clock.advance(ANCHOR + 125 * MINUTE - team.clock.now())
    incident = team.declare("payments P1 errors")
    team.command(f"logs {incident.id} corr=abc-123")
    text = _wait_for_thread(team, incident.id, "correlation id")
    body = text.splitlines()[1:]
    assert [line.split(" ", 2)[1] for line in body] == [
        "/tars/payments:",
        "/tars/checkout:",
        "/tars/payments:",
    ]
    assert "could not reserve stock" in body[1]


def test_a_rollback_issue_is_justified_by_the_error_rate_around_the_deployment(
    slack: SlackEmulator,
    engine: Engine,
    clock: FrozenClock,
    cluster: FakeKubernetes,
    prometheus: str,
    aws: str,
) -> None:
    with FakeGitHub() as github:
        github.create_repo("acme/payments")
        github.commit("acme/payments", {"app.py": "old()\n"}, message="Initial")
        bad = github.commit("acme/payments", {"app.py": "new()\n"}, message="Switch to the new processor")
        client = GitHubClient(
            token="ghp-test",
            base_url=github.base_url,
            seconds_between_requests=None,
            seconds_between_writes=None,
        )
        session: Any = _team(slack, engine, clock, cluster, prometheus, aws, client)
        team = next(session)
        try:
            incident = team.declare("payments P1 card payments failing")
            team.command(f"rollback {incident.id} payments commit={bad}")
            team.ephemeral_to("U0ALICE", "Opened rollback issue", timeout=20)
            [issue] = github.issues("acme/payments")
            assert (
                f"Error rate before/after the deployment at {DEPLOY:%Y-%m-%d %H:%M} UTC (Prometheus): "
                "0.05% in the hour before, "
            ) in issue["body"]
            assert "on average since, peak 5%." in issue["body"]
        finally:
            next(session, None)


def test_the_first_update_of_a_p2_carries_the_chart_and_later_ones_do_not(team: Workspace) -> None:
    incident = team.declare("payments P2 card payments failing")
    team.command(f"update {incident.id} bad deploy suspected")
    _wait_for_thread(team, incident.id, "error rate, last 2h")
    team.command(f"update {incident.id} rolling back")
    team.settle()
    charts = [e.text for e in team.timeline(incident.id) if e.kind == "metrics_chart"]
    assert charts == ["Error-rate chart posted with the first 📊 update"]
    assert len(team.slack.uploaded_files()) == 1


def test_resolving_before_the_validations_cancels_them(team: Workspace) -> None:
    incident = team.declare("payments P1 card payments failing")
    team.clock.advance(FIX - team.clock.now())
    _rollback_and_approve(team, incident.id)
    team.command(f"resolve {incident.id} rolled back --force")
    team.later(10 * MINUTE)
    team.settle()
    assert not [text for text in _thread_texts(team, incident.id) if "validation of" in text]
    assert not [e for e in team.timeline(incident.id) if e.kind == "validation"]
