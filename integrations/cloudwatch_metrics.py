"""A service's error rate and latency read from CloudWatch metrics with GetMetricData.

The config layer maps a service's settings into CloudWatchQuery values: one metric read with one statistic
(API Gateway's 5XXError Average already is a fraction), or several metrics combined by a metric-math
expression (`errors / requests`), which CloudWatch evaluates itself. `scale` turns what the metric measures
into what TARS wants: 0.01 for a percentage, 0.001 for latency in milliseconds.

Also home to what the CloudWatch readers share (this one and cloudwatch_logs): clients with timeouts, and
botocore failures turned into ReadFailed messages an incident channel can act on.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from integrations.aws_clients import READ_RETRIES, AwsClients, ClientFactory, call, utc
from integrations.observability_reads import Point, ReadFailed, Series
from integrations.plans import IntegrationError

# GetMetricData's own rule for query ids; checked when the config is loaded rather than on the first read.
_ID = re.compile(r"[a-z][a-zA-Z0-9_]*")
# The id of the expression's result; reserved so no configured metric id can shadow it.
_RESULT_ID = "tars_result"

# What the readers call, for `tars policy aws`: both are read-only and take no resource ARNs.
IAM_ACTIONS = {"unscoped": ("cloudwatch:GetMetricData",)}


@dataclass(frozen=True)
class CloudWatchMetric:
    namespace: str  # "AWS/ApiGateway"
    metric: str  # "5XXError"
    dimensions: Mapping[str, str]  # {"ApiName": "payments"}; must match the metric's dimensions exactly
    stat: str = "Average"  # any GetMetricData statistic: Sum, Average, p99, ...


@dataclass(frozen=True)
class CloudWatchQuery:
    """One metric (no expression), or metrics by id combined by a metric-math `expression` over those ids."""

    metrics: Mapping[str, CloudWatchMetric]
    expression: str | None = None
    scale: float = 1.0

    def __post_init__(self) -> None:
        if not self.metrics:
            raise ValueError("a CloudWatch query needs at least one metric")
        if self.expression is None and len(self.metrics) != 1:
            raise ValueError(
                f"{len(self.metrics)} CloudWatch metrics need an expression combining them into one series"
            )
        if self.expression is not None and not self.expression.strip():
            raise ValueError("the CloudWatch expression is empty")
        for metric_id in self.metrics:
            if not _ID.fullmatch(metric_id) or metric_id == _RESULT_ID:
                raise ValueError(
                    f"invalid CloudWatch metric id {metric_id!r}: it must start with a lowercase letter, "
                    f"contain only letters, digits and '_', and not be {_RESULT_ID!r}"
                )

    @property
    def result_id(self) -> str:
        return _RESULT_ID if self.expression is not None else next(iter(self.metrics))

    def requests(self, period: int) -> list[dict[str, Any]]:
        """GetMetricData's MetricDataQueries: only the result is returned, the expression's inputs are not."""
        queries: list[dict[str, Any]] = [
            {
                "Id": metric_id,
                "MetricStat": {
                    "Metric": {
                        "Namespace": metric.namespace,
                        "MetricName": metric.metric,
                        "Dimensions": [{"Name": k, "Value": v} for k, v in metric.dimensions.items()],
                    },
                    "Period": period,
                    "Stat": metric.stat,
                },
                "ReturnData": self.expression is None,
            }
            for metric_id, metric in self.metrics.items()
        ]
        if self.expression is not None:
            queries.append({"Id": _RESULT_ID, "Expression": self.expression, "ReturnData": True})
        return queries


def read_clients(
    service: str, *, endpoint_url: str | None, client_factory: ClientFactory | None, timeout: float
) -> AwsClients:
    """Clients for read-only calls that give up after `timeout` seconds per attempt.

    AwsClients' own clients keep botocore's 60 s socket timeouts, far too long for a reader an incident is
    waiting on; an injected factory keeps owning its clients' timeouts and retries.
    """

    def build(region: str | None) -> Any:
        import boto3
        from botocore.config import Config

        config = Config(connect_timeout=timeout, read_timeout=timeout, retries=READ_RETRIES)
        return boto3.client(service, region_name=region, endpoint_url=endpoint_url, config=config)

    return AwsClients(service, client_factory=client_factory or build, endpoint_url=endpoint_url)


def read_call(client: Any, backend: str, operation: str, method: str, timeout: float, **params: Any) -> Any:
    """One read-only API call; every botocore failure becomes ReadFailed naming `backend`."""
    from botocore.exceptions import ConnectTimeoutError, ReadTimeoutError

    try:
        return call(client, operation, method, **params)
    except IntegrationError as error:
        if isinstance(error.__cause__, ConnectTimeoutError | ReadTimeoutError):
            # The timeout applies to each attempt (READ_RETRIES makes up to three).
            message = f"{backend} did not answer in {timeout:g} s"
        else:
            message = f"{backend} {operation}: {error.details.get('code')}: {error.details.get('message')}"
        raise ReadFailed(message, status=error.status, details=error.details) from error


def as_utc(moment: datetime) -> datetime:
    """TARS passes UTC-aware datetimes; a naive one is taken as UTC rather than as the host's local time."""
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def _period(step: timedelta) -> int:
    """The step as a GetMetricData Period: whole minutes, rounded up.

    Periods under 60 s only return data for high-resolution metrics, and above 60 s CloudWatch wants
    multiples of 60, so a minute is the finest step that works for every metric.
    """
    seconds = math.ceil(step.total_seconds())
    if seconds <= 0:
        raise ValueError(f"the step must be positive, not {step}")
    return max(60, math.ceil(seconds / 60) * 60)


