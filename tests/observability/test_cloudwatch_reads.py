"""CloudWatchReader and CloudWatchLogReader against a moto server, plus loopback servers for what moto lacks.

moto's GetMetricData evaluates no metric math (an expression comes back empty), so the expression request is
checked on a loopback HTTP server that records what the reader sends and answers as CloudWatch would. Data is
anchored on the real clock: moto's PutLogEvents refuses events older than 14 days or in the future.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from integrations.cloudwatch_logs import CloudWatchLogReader, quote
from integrations.cloudwatch_metrics import CloudWatchMetric, CloudWatchQuery, CloudWatchReader
from integrations.observability_reads import LogLine, Point, ReadFailed
from tests.integrations.aws_fixtures import REGION, client, client_factory

MINUTE = timedelta(minutes=1)
API = {"ApiName": "payments"}
ERROR_RATE = CloudWatchQuery({"errors": CloudWatchMetric("AWS/ApiGateway", "5XXError", API, "Average")})
# API Gateway reports latency in milliseconds; TARS wants seconds.
LATENCY = CloudWatchQuery(
    {"latency": CloudWatchMetric("AWS/ApiGateway", "Latency", API, "Average")}, scale=0.001
)


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Credentials for readers that build their own clients; no profile or config file of the developer's."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))


# --- metrics -------------------------------------------------------------------------------------------------


@pytest.fixture
def deploy(endpoint: str) -> datetime:
    """15 minutes of payments metrics from the returned (5-minute aligned) start: 0.05% errors and 120 ms,
    then 5% errors and 2.4 s for the 5 minutes after a deploy, then healthy again. Each minute's datapoint is
    stamped 20 s into the minute, so the reader's points show CloudWatch's bucket starts, not raw times."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    start = now - timedelta(minutes=40)
    start -= timedelta(minutes=start.minute % 5)
    data: list[dict[str, Any]] = []
    for minute in range(15):
        bad = 5 <= minute < 10
        at = start + minute * MINUTE + timedelta(seconds=20)
        errors = 100.0 if bad else 1.0
        data += [
            {
                "MetricName": "5XXError",
                "Dimensions": [{"Name": "ApiName", "Value": "payments"}],
                "Timestamp": at,
                "StatisticValues": {"SampleCount": 2000.0, "Sum": errors, "Minimum": 0.0, "Maximum": 1.0},
            },
            {
                "MetricName": "Latency",
                "Dimensions": [{"Name": "ApiName", "Value": "payments"}],
                "Timestamp": at,
                "Values": [2300.0, 2500.0] if bad else [100.0, 140.0],
                "Unit": "Milliseconds",
            },
            # Another API failing every request: the dimensions must keep it out of payments' numbers.
            {
                "MetricName": "5XXError",
                "Dimensions": [{"Name": "ApiName", "Value": "search"}],
                "Timestamp": at,
                "StatisticValues": {"SampleCount": 10.0, "Sum": 10.0, "Minimum": 1.0, "Maximum": 1.0},
            },
        ]
    client(endpoint, "cloudwatch").put_metric_data(Namespace="AWS/ApiGateway", MetricData=data)
    return start


def _metrics(endpoint: str, latency: CloudWatchQuery | None = LATENCY) -> CloudWatchReader:
    return CloudWatchReader(
        ERROR_RATE, latency, region=REGION, client_factory=client_factory(endpoint, "cloudwatch")
    )


def test_error_rate_per_minute_shows_the_deploy(endpoint: str, deploy: datetime) -> None:
    series = _metrics(endpoint).error_rate(deploy, deploy + 15 * MINUTE, MINUTE)

    assert [point.at for point in series] == [deploy + minute * MINUTE for minute in range(15)]
    assert all(point.at.tzinfo == UTC for point in series)
    expected = [0.0005] * 5 + [0.05] * 5 + [0.0005] * 5
    assert [point.value for point in series] == pytest.approx(expected)


def test_coarser_steps_are_whole_minute_periods_on_their_own_boundaries(
    endpoint: str, deploy: datetime
) -> None:
    reader = _metrics(endpoint)

    # A start inside the first five minutes still reads whole five-minute buckets from the boundary.
    five = reader.error_rate(deploy + 2 * MINUTE, deploy + 15 * MINUTE, timedelta(minutes=5))
    # Under a minute is read per minute: standard-resolution metrics have nothing finer.
    fine = reader.error_rate(deploy, deploy + 3 * MINUTE, timedelta(seconds=10))

    assert [point.at for point in five] == [deploy, deploy + 5 * MINUTE, deploy + 10 * MINUTE]
    assert [point.value for point in five] == pytest.approx([0.0005, 0.05, 0.0005])
    assert [point.at for point in fine] == [deploy, deploy + MINUTE, deploy + 2 * MINUTE]


