"""PrometheusReader against a real Prometheus serving a backfilled bad deploy, and against servers that fail."""

from __future__ import annotations

import base64
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from integrations.observability_reads import MetricReader, Point, ReadFailed
from integrations.prometheus_metrics import PrometheusReader
from tests.observability.prometheus_server import (
    ErrorScenario,
    Sample,
    error_scenario,
    recent_anchor,
    running_prometheus,
)
from tests.support import loopback_port

MINUTE = timedelta(minutes=1)
# A recording rule's ratio over a step with no traffic is 0/0; such series are what NaN looks like for real.
QUIET_RATIO = "job:errors:ratio_rate1m"
QUIET_VALUES = (0.001, float("nan"), float("inf"), 0.002, float("-inf"), 0.003)


@pytest.fixture(scope="module")
def scenario() -> ErrorScenario:
    return error_scenario(recent_anchor())


@pytest.fixture(scope="module")
def prometheus(scenario: ErrorScenario) -> Iterator[str]:
    quiet = [
        Sample(QUIET_RATIO, {"service": "ledger"}, scenario.start + i * timedelta(seconds=15), value)
        for i, value in enumerate(QUIET_VALUES)
    ]
    with running_prometheus([*scenario.samples, *quiet], {**scenario.types, QUIET_RATIO: "gauge"}) as url:
        yield url


@pytest.fixture
def reader(prometheus: str, scenario: ErrorScenario) -> PrometheusReader:
    return PrometheusReader(prometheus, scenario.error_rate_query(), scenario.latency_query())


def by_minute(points: tuple[Point, ...]) -> dict[datetime, float]:
    return {point.at: point.value for point in points}


def test_it_is_a_metric_reader(reader: PrometheusReader) -> None:
    metrics: MetricReader = reader
    assert metrics.backend == "Prometheus"
    assert metrics.has_latency


def test_the_error_rate_is_the_baseline_before_the_deploy_five_percent_during_it_and_the_baseline_after(
    reader: PrometheusReader, scenario: ErrorScenario
) -> None:
    series = reader.error_rate(scenario.start, scenario.end, MINUTE)

    # rate() needs two samples in its minute, so the first point is a minute in; then one a minute to the end.
    minutes = [scenario.start + n * MINUTE for n in range(1, 61)]
    assert [point.at for point in series] == minutes
    assert all(point.at.tzinfo == UTC for point in series)
    rates = by_minute(series)
    for at in minutes:
        expected = 0.05 if scenario.deploy_at < at <= scenario.rollback_at else 0.0005
        assert rates[at] == pytest.approx(expected, rel=1e-6), at
    # Either side of the thresholds a verdict would use (0.1% and 0.5%).
    assert rates[scenario.deploy_at] < 0.001
    assert rates[scenario.deploy_at + MINUTE] > 0.005
    assert rates[scenario.rollback_at] > 0.005
    assert rates[scenario.rollback_at + MINUTE] < 0.001


def test_the_step_sets_the_points_and_a_window_after_the_data_has_none(
    reader: PrometheusReader, scenario: ErrorScenario
) -> None:
    series = reader.error_rate(scenario.end - MINUTE, scenario.end + 10 * MINUTE, timedelta(seconds=30))

    # The last samples are at `end`; a one-minute rate() finds two of them until 30 s after it.
    assert [point.at for point in series] == [scenario.end + n * timedelta(seconds=30) for n in range(-2, 2)]


def test_the_p99_latency_follows_the_deploy(reader: PrometheusReader, scenario: ErrorScenario) -> None:
    series = by_minute(reader.latency(scenario.start, scenario.end, 5 * MINUTE))

    assert series[scenario.deploy_at] == pytest.approx(0.12, rel=1e-6)
    assert series[scenario.deploy_at + 5 * MINUTE] == pytest.approx(1.5, rel=1e-6)
    assert series[scenario.rollback_at] == pytest.approx(1.5, rel=1e-6)
    assert series[scenario.rollback_at + 5 * MINUTE] == pytest.approx(0.12, rel=1e-6)


