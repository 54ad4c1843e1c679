"""What TARS counts, for Prometheus (`GET /metrics`), named by Prometheus's conventions.

Counters and histograms are process-wide, like the process they describe. Gauges that read the database (open
incidents, the outbox's backlog) are computed when scraped, by `DatabaseGauges`, so every replica reports the
shared truth and nothing has to keep them current.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, text

log = logging.getLogger(__name__)

# The *_created series double the exposition and tell Prometheus nothing it uses here.
disable_created_metrics()
REGISTRY = CollectorRegistry()

REQUESTS = Counter(
    "tars_requests_total",
    "Slash commands, clicks and form submissions, by kind and outcome (ok, refused, error).",
    ["kind", "outcome"],
    registry=REGISTRY,
)
ACK_SECONDS = Histogram(
    "tars_ack_seconds",
    "Time from a Slack request's arrival to TARS's answer (Slack gives up after 3 s).",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0),
    registry=REGISTRY,
)
SLACK_CALLS = Counter(
    "tars_slack_calls_total",
    "Slack Web API calls, by method and result (ok, ratelimited, unreachable, or Slack's error code).",
    ["method", "result"],
    registry=REGISTRY,
)
TICK_SECONDS = Histogram(
    "tars_scheduler_tick_seconds",
    "Duration of one scheduler tick (claiming and firing the due reminders).",
    buckets=(0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0),
    registry=REGISTRY,
)
SIGNAL_REQUESTS = Counter(
    "tars_signal_requests_total",
    "Requests to /signals/..., by source path and answer status (200, 400, 401, 404, 413, 503, ...).",
    ["source", "status"],
    registry=REGISTRY,
)
REMINDERS_FIRED = Counter(
    "tars_reminders_fired_total", "Reminders fired by the scheduler, by kind.", ["kind"], registry=REGISTRY
)
REMEDIATION_RUNS = Counter(
    "tars_remediation_runs_total",
    "Approved remediation runs that finished, by kind and result (succeeded, failed).",
    ["kind", "result"],
    registry=REGISTRY,
)
APPROVALS = Counter(
    "tars_approvals_total",
    "Clicks on Approve or Deny, by outcome (execute, approved_more_needed, denied, refused, expired).",
    ["outcome"],
    registry=REGISTRY,
)


class DatabaseGauges(Collector):
    """Open incidents by severity, and the outbox's pending count and oldest pending age, read at scrape time."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[GaugeMetricFamily]:
        incidents = GaugeMetricFamily(
            "tars_open_incidents", "Incidents not yet resolved, by severity.", labels=["severity"]
        )
        pending = GaugeMetricFamily("tars_outbox_pending", "Announcements committed but not yet delivered.")
        oldest = GaugeMetricFamily(
            "tars_outbox_oldest_pending_seconds",
            "Age of the oldest announcement not yet delivered (0: none).",
        )
        try:
            counts, backlog, since = self._read()
        except Exception:  # the database is down: /readyz says so; the counters are still worth scraping
            log.warning("could not read the database for /metrics", exc_info=True)
            return
        for severity in (1, 2, 3, 4):
            incidents.add_metric([f"P{severity}"], counts.get(severity, 0))
        pending.add_metric([], backlog)
        oldest.add_metric([], _age(since))
        yield from (incidents, pending, oldest)

    def _read(self) -> tuple[dict[int, int], int, object]:
        with self.engine.connect() as connection:
            counts: dict[int, int] = dict(
                connection.execute(
                    text(
                        "SELECT severity, count(*) FROM incidents WHERE status <> 'resolved' GROUP BY severity"
                    )
                ).all()
            )
            backlog, since = connection.execute(
                text("SELECT count(*), min(created_at) FROM outbox WHERE state = 'pending'")
            ).one()
        return counts, int(backlog), since


def _age(since: object) -> float:
    if since is None:
        return 0.0
    moment = since if isinstance(since, datetime) else datetime.fromisoformat(str(since))
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return max(0.0, (datetime.now(UTC) - moment).total_seconds())


def exposition(engine: Engine) -> bytes:
    """The text TARS answers /metrics with: the process's counters, then the database's gauges."""
    gauges = CollectorRegistry()
    gauges.register(DatabaseGauges(engine))
    return generate_latest(REGISTRY) + generate_latest(gauges)