def test_latency_is_scaled_to_seconds(endpoint: str, deploy: datetime) -> None:
    reader = _metrics(endpoint)

    series = reader.latency(deploy + 3 * MINUTE, deploy + 12 * MINUTE, MINUTE)

    assert reader.has_latency
    assert [point.at for point in series] == [deploy + minute * MINUTE for minute in range(3, 12)]
    assert [point.value for point in series] == pytest.approx([0.12] * 2 + [2.4] * 5 + [0.12] * 2)


def test_no_latency_configured(endpoint: str, deploy: datetime) -> None:
    reader = _metrics(endpoint, latency=None)

    assert not reader.has_latency
    with pytest.raises(ReadFailed, match=r"^CloudWatch: no latency metric is configured for this service$"):
        reader.latency(deploy, deploy + 15 * MINUTE, MINUTE)


def test_aws_errors_name_the_backend_and_the_call(endpoint: str, deploy: datetime) -> None:
    with pytest.raises(ReadFailed) as failure:
        _metrics(endpoint).error_rate(deploy, deploy, MINUTE)

    assert str(failure.value) == (
        "CloudWatch GetMetricData: ValidationError: The parameter StartTime must not equal parameter EndTime."
    )


def test_query_shapes_are_checked_up_front() -> None:
    errors = CloudWatchMetric("App", "Errors", {"Service": "payments"}, "Sum")
    with pytest.raises(ValueError, match="need an expression"):
        CloudWatchQuery({"errors": errors, "requests": errors})
    with pytest.raises(ValueError, match="invalid CloudWatch metric id 'Errors'"):
        CloudWatchQuery({"Errors": errors})
    with pytest.raises(ValueError, match="'tars_result'"):
        CloudWatchQuery({"tars_result": errors}, expression="tars_result * 2")