def test_a_query_returning_two_series_is_refused_with_how_to_fix_it(
    prometheus: str, scenario: ErrorScenario
) -> None:
    reader = PrometheusReader(prometheus, "sum by (code) (rate(http_requests_total[1m]))")

    with pytest.raises(ReadFailed) as failed:
        reader.error_rate(scenario.start, scenario.end, MINUTE)

    assert failed.value.message == (
        "the Prometheus error rate query returned 2 series; it must return exactly one (wrap it in sum(...))"
    )


def test_a_query_matching_nothing_reads_no_points(prometheus: str, scenario: ErrorScenario) -> None:
    reader = PrometheusReader(prometheus, 'sum(rate(http_requests_total{service="nonesuch"}[1m]))')

    assert reader.error_rate(scenario.start, scenario.end, MINUTE) == ()


@pytest.mark.parametrize(
    ("query", "status", "error"),
    [
        ("sum(rate(http_requests_total[1m])", 400, "parse error: unclosed left parenthesis"),
        # Parses, but both sides have two series per service: Prometheus can only tell when evaluating.
        (
            "http_requests_total / on (service) http_request_duration_seconds_count",
            422,
            "many-to-one matching must be explicit (group_left/group_right)",
        ),
    ],
)
def test_a_query_prometheus_rejects_quotes_its_error(
    prometheus: str, scenario: ErrorScenario, query: str, status: int, error: str
) -> None:
    reader = PrometheusReader(prometheus, query)

    with pytest.raises(ReadFailed) as failed:
        reader.error_rate(scenario.start, scenario.end, MINUTE)

    assert failed.value.message.startswith("Prometheus rejected the query: ")
    assert error in failed.value.message
    assert failed.value.status == status


def test_nan_and_infinite_values_are_skipped(prometheus: str, scenario: ErrorScenario) -> None:
    reader = PrometheusReader(prometheus, f'sum({QUIET_RATIO}{{service="ledger"}})')
    step = timedelta(seconds=15)

    series = reader.error_rate(scenario.start, scenario.start + 5 * step, step)

    assert series == (
        Point(scenario.start, 0.001),
        Point(scenario.start + 3 * step, 0.002),
        Point(scenario.start + 5 * step, 0.003),
    )


def test_prometheus_s_11000_point_limit_is_checked_before_asking(
    prometheus: str, scenario: ErrorScenario
) -> None:
    reader = PrometheusReader(prometheus, "vector(1)")
    second = timedelta(seconds=1)

    assert len(reader.error_rate(scenario.start, scenario.start + 11_000 * second, second)) == 11_001
    with pytest.raises(ReadFailed) as failed:
        reader.error_rate(scenario.start, scenario.start + 11_001 * second, second)
    assert failed.value.message == (
        "Prometheus returns at most 11000 points per query: 3:03:21 at a 1 s step is 11001; use a longer step"
    )


def test_without_a_latency_query_latency_cannot_be_read(prometheus: str, scenario: ErrorScenario) -> None:
    reader = PrometheusReader(prometheus, scenario.error_rate_query())

    assert not reader.has_latency
    with pytest.raises(ReadFailed, match="no Prometheus latency query is configured"):
        reader.latency(scenario.start, scenario.end, MINUTE)


def test_a_prometheus_that_never_answers_times_out_with_a_message() -> None:
    # Listening is enough: the kernel completes the handshake and takes the request; nothing ever answers.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        reader = PrometheusReader(f"http://127.0.0.1:{silent.getsockname()[1]}", "vector(1)", timeout=0.5)
        now = datetime.now(UTC)

        with pytest.raises(ReadFailed) as failed:
            reader.error_rate(now - 10 * MINUTE, now, MINUTE)

    assert failed.value.message == "Prometheus did not answer in 0.5 s"