class CloudWatchReader:
    """A service's metrics in CloudWatch (MetricReader). `timeout` bounds each attempt of each call."""

    backend = "CloudWatch"

    def __init__(
        self,
        error_rate: CloudWatchQuery,
        latency: CloudWatchQuery | None = None,
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        client_factory: ClientFactory | None = None,
        timeout: float = 10.0,
    ) -> None:
        self._error_rate = error_rate
        self._latency = latency
        self._region = region
        self._timeout = timeout
        self._clients = read_clients(
            "cloudwatch", endpoint_url=endpoint_url, client_factory=client_factory, timeout=timeout
        )

    @property
    def has_latency(self) -> bool:
        return self._latency is not None

    def error_rate(self, start: datetime, end: datetime, step: timedelta) -> Series:
        return self._read(self._error_rate, start, end, step)

    def latency(self, start: datetime, end: datetime, step: timedelta) -> Series:
        if self._latency is None:
            raise ReadFailed("CloudWatch: no latency metric is configured for this service")
        return self._read(self._latency, start, end, step)

    def _read(self, query: CloudWatchQuery, start: datetime, end: datetime, step: timedelta) -> Series:
        period = _period(step)
        # Starting on a multiple of the period puts the points on the same boundaries (whole minutes, whole
        # five minutes) whatever `start` is, so consecutive reads line up.
        epoch = int(as_utc(start).timestamp())
        params: dict[str, Any] = {
            "MetricDataQueries": query.requests(period),
            "StartTime": datetime.fromtimestamp(epoch - epoch % period, UTC),
            "EndTime": as_utc(end),
            "ScanBy": "TimestampAscending",
        }
        client = self._clients.get(self._region)
        points: list[Point] = []
        while True:
            response = read_call(
                client, self.backend, "GetMetricData", "get_metric_data", self._timeout, **params
            )
            for result in response.get("MetricDataResults", []):
                if result.get("Id") != query.result_id:
                    continue
                status = result.get("StatusCode")
                if status in ("Forbidden", "InternalError"):
                    notes = "; ".join(str(m.get("Value")) for m in result.get("Messages", [])) or "no details"
                    raise ReadFailed(f"CloudWatch GetMetricData: {status}: {notes}")
                for at, value in zip(result.get("Timestamps", []), result.get("Values", []), strict=False):
                    moment = utc(at)
                    # Metric math can yield NaN or infinity (a division by zero requests); like a missing
                    # datapoint, that is a gap, not a value.
                    if moment is not None and isinstance(value, int | float) and math.isfinite(value):
                        points.append(Point(at=moment, value=float(value) * query.scale))
            token = response.get("NextToken")
            if not token:
                break
            params["NextToken"] = token
        # Pages come in time order already; sorting guards the Series contract at no real cost.
        return tuple(sorted(points, key=lambda point: point.at))