class _Recorder(BaseHTTPRequestHandler):
    """Answers each POST with the next canned JSON body and records what was asked."""

    server: _CannedServer

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.requests.append((self.headers.get("X-Amz-Target"), json.loads(body)))
        answer = json.dumps(self.server.answers.pop(0)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _CannedServer(ThreadingHTTPServer):
    def __init__(self, answers: list[dict[str, Any]]) -> None:
        super().__init__(("127.0.0.1", 0), _Recorder)
        self.answers = answers
        self.requests: list[tuple[str | None, dict[str, Any]]] = []


@pytest.fixture
def canned() -> Iterator[_CannedServer]:
    server = _CannedServer([])
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def test_metric_math_sends_the_expression_and_follows_pages(canned: _CannedServer, aws_env: None) -> None:
    """moto returns nothing for `errors / requests`, so the request itself is what is checked here."""
    t0 = datetime(2025, 3, 4, 12, 0, tzinfo=UTC)
    stamp = [int((t0 + n * 2 * MINUTE).timestamp()) for n in range(3)]
    canned.answers += [
        {
            "MetricDataResults": [
                {
                    "Id": "tars_result",
                    "Label": "tars_result",
                    "Timestamps": stamp[:2],
                    "Values": [0.0005, 0.05],
                    "StatusCode": "PartialData",
                }
            ],
            "NextToken": "page-2",
            "Messages": [],
        },
        {
            "MetricDataResults": [
                {"Id": "tars_result", "Timestamps": stamp[2:], "Values": [0.001], "StatusCode": "Complete"}
            ],
            "Messages": [],
        },
    ]
    dims = {"Service": "payments"}
    query = CloudWatchQuery(
        {
            "errors": CloudWatchMetric("App", "Errors", dims, "Sum"),
            "requests": CloudWatchMetric("App", "Requests", dims, "Sum"),
        },
        expression="errors / requests",
    )
    reader = CloudWatchReader(query, region=REGION, endpoint_url=f"http://127.0.0.1:{canned.server_port}")

    # A 90 s step is read as 2-minute periods, starting on a 2-minute boundary.
    series = reader.error_rate(t0 + timedelta(seconds=100), t0 + 6 * MINUTE, timedelta(seconds=90))

    assert series == (
        Point(t0, 0.0005),
        Point(t0 + 2 * MINUTE, 0.05),
        Point(t0 + 4 * MINUTE, 0.001),
    )
    (target, first), (_, second) = canned.requests
    assert target == "GraniteServiceVersion20100801.GetMetricData"

    def stat(metric: str) -> dict[str, Any]:
        return {
            "Metric": {
                "Namespace": "App",
                "MetricName": metric,
                "Dimensions": [{"Name": "Service", "Value": "payments"}],
            },
            "Period": 120,
            "Stat": "Sum",
        }

    assert first == {
        "MetricDataQueries": [
            {"Id": "errors", "MetricStat": stat("Errors"), "ReturnData": False},
            {"Id": "requests", "MetricStat": stat("Requests"), "ReturnData": False},
            {"Id": "tars_result", "Expression": "errors / requests", "ReturnData": True},
        ],
        "StartTime": int(t0.timestamp()),
        "EndTime": int((t0 + 6 * MINUTE).timestamp()),
        "ScanBy": "TimestampAscending",
    }
    assert second == {**first, "NextToken": "page-2"}


# --- logs ----------------------------------------------------------------------------------------------------

API_GROUP, WORKER_GROUP = "/ecs/payments-api", "/ecs/payments-worker"
# (seconds after t0, group, stream, message)
LINES = [
    (0, API_GROUP, "api/1", "INFO GET /orders/17 200 in 38 ms corr=zzz-999"),
    (5, WORKER_GROUP, "worker/1", "INFO job 88 started corr=abc-123"),
    (10, API_GROUP, "api/1", "ERROR order 4711 failed: NullPointerException corr=abc-123"),
    (15, API_GROUP, "api/2", "ERROR order 4712 failed: KeyError 'sku'"),
    (20, API_GROUP, "api/1", "WARN upstream timed out after 3000 ms corr=abc-123"),
    (25, WORKER_GROUP, "worker/1", "upstream timed out after 3000 ms (attempt 2 of 3)"),
    (30, WORKER_GROUP, "worker/1", "ERROR job 88 failed corr=abc-123"),
    (35, API_GROUP, "api/2", "INFO slow request 1200 ms"),
    (40, API_GROUP, "api/1", "ERROR connection refused to db-7:5432"),
    (
        45,
        WORKER_GROUP,
        "worker/1",
        "error retrying job 89",
    ),  # lower case: CloudWatch terms are case-sensitive
]


@pytest.fixture
def logs(endpoint: str) -> datetime:
    """The LINES in two groups from a t0 20 minutes ago; returns t0."""
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=20)
    api = client(endpoint, "logs")
    for group in (API_GROUP, WORKER_GROUP):
        api.create_log_group(logGroupName=group)
    streams = sorted({(group, stream) for _, group, stream, _ in LINES})
    for group, stream in streams:
        api.create_log_stream(logGroupName=group, logStreamName=stream)
        api.put_log_events(
            logGroupName=group,
            logStreamName=stream,
            logEvents=[
                {"timestamp": int((t0 + timedelta(seconds=s)).timestamp() * 1000), "message": message}
                for s, g, st, message in LINES
                if (g, st) == (group, stream)
            ],
        )
    return t0


def _lines(t0: datetime, *seconds: int) -> list[LogLine]:
    by_time = {s: (group, stream, message) for s, group, stream, message in LINES}
    return [LogLine(t0 + timedelta(seconds=s), *by_time[s]) for s in seconds]


def _log_reader(endpoint: str) -> CloudWatchLogReader:
    return CloudWatchLogReader(region=REGION, client_factory=client_factory(endpoint, "logs"))


def _search(reader: CloudWatchLogReader, t0: datetime, terms: list[str], limit: int = 100) -> list[LogLine]:
    return reader.search([API_GROUP, WORKER_GROUP], t0, t0 + 10 * MINUTE, terms, limit=limit)


def test_error_lines_across_groups_oldest_first(endpoint: str, logs: datetime) -> None:
    found = _search(_log_reader(endpoint), logs, ["ERROR"])

    assert found == _lines(logs, 10, 15, 30, 40)
    assert all(line.at.tzinfo == UTC for line in found)