def test_a_closed_port_is_a_refused_connection() -> None:
    port = loopback_port()
    reader = PrometheusReader(f"http://127.0.0.1:{port}/", "vector(1)")
    now = datetime.now(UTC)

    with pytest.raises(ReadFailed) as failed:
        reader.error_rate(now - 10 * MINUTE, now, MINUTE)

    assert failed.value.message == f"Prometheus at http://127.0.0.1:{port} refused the connection"


@dataclass
class FakePrometheus:
    """A loopback HTTP server that records each request and answers with `status` and `body`."""

    url: str
    status: int = 200
    body: bytes = json.dumps({"status": "success", "data": {"resultType": "matrix", "result": []}}).encode()
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)


@pytest.fixture
def fake() -> Iterator[FakePrometheus]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests.append((self.path, dict(self.headers.items())))
            self.send_response(state.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(state.body)))
            self.end_headers()
            self.wfile.write(state.body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state = FakePrometheus(url=f"http://127.0.0.1:{server.server_address[1]}")
    # shutdown() waits for serve_forever's next poll: a short one keeps each test's teardown short.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_the_bearer_token_and_the_range_are_sent(fake: FakePrometheus) -> None:
    reader = PrometheusReader(fake.url + "/prometheus/", "sum(up)", bearer_token="s3cret-token")
    end = datetime(2026, 3, 2, 10, 30, tzinfo=UTC)

    assert reader.error_rate(end - timedelta(hours=1), end, timedelta(seconds=30)) == ()

    [(path, headers)] = fake.requests
    assert headers["Authorization"] == "Bearer s3cret-token"
    assert urlsplit(path).path == "/prometheus/api/v1/query_range"
    assert parse_qs(urlsplit(path).query) == {
        "query": ["sum(up)"],
        "start": [f"{(end - timedelta(hours=1)).timestamp():.3f}"],
        "end": [f"{end.timestamp():.3f}"],
        "step": ["30.000"],
    }


def test_basic_auth_is_sent(fake: FakePrometheus) -> None:
    reader = PrometheusReader(fake.url, "sum(up)", basic_auth=("tars", "pa55word"))
    now = datetime.now(UTC)

    reader.error_rate(now - MINUTE, now, MINUTE)

    [(_, headers)] = fake.requests
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"tars:pa55word").decode()


@pytest.mark.parametrize("status", [401, 403])
def test_refused_credentials_say_authentication_failed_without_the_secret(
    fake: FakePrometheus, status: int
) -> None:
    fake.status, fake.body = status, b'{"error": "token s3cret-token is not valid"}'
    now = datetime.now(UTC)

    with pytest.raises(ReadFailed) as failed:
        PrometheusReader(fake.url, "sum(up)", bearer_token="s3cret-token").error_rate(
            now - MINUTE, now, MINUTE
        )

    assert failed.value.message.startswith(f"Prometheus authentication failed (HTTP {status})")
    assert "s3cret" not in failed.value.message


def test_a_proxy_s_error_page_gives_the_status(fake: FakePrometheus) -> None:
    fake.status, fake.body = 502, b"<html><body>Bad Gateway</body></html>"
    now = datetime.now(UTC)

    with pytest.raises(ReadFailed) as failed:
        PrometheusReader(fake.url, "sum(up)").error_rate(now - MINUTE, now, MINUTE)

    assert failed.value.message == "Prometheus answered HTTP 502 Bad Gateway"


def test_a_server_error_quotes_prometheus(fake: FakePrometheus) -> None:
    fake.status = 503
    fake.body = (
        b'{"status": "error", "errorType": "timeout", "error": "query timed out in expression evaluation"}'
    )
    now = datetime.now(UTC)

    with pytest.raises(ReadFailed) as failed:
        PrometheusReader(fake.url, "sum(up)").error_rate(now - MINUTE, now, MINUTE)

    assert failed.value.message == "Prometheus failed (HTTP 503): query timed out in expression evaluation"
