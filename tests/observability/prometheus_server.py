"""A real Prometheus (Debian's) serving samples a test wrote: backfilled with promtool, then queried over HTTP.

Prometheus evaluates rate(), sums and histogram_quantile itself, so tests load what an application would expose
(cumulative counters, histogram buckets, gauges) and query it with the PromQL an operator would configure.
Samples must be recent and in the past: see running_prometheus.
"""

from __future__ import annotations

import math
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Literal

import pytest

from tests.support import debian_tool, loopback_port

MetricType = Literal["counter", "gauge", "histogram", "summary", "unknown"]

# The sample names each OpenMetrics family type exposes, after the family's own name.
SUFFIXES: dict[MetricType, tuple[str, ...]] = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "unknown": ("",),
}

READY_DEADLINE = 60.0


@dataclass(frozen=True)
class Sample:
    """One value of one series at one time; `name` is the sample's name as exposed (http_requests_total)."""

    name: str
    labels: Mapping[str, str]
    at: datetime
    value: float


def openmetrics(samples: Iterable[Sample], types: Mapping[str, MetricType]) -> str:
    """Samples as an OpenMetrics exposition with timestamps, what promtool backfills from.

    `types` maps family names to their type (`{"http_requests": "counter"}` for samples named
    http_requests_total); a sample of no declared family is its own family of unknown type. OpenMetrics wants
    each family's samples together and each series in time order, so they are sorted here."""
    families: dict[str, list[Sample]] = {}
    for sample in samples:
        families.setdefault(_family_of(sample.name, types), []).append(sample)
    lines = []
    for family, members in families.items():
        if family in types:
            lines.append(f"# TYPE {family} {types[family]}")
        members.sort(key=lambda s: (s.at, s.name, sorted(s.labels.items())))
        lines.extend(_line(sample) for sample in members)
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


def _family_of(name: str, types: Mapping[str, MetricType]) -> str:
    for family, kind in types.items():
        if any(name == family + suffix for suffix in SUFFIXES[kind]):
            return family
    return name


def _line(sample: Sample) -> str:
    labels = ",".join(f'{key}="{_escaped(value)}"' for key, value in sorted(sample.labels.items()))
    if math.isnan(sample.value):
        value = "NaN"
    elif math.isinf(sample.value):
        value = "+Inf" if sample.value > 0 else "-Inf"
    else:
        value = repr(float(sample.value))
    return f"{sample.name}{{{labels}}} {value} {sample.at.timestamp():.3f}"