def test_any_of_several_terms_each_line_once(endpoint: str, logs: datetime) -> None:
    reader = _log_reader(endpoint)

    timeouts = _search(reader, logs, ["upstream timed out", "connection refused"])
    # The line at 40 s has both ERROR and "connection refused": it is found twice and shown once.
    either = _search(reader, logs, ["ERROR", "connection refused", "ERROR"])

    assert timeouts == _lines(logs, 20, 25, 40)
    assert either == _lines(logs, 10, 15, 30, 40)


def test_a_correlation_id_across_groups(endpoint: str, logs: datetime) -> None:
    found = _search(_log_reader(endpoint), logs, ["corr=abc-123"])

    assert found == _lines(logs, 5, 10, 20, 30)


def test_time_window_and_limit_keep_the_oldest(endpoint: str, logs: datetime) -> None:
    reader = _log_reader(endpoint)

    window = reader.search(
        [API_GROUP, WORKER_GROUP],
        logs + timedelta(seconds=12),
        logs + timedelta(seconds=30),
        ["ERROR"],
        limit=10,
    )

    assert window == _lines(logs, 15, 30)
    assert _search(reader, logs, ["ERROR"], limit=2) == _lines(logs, 10, 15)
    assert _search(reader, logs, ["ERROR"], limit=0) == []
    assert _search(reader, logs, []) == []


class _SmallPages:
    """A logs client whose FilterLogEvents pages hold at most two events, as AWS's pages may (they are capped
    at 1 MB, and may be partly full or empty), so the reader has to follow nextToken."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls: list[dict[str, Any]] = []

    def filter_log_events(self, **params: Any) -> Any:
        self.calls.append(params)
        return self._client.filter_log_events(**{**params, "limit": min(params["limit"], 2)})


def test_follows_pages_and_stops_at_the_limit(endpoint: str, logs: datetime) -> None:
    paged = _SmallPages(client(endpoint, "logs"))
    reader = CloudWatchLogReader(region=REGION, client_factory=lambda region: paged)

    everything = _search(reader, logs, ["ERROR"])
    pages = [(call["logGroupName"], "nextToken" in call) for call in paged.calls]
    paged.calls.clear()
    oldest = _search(reader, logs, ["ERROR"], limit=2)

    assert everything == _lines(logs, 10, 15, 30, 40)
    assert pages == [(API_GROUP, False), (API_GROUP, True), (WORKER_GROUP, False)]
    assert paged.calls[0]["filterPattern"] == '"ERROR"'
    # The API group's first page already holds its two oldest errors: nothing newer is fetched.
    assert oldest == _lines(logs, 10, 15)
    assert [call["logGroupName"] for call in paged.calls] == [API_GROUP, WORKER_GROUP]


def test_a_missing_group_is_named(endpoint: str, logs: datetime) -> None:
    with pytest.raises(ReadFailed) as failure:
        _log_reader(endpoint).search([API_GROUP, "/ecs/nope"], logs, logs + MINUTE, ["ERROR"], limit=10)

    assert str(failure.value) == "CloudWatch Logs: log group /ecs/nope does not exist"


def test_terms_are_quoted_literally() -> None:
    assert quote("upstream timed out") == '"upstream timed out"'
    assert quote('say "hi" C:\\tmp') == '"say \\"hi\\" C:\\\\tmp"'


# --- timeouts ------------------------------------------------------------------------------------------------


@pytest.fixture
def silent() -> Iterator[socket.socket]:
    """A loopback socket whose backlog completes connections that nobody ever reads from or answers."""
    with socket.create_server(("127.0.0.1", 0), backlog=16) as listener:
        yield listener


@pytest.mark.parametrize("backend", ["CloudWatch", "CloudWatch Logs"])
def test_a_silent_backend_times_out(backend: str, silent: socket.socket, aws_env: None) -> None:
    url = f"http://127.0.0.1:{silent.getsockname()[1]}"
    now = datetime.now(UTC)

    with pytest.raises(ReadFailed) as failure:
        if backend == "CloudWatch":
            CloudWatchReader(ERROR_RATE, region=REGION, endpoint_url=url, timeout=0.5).error_rate(
                now - 10 * MINUTE, now, MINUTE
            )
        else:
            CloudWatchLogReader(region=REGION, endpoint_url=url, timeout=0.5).search(
                [API_GROUP], now - 10 * MINUTE, now, ["ERROR"], limit=10
            )

    assert str(failure.value) == f"{backend} did not answer in 0.5 s"
    # The reader did connect: it timed out waiting for an answer, not for a refused connection.
    silent.settimeout(5)
    silent.accept()[0].close()
