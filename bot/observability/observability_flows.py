"""TARS looks at the service: charts, validation of a fix, and the runbook's log queries.

Nothing here runs in the ack path. A request commits one row on the incident's "observe" lane; a delivery
worker reads the backend (with a timeout, results cached briefly so ten people asking cost one query), draws
the chart, and queues what goes to the thread in a transaction of its own. A failed read is told to the thread
in one line, never raised.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.comms.delivery import PermanentFailure, RetryLater
from bot.comms.outbox import Outbox
from bot.core.clock import Clock
from bot.core.database import reading, transaction
from bot.core.domain_errors import DomainError, UsageError
from bot.incidents.command_jobs import Reply, answer_privately
from bot.incidents.incident_records import Incident, TimelineEvent
from bot.incidents.lifecycle import IncidentService
from bot.observability import log_patterns
from bot.observability.error_rate_chart import ChartData, Marker, draw
from bot.observability.metric_analysis import (
    BASELINE_SPAN,
    BUCKET,
    DeployRates,
    Excursion,
    Verdict,
    buckets,
    error_rate_verdict,
    excursion,
    latency_verdict,
    mean_between,
    quiet,
    rates_around,
    threshold_for,
)
from bot.observability.service_readers import ServiceReaders
from bot.remediation.action_records import ActionRequest, ActionState
from bot.slack import rendering
from bot.slack.error_replies import database_unreachable
from integrations.observability_reads import LogLine, ReadFailed, Series
from integrations.plans import IntegrationError

log = logging.getLogger(__name__)

DeployedAt = Callable[[str], datetime | None]


class ResolveIncident(Protocol):
    def __call__(
        self, incident_id: int, *, root_cause: str, users_affected: int | None, actor: str, criteria: str
    ) -> object: ...


CACHE_FOR = 60.0  # seconds a read is reused: long enough for a crowd, short enough to stay "now"
POINTS = 360  # at most this many points per chart: one a minute for up to six hours
LOG_LIMIT = 2000  # lines read per query; the thread shows the top of them
TOP_PATTERNS = 10
LONGEST_READ = timedelta(days=1)
# "A ✗ at +10 points to the runbook's next option": rollback, then configuration, then a code fix (000).
NEXT_OPTION = {
    "rollback": "a configuration change (`/incident flag …` or `/incident env …`)",
    "flag": "a code fix (`/incident hotfix …`)",
    "env": "a code fix (`/incident hotfix …`)",
    "scale": "a rollback (`/incident rollback …`)",
}
# What the runbook searches for ("errors"; "timeout or connection errors").
LOG_TERMS = {
    "errors": ("ERROR", "Error", "error", "Exception", "FATAL", "panic"),
    "timeouts": (
        "timeout",
        "Timeout",
        "timed out",
        "connection refused",
        "Connection refused",
        "connection reset",
        "Connection reset",
        "ECONNREFUSED",
        "ECONNRESET",
    ),
}


def step_for(window: timedelta) -> timedelta:
    """One point a minute, coarser for long windows so a chart stays under POINTS points."""
    minutes = max(1, -(-int(window.total_seconds()) // (60 * POINTS)))
    return timedelta(minutes=minutes)


def _floor(moment: datetime, step: timedelta) -> datetime:
    seconds = int(step.total_seconds())
    return datetime.fromtimestamp(int(moment.timestamp()) // seconds * seconds, UTC)


@dataclass(frozen=True)
class MetricsView:
    """One look at a service's error rate for an incident: the chart's data and the runbook's numbers."""

    incident: Incident
    backend: str
    window: timedelta
    chart: ChartData
    excursion: Excursion
    deployed_at: datetime | None
    read: Series  # everything read: the window and the hour before it

    def facts(self) -> dict[str, Any]:
        """What the timeline keeps of this reading (`/incident show` takes the onset from it)."""
        summary = self.excursion
        return {
            "onset": summary.onset.isoformat() if summary.onset else None,
            "current": summary.current.value if summary.current else None,
            "peak": summary.peak.value if summary.peak else None,
            "baseline": summary.baseline,
            "threshold": summary.threshold,
        }