def _escaped(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def recent_anchor(ago: timedelta = timedelta(hours=3)) -> datetime:
    """Now floored to the minute, minus `ago`: where a scenario may start so that it ends in the past."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    return now - ago


@contextmanager
def running_prometheus(
    data: str | Iterable[Sample], types: Mapping[str, MetricType] | None = None
) -> Iterator[str]:
    """Prometheus serving `data` (Samples with their family types, or OpenMetrics text); yields its base URL.

    Samples must lie in the past, as scraped ones would: promtool and Prometheus accept future ones without a
    word, so a scenario anchored wrongly would pass unnoticed. Retention is measured from the newest block, not
    the clock: with the default 15 d, Prometheus silently deletes at startup any block 15 d older than the
    newest, hence the long retention here."""
    prometheus = debian_tool("prometheus", "prometheus")
    promtool = debian_tool("promtool", "prometheus")
    if isinstance(data, str):
        text = data
    else:
        samples = list(data)
        latest = max((s.at for s in samples), default=None)
        if latest is not None and latest > datetime.now(UTC):
            raise ValueError(f"a sample at {latest.isoformat()} is in the future; backfill only the past")
        text = openmetrics(samples, types or {})
    with tempfile.TemporaryDirectory(prefix="tars-prometheus-") as workdir:
        root = Path(workdir)
        (root / "samples.om").write_text(text)
        backfill = subprocess.run(
            [
                promtool,
                "tsdb",
                "create-blocks-from",
                "openmetrics",
                "--quiet",
                str(root / "samples.om"),
                str(root / "data"),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if backfill.returncode != 0:
            pytest.fail(f"promtool could not backfill the samples:\n{backfill.stdout}{backfill.stderr}")
        # No scrape targets: what it serves is exactly the backfilled blocks.
        (root / "prometheus.yml").write_text("global:\n  scrape_interval: 1m\nscrape_configs: []\n")
        port = loopback_port()
        url = f"http://127.0.0.1:{port}"
        log_path = root / "prometheus.log"
        with log_path.open("wb") as log:
            server = subprocess.Popen(
                [
                    prometheus,
                    f"--config.file={root / 'prometheus.yml'}",
                    f"--storage.tsdb.path={root / 'data'}",
                    "--storage.tsdb.retention.time=10y",
                    f"--web.listen-address=127.0.0.1:{port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            _wait_until_ready(server, url, log_path)
            yield url
        finally:
            _stop(server)


def _wait_until_ready(server: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
    deadline = time.monotonic() + READY_DEADLINE
    while not _ready(url):
        if server.poll() is not None:
            pytest.fail(f"Prometheus exited with {server.returncode}:\n{log_path.read_text()}")
        if time.monotonic() > deadline:
            pytest.fail(f"Prometheus was not ready after {READY_DEADLINE:g} s:\n{log_path.read_text()}")
        time.sleep(0.05)


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def _stop(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is not None:
        return
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


# The Prometheus client libraries' default latency buckets, in seconds.
DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True)
class ErrorScenario:
    """A service's traffic around a bad deploy: what was loaded, when things happened, and how to ask."""

    service: str
    start: datetime
    deploy_at: datetime
    rollback_at: datetime
    end: datetime
    samples: tuple[Sample, ...]
    types: Mapping[str, MetricType] = field(
        default_factory=lambda: {"http_requests": "counter", "http_request_duration_seconds": "histogram"}
    )

    def error_rate_query(self, window: str = "1m") -> str:
        selector = f'service="{self.service}"'
        return (
            f'sum(rate(http_requests_total{{{selector},code=~"5.."}}[{window}]))'
            f" / sum(rate(http_requests_total{{{selector}}}[{window}]))"
        )

    def latency_query(self, quantile: float = 0.99, window: str = "1m") -> str:
        return (
            f"histogram_quantile({quantile:g}, sum by (le) "
            f'(rate(http_request_duration_seconds_bucket{{service="{self.service}"}}[{window}])))'
        )


def error_scenario(
    start: datetime,
    *,
    service: str = "payments",
    requests_per_second: float = 100.0,
    error_ratio: float = 0.0005,
    deploy_error_ratio: float = 0.05,
    latency: float = 0.12,
    deploy_latency: float = 1.5,
    deploy_after: timedelta = timedelta(minutes=20),
    rollback_after: timedelta = timedelta(minutes=40),
    until: timedelta = timedelta(minutes=60),
    step: timedelta = timedelta(seconds=15),
) -> ErrorScenario:
    """`service` serving `requests_per_second` from `start`, failing `error_ratio` of them, until a deploy at
    start + `deploy_after` makes it fail `deploy_error_ratio` and answer slower, until the rollback at start +
    `rollback_after`; it goes on healthy until start + `until`.

    Cumulative counters every `step`, as a scrape would see them: http_requests_total{service, code="200"|"500"}
    and an http_request_duration_seconds histogram. The counters grow by the exact expected amount each step
    (counters are floats), so rate() gives the configured ratio exactly away from the deploy and rollback, and
    a p99 over the histogram gives the configured latency (within 1% of its bucket's width)."""
    if not start <= start + deploy_after <= start + rollback_after <= start + until:
        raise ValueError("the deploy must come before the rollback, both within the scenario")
    samples: list[Sample] = []
    ok = errors = latency_sum = 0.0
    buckets = dict.fromkeys((*DEFAULT_BUCKETS, math.inf), 0.0)
    served = requests_per_second * step.total_seconds()
    at, end = start, start + until
    while at <= end:
        bad = start + deploy_after < at <= start + rollback_after  # the step's requests were served after it
        ratio, seconds = (deploy_error_ratio, deploy_latency) if bad else (error_ratio, latency)
        if at > start:
            ok += served * (1 - ratio)
            errors += served * ratio
            latency_sum += served * seconds
            for bound, share in _bucket_shares(seconds).items():
                for upper in buckets:
                    if upper >= bound:
                        buckets[upper] += served * share
        for code, count in (("200", ok), ("500", errors)):
            samples.append(Sample("http_requests_total", {"service": service, "code": code}, at, count))
        for upper, count in buckets.items():
            le = "+Inf" if math.isinf(upper) else f"{upper:g}"
            samples.append(
                Sample("http_request_duration_seconds_bucket", {"service": service, "le": le}, at, count)
            )
        samples.append(Sample("http_request_duration_seconds_count", {"service": service}, at, ok + errors))
        samples.append(Sample("http_request_duration_seconds_sum", {"service": service}, at, latency_sum))
        at += step
    return ErrorScenario(
        service=service,
        start=start,
        deploy_at=start + deploy_after,
        rollback_at=start + rollback_after,
        end=end,
        samples=tuple(samples),
    )


def _bucket_shares(seconds: float) -> dict[float, float]:
    """How to spread requests over buckets (by upper bound) so histogram_quantile(0.99) gives `seconds`.

    Prometheus interpolates linearly inside the bucket holding the 99th percentile. With a share f of requests
    in the bucket below [lower, upper) and the rest in it, the p99 is lower + (upper - lower)·(0.99 - f)/(1 - f);
    solving for `seconds` gives f."""
    bounds = (0.0, *DEFAULT_BUCKETS)
    for lower, upper in pairwise(bounds):
        if lower <= seconds < upper:
            break
    else:
        raise ValueError(f"a latency of {seconds} s is outside the histogram's buckets")
    position = (seconds - lower) / (upper - lower)
    below = max((0.99 - position) / (1 - position), 0.0)
    if lower == 0.0 or below == 0.0:
        return {upper: 1.0}
    return {lower: below, upper: 1 - below}
