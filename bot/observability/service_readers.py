"""Each catalog service's metrics and logs readers, built from its `metrics:` and `logs:` on first use.

Secrets are read from the environment variables the catalog names, when a reader is built; a missing one is
reported where the reading was asked for, like any other failed read.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING

from bot.core.settings import AwsConfig, CloudWatchSeries, MetricsConfig, ServiceConfig
from integrations.observability_reads import LogReader, MetricReader, ReadFailed

if TYPE_CHECKING:
    from integrations.cloudwatch_metrics import CloudWatchQuery

READ_TIMEOUT = 10.0  # seconds: "Prometheus did not answer in 10 s"


class ServiceReaders:
    def __init__(
        self,
        services: Mapping[str, ServiceConfig],
        aws: AwsConfig,
        environ: Mapping[str, str] | None = None,
        *,
        timeout: float = READ_TIMEOUT,
    ) -> None:
        self.services = services
        self.aws = aws
        self.environ = os.environ if environ is None else environ
        self.timeout = timeout
        self._metrics: dict[str, MetricReader] = {}
        self._logs: dict[str | None, LogReader] = {}
        self._lock = threading.Lock()

    def has_metrics(self, service: str) -> bool:
        entry = self.services.get(service)
        return entry is not None and entry.metrics is not None

    def has_latency(self, service: str) -> bool:
        entry = self.services.get(service)
        return entry is not None and entry.metrics is not None and entry.metrics.has_latency

    def metrics(self, service: str) -> MetricReader | None:
        entry = self.services.get(service)
        if entry is None or entry.metrics is None:
            return None
        with self._lock:
            if service not in self._metrics:
                self._metrics[service] = self._metric_reader(entry.metrics)
            return self._metrics[service]

    def log_groups(self, service: str) -> list[str]:
        entry = self.services.get(service)
        return list(entry.logs.log_groups) if entry is not None and entry.logs is not None else []

    def logs(self, service: str) -> LogReader | None:
        """The reader of the service's log groups (one per region, shared by the services in it)."""
        entry = self.services.get(service)
        if entry is None or entry.logs is None:
            return None
        region = entry.logs.region or self.aws.region
        with self._lock:
            if region not in self._logs:
                from integrations.cloudwatch_logs import CloudWatchLogReader

                self._logs[region] = CloudWatchLogReader(
                    region=region, endpoint_url=self.aws.endpoint_url, timeout=self.timeout
                )
            return self._logs[region]

    def _metric_reader(self, config: MetricsConfig) -> MetricReader:
        if config.prometheus is not None:
            from integrations.prometheus_metrics import PrometheusReader

            source = config.prometheus
            password = self._secret(source.password_env)
            return PrometheusReader(
                source.url,
                source.error_rate,
                source.latency,
                bearer_token=self._secret(source.bearer_token_env),
                basic_auth=(source.username, password) if source.username and password else None,
                timeout=self.timeout,
            )
        assert config.cloudwatch is not None  # MetricsConfig holds exactly one source
        from integrations.cloudwatch_metrics import CloudWatchReader

        cloudwatch = config.cloudwatch
        return CloudWatchReader(
            _query(cloudwatch.error_rate),
            _query(cloudwatch.latency) if cloudwatch.latency is not None else None,
            region=cloudwatch.region or self.aws.region,
            endpoint_url=self.aws.endpoint_url,
            timeout=self.timeout,
        )

    def _secret(self, variable: str | None) -> str | None:
        if variable is None:
            return None
        value = self.environ.get(variable)
        if not value:
            raise ReadFailed(f"the environment variable {variable}, which the catalog names, is not set")
        return value


def missing_secrets(services: Mapping[str, ServiceConfig], environ: Mapping[str, str]) -> list[str]:
    """`services.<name>.metrics.prometheus.<key>: <VARIABLE> is not set` for every secret the catalog names
    that the environment lacks: refused at start-up rather than at the first chart."""
    missing = []
    for name, entry in services.items():
        source = entry.metrics.prometheus if entry.metrics else None
        if source is None:
            continue
        for key in ("bearer_token_env", "password_env"):
            variable = getattr(source, key)
            if variable and not environ.get(variable):
                missing.append(f"services.{name}.metrics.prometheus.{key}: {variable} is not set")
    return missing


def describe(services: Mapping[str, ServiceConfig]) -> str:
    """One line for `tars check-config`: which services TARS can chart and whose logs it can search."""
    metrics = [
        f"{name} ({'Prometheus' if entry.metrics.prometheus else 'CloudWatch'})"
        for name, entry in services.items()
        if entry.metrics is not None
    ]
    logs = [name for name, entry in services.items() if entry.logs is not None]
    return f"metrics: {', '.join(metrics) or 'none'}; logs: {', '.join(logs) or 'none'}"


def _query(series: CloudWatchSeries) -> CloudWatchQuery:
    from integrations.cloudwatch_metrics import CloudWatchMetric, CloudWatchQuery

    metrics = {
        name: CloudWatchMetric(spec.namespace, spec.metric, dict(spec.dimensions), spec.stat)
        for name, spec in series.metrics.items()
    }
    return CloudWatchQuery(metrics, series.expression, series.scale)