class ReadCache:
    """Results (and failures) of reads for CACHE_FOR seconds; concurrent askers for one key wait for the
    first one's read instead of sending their own."""

    def __init__(self, ttl: float = CACHE_FOR, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self._results: dict[tuple[Any, ...], tuple[float, Any]] = {}
        self._locks: dict[tuple[Any, ...], threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, key: tuple[Any, ...], read: Callable[[], Any]) -> Any:
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            cached = self._results.get(key)
            if cached is None or cached[0] <= self.clock():
                try:
                    value: Any = read()
                except ReadFailed as failure:
                    value = failure
                cached = (self.clock() + self.ttl, value)
                with self._guard:
                    self._forget_expired()
                    self._results[key] = cached
        if isinstance(cached[1], ReadFailed):
            raise cached[1]
        return cached[1]

    def _forget_expired(self) -> None:
        """Drop expired results, and the locks of keys nobody is reading, so a long-running TARS keeps only
        the last minute's reads."""
        now = self.clock()
        for key in [key for key, (expires, _value) in self._results.items() if expires <= now]:
            del self._results[key]
            lock = self._locks.get(key)
            if lock is not None and not lock.locked():
                del self._locks[key]


class ObservabilityFlows:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        clock: Clock,
        incidents: IncidentService,
        outbox: Outbox,
        readers: ServiceReaders,
        deployed_at: DeployedAt,
        reply: Reply,
        resolve_incident: ResolveIncident,
        *,
        cache: ReadCache | None = None,
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.incidents = incidents
        self.outbox = outbox
        self.readers = readers
        self.deployed_at = deployed_at
        self.reply = reply
        self.resolve_incident = resolve_incident
        self.cache = cache or ReadCache()

    # --- the ack side: one committed row ----------------------------------------------------------------------

    def request(
        self, incident_id: int, job: dict[str, Any], *, actor: str, response_url: str | None
    ) -> Incident:
        """Commit a read for a worker (`/incident metrics`, `/incident logs`); refuses an unknown incident or
        a service with nothing configured before the ack."""
        with transaction(self.sessions) as session:
            incident = self.incidents.get(session, incident_id)
            self._refuse_unconfigured(incident, job)
            self.queue(session, incident, {**job, "actor": actor, "response_url": response_url})
        return incident

    def queue_resolve(
        self,
        incident_id: int,
        *,
        root_cause: str,
        users_affected: int | None,
        actor: str,
        response_url: str | None,
    ) -> Incident | None:
        """For a service with metrics, resolving waits for TARS to read the error rate: commit that read and
        return the incident. None: the service has no metrics, and the usual rule applies at once."""
        with transaction(self.sessions) as session:
            incident = self.incidents.get(session, incident_id)
            if not incident.is_open or not self.readers.has_metrics(incident.service):
                return None
            job = {
                "job": "resolve",
                "root_cause": root_cause,
                "users_affected": users_affected,
                "actor": actor,
                "response_url": response_url,
            }
            self.queue(session, incident, job)
        return incident

    def queue(self, session: Session, incident: Incident, job: dict[str, Any]) -> None:
        self.outbox.observe_job(session, incident, job)

    def _refuse_unconfigured(self, incident: Incident, job: dict[str, Any]) -> None:
        if job["job"] == "chart" and not self.readers.has_metrics(incident.service):
            raise UsageError(rendering.no_metrics_configured(incident))
        if job["job"] == "logs":
            # A correlation id is looked for in every service's groups; the other queries in the incident's.
            services = self.readers.services if job.get("query") == "corr" else [incident.service]
            if not any(self.readers.log_groups(name) for name in services):
                raise UsageError(rendering.no_logs_configured(incident))

    # --- the worker side ----------------------------------------------------------------------------------------

    def run(self, incident_id: int, payload: dict[str, Any]) -> dict[str, Any]:
        """Carry out one queued read. Run by a delivery worker."""
        try:
            with reading(self.sessions) as session:
                incident = self.incidents.get(session, incident_id)
                session.expunge(incident)
            job = payload["job"]
            if job == "chart":
                answer = self._chart(incident, payload)
            elif job == "validate":
                answer = self._validate(incident, payload)
            elif job == "logs":
                answer = self._logs(incident, payload)
            elif job == "resolve":
                answer = self._resolve(incident, payload)
            else:
                raise ValueError(f"unknown observe job {job!r}")
        except Exception as error:
            if database_unreachable(error):
                raise RetryLater("the database is unavailable") from error
            # A reader that failed in a way nobody foresaw is still only a failed read: say so in the thread.
            log.error(
                "observe job %s for incident %s failed", payload.get("job"), incident_id, exc_info=error
            )
            try:
                answer = self._tell_failure(
                    incident_id,
                    f"TARS could not read the service ({type(error).__name__}; see its log)",
                    "read_failed",
                )
            except Exception as telling:
                if database_unreachable(telling):
                    raise RetryLater("the database is unavailable") from telling
                raise PermanentFailure(
                    f"observe job failed: {error!r}; telling the thread failed: {telling!r}"
                ) from telling
        return answer_privately(self.reply, payload, answer)

    def view(self, incident: Incident, window: timedelta) -> MetricsView:
        """Read the error rate over `window` (and the hour before it, for the baseline) and summarise it."""
        reader = self.readers.metrics(incident.service)
        if reader is None:
            raise ReadFailed(rendering.no_metrics_configured(incident))
        now = self.clock.now()
        step = step_for(window)
        end = _floor(now, step)
        start = end - window
        series = self._read(incident.service, "error_rate", start - BASELINE_SPAN, end, step)
        summary = excursion(
            series, threshold_for(incident.severity), reference=incident.declared_at, since=start
        )
        deployed = self._deployed_at(incident.service)
        shown = tuple(point for point in series if point.at >= start)
        grid = _floor(start, BUCKET)
        chart = ChartData(
            title=rendering.chart_title(incident, reader.backend, window),
            start=start,
            end=now,
            series=shown,
            buckets=tuple(bucket for bucket in buckets(series, grid) if bucket.start + BUCKET > start),
            threshold=summary.threshold,
            markers=self._markers(incident, start, now, deployed),
        )
        return MetricsView(incident, reader.backend, window, chart, summary, deployed, series)

    def onset(self, incident: Incident) -> datetime | None:
        """When the incident's error rate rose above its threshold, if its metrics say (for the rollback rule)."""
        if not self.readers.has_metrics(incident.service):
            return None
        try:
            return self.view(incident, timedelta(hours=2)).excursion.onset
        except Exception as error:  # advice without the onset beats no rollback request at all
            log.warning("no onset for %s: %r", incident.ref, error)
            return None

    def rates_around_deploy(self, incident: Incident) -> DeployRates | None:
        """The error rate before and after the service's last deployment, for a rollback issue."""
        if not self.readers.has_metrics(incident.service):
            return None
        deployed = self._deployed_at(incident.service)
        if deployed is None:
            return None
        since = self.clock.now() - deployed + BUCKET
        window = min(max(since, timedelta(hours=2)), LONGEST_READ)
        try:
            view = self.view(incident, window)
        except Exception as error:  # the rollback issue is still worth opening without them
            log.warning("no error rates around %s's deployment: %r", incident.service, error)
            return None
        return rates_around(view.read, view.backend, deployed)

    @staticmethod
    def last_onset(events: Sequence[TimelineEvent]) -> datetime | None:
        """The onset from the newest reading in the timeline: `/incident show` answers in the ack, so it uses
        what TARS last read rather than reading again."""
        for event in reversed(events):
            if event.data and "onset" in event.data:
                onset = event.data["onset"]
                return datetime.fromisoformat(onset) if isinstance(onset, str) else None
        return None

    def _chart(self, incident: Incident, payload: dict[str, Any]) -> str:
        window = timedelta(seconds=int(payload.get("window_seconds", 7200)))
        purpose = str(payload.get("purpose", "asked"))
        try:
            view = self.view(incident, window)
        except ReadFailed as failure:
            return self._tell_failure(incident, failure, "metrics_unavailable")
        comment = rendering.metrics_summary(
            view.incident, view.backend, view.window, view.excursion, view.chart.buckets
        )
        self._post_chart(incident, view, comment, ["metrics_chart", rendering.chart_record(purpose, payload)])
        return rendering.chart_posted_reply(incident, view.excursion)

    def _post_chart(self, incident: Incident, view: MetricsView, comment: str, record: list[str]) -> None:
        png = draw(view.chart)
        with transaction(self.sessions) as session:
            stored = self.incidents.get(session, incident.id)
            self.outbox.thread_file(
                session,
                stored,
                rendering.chart_file_title(incident, self.clock.now()),
                f"{incident.ref.lower()}-error-rate.png",
                png,
                comment,
                record=record,
                facts=view.facts(),
            )

    def _tell_failure(self, incident: Incident | int, failure: IntegrationError | str, kind: str) -> str:
        with transaction(self.sessions) as session:
            stored = self.incidents.get(session, incident if isinstance(incident, int) else incident.id)
            reason = failure if isinstance(failure, str) else failure.message
            text = rendering.read_failed_note(stored, reason)
            self.outbox.thread_note(session, stored, text, record=[kind, text])
        return text

    def _resolve(self, incident: Incident, payload: dict[str, Any]) -> str:
        """The runbook's resolution criterion, from the metrics: under the severity's threshold for 10
        consecutive minutes. Met: resolve. Not met: say why, with the numbers and the chart."""
        actor = str(payload["actor"])
        if not incident.is_open:
            return f"{incident.ref} is already resolved."
        now = self.clock.now()
        try:
            view = self.view(incident, timedelta(hours=2))
        except ReadFailed as failure:
            self._tell_failure(incident, failure, "resolve_unchecked")
            return rendering.resolve_unchecked_reply(incident, failure.message)
        verdict = quiet(view.chart.series, view.excursion.threshold, now, step_for(view.window))
        if not verdict.ok:
            text = rendering.resolve_refused_by_metrics(incident, verdict)
            self._post_chart(
                incident, view, rendering.with_mentions(text, [actor]), ["resolve_refused", text]
            )
            return text
        try:
            self.resolve_incident(
                incident.id,
                root_cause=str(payload["root_cause"]),
                users_affected=payload.get("users_affected"),
                actor=actor,
                criteria=rendering.resolve_criteria_met(incident, verdict),
            )
        except DomainError as refused:
            return refused.message
        return rendering.resolved_by_metrics_reply(incident, verdict)

    def _validate(self, incident: Incident, payload: dict[str, Any]) -> str:
        action_id = int(payload["action_id"])
        stage = int(payload["stage"])
        if not incident.is_open:
            return f"{incident.ref} was resolved; its fix needs no validation now."
        with reading(self.sessions) as session:
            action = session.get(ActionRequest, action_id)
            if action is None:
                return "The remediation to validate is gone."
            mentions = list(dict.fromkeys([action.requested_by, *action.approvers]))
            session.expunge(action)
        fixed_at = action.finished_at or self.clock.now()
        now = self.clock.now()
        try:
            view = self.view(incident, max(timedelta(hours=2), now - fixed_at + timedelta(minutes=30)))
        except ReadFailed as failure:
            return self._tell_failure(incident, failure, "validation_unavailable")
        verdicts = [error_rate_verdict(view.chart.series, now)]
        verdicts.append(self._latency_verdict(incident, view, now))
        verdicts.append(self._pattern_verdict(incident, fixed_at, now))
        failed = [verdict for verdict in verdicts if verdict.ok is False]
        next_option = NEXT_OPTION.get(action.kind.rsplit("_", 1)[-1])
        text = rendering.validation_text(
            incident, action, stage, verdicts, next_option=next_option if failed and stage >= 10 else None
        )
        comment = rendering.with_mentions(text, mentions)
        record = ["validation", rendering.validation_record(action, stage, verdicts)]
        self._post_chart(incident, view, comment, record)
        return text

    def _latency_verdict(self, incident: Incident, view: MetricsView, now: datetime) -> Verdict:
        if not self.readers.has_latency(incident.service):
            return Verdict("Latency back within 10% of baseline", None, "no latency query in the catalog")
        anchor = view.excursion.onset or incident.declared_at
        start = view.chart.start - BASELINE_SPAN
        step = step_for(view.window)
        try:
            series = self._read(incident.service, "latency", _floor(start, step), _floor(now, step), step)
        except ReadFailed as failure:
            return Verdict("Latency back within 10% of baseline", False, f"could not read: {failure.message}")
        baseline = mean_between(series, anchor - BASELINE_SPAN, anchor)
        return latency_verdict(series, baseline, now)

    def _pattern_verdict(self, incident: Incident, fixed_at: datetime, now: datetime) -> Verdict:
        name = "No new error patterns since the fix"
        reader = self.readers.logs(incident.service)
        groups = self.readers.log_groups(incident.service)
        if reader is None or not groups:
            return Verdict(name, None, "no log groups in the catalog")
        terms = LOG_TERMS["errors"]
        try:
            # A quarter at a time: a search keeps its oldest lines, so one search of a busy hour would miss the
            # patterns of its last minutes, the ones most likely still around after the fix.
            before = [
                line
                for quarter in range(4)
                for line in reader.search(
                    groups,
                    fixed_at - BASELINE_SPAN + quarter * BUCKET,
                    fixed_at - BASELINE_SPAN + (quarter + 1) * BUCKET,
                    terms,
                    limit=LOG_LIMIT,
                )
            ]
            since = reader.search(groups, fixed_at, now, terms, limit=LOG_LIMIT)
        except ReadFailed as failure:
            return Verdict(name, False, f"could not read the logs: {failure.message}")
        new = log_patterns.new_patterns(before, since, top=3)
        return Verdict(name, not new, rendering.new_patterns_detail(new))

    def _logs(self, incident: Incident, payload: dict[str, Any]) -> str:
        window = timedelta(seconds=int(payload.get("window_seconds", 3600)))
        query = str(payload["query"])
        now = self.clock.now()
        try:
            if query == "corr":
                correlation_id = str(payload["correlation_id"])
                lines = self._search_everywhere(now - window, now, correlation_id)
                text = rendering.correlated_lines(incident, correlation_id, window, lines)
            else:
                reader = self.readers.logs(incident.service)
                groups = self.readers.log_groups(incident.service)
                if reader is None or not groups:
                    raise ReadFailed(rendering.no_logs_configured(incident))
                found = reader.search(groups, now - window, now, LOG_TERMS[query], limit=LOG_LIMIT)
                patterns = log_patterns.frequent(found, top=TOP_PATTERNS)
                text = rendering.log_patterns_text(incident, query, window, len(found), patterns)
        except ReadFailed as failure:
            return self._tell_failure(incident, failure, "logs_unavailable")
        with transaction(self.sessions) as session:
            stored = self.incidents.get(session, incident.id)
            record = ["logs_searched", rendering.logs_record(query, payload.get("correlation_id"), window)]
            self.outbox.thread_note(session, stored, text, record=record)
        return rendering.logs_posted_reply(incident)

    def _search_everywhere(self, start: datetime, end: datetime, correlation_id: str) -> list[LogLine]:
        """Every catalog service's log groups, merged in time order ("across all services")."""
        lines: list[LogLine] = []
        for service in self.readers.services:
            reader = self.readers.logs(service)
            groups = self.readers.log_groups(service)
            if reader is not None and groups:
                lines += reader.search(groups, start, end, (correlation_id,), limit=LOG_LIMIT)
        return sorted(lines, key=lambda line: line.at)

    # --- reading ------------------------------------------------------------------------------------------------

    def _read(self, service: str, what: str, start: datetime, end: datetime, step: timedelta) -> Series:
        reader = self.readers.metrics(service)
        assert reader is not None
        read = reader.error_rate if what == "error_rate" else reader.latency
        key = (service, what, start, end, step)
        series: Series = self.cache.get(key, lambda: read(start, end, step))
        return series

    def _deployed_at(self, service: str) -> datetime | None:
        def read() -> datetime | None:
            try:
                return self.deployed_at(service)
            except IntegrationError as error:
                # The chart is still worth having without the deployment marker.
                log.info("no deployment time for %s: %s", service, error.message)
                return None

        deployed: datetime | None = self.cache.get((service, "deployed_at"), read)
        return deployed

    def _markers(
        self, incident: Incident, start: datetime, now: datetime, deployed: datetime | None
    ) -> tuple[Marker, ...]:
        markers = [Marker(incident.declared_at, "declared", f"{incident.ref} declared")]
        if deployed is not None:
            markers.append(Marker(deployed, "deploy", "deployed"))
        with reading(self.sessions) as session:
            fixes = session.execute(
                select(ActionRequest.kind, ActionRequest.finished_at, ActionRequest.id).where(
                    ActionRequest.incident_id == incident.id,
                    ActionRequest.state == ActionState.SUCCEEDED.value,
                    ActionRequest.finished_at.is_not(None),
                )
            ).all()
        markers += [
            Marker(at, "remediation", f"#{ref} {kind.replace('_', ' ')}")
            for kind, at, ref in fixes
            if at is not None
        ]
        markers.append(Marker(now, "now", "now"))
        return tuple(sorted((m for m in markers if start <= m.at <= now), key=lambda m: m.at))
