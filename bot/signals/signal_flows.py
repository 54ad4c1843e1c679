"""Signals in: store each one, then attach it to its service's open incident or put it on a triage card.

Everything a signal causes (its row, the timeline entry, the outbox rows of the card or the thread note) commits
in one transaction before the sender is answered; the delivery engine posts afterwards. The same alert again
(fingerprint, alarm, dedup key) updates the same row and the same card.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from bot.comms.outbox import Outbox
from bot.core.clock import Clock
from bot.core.database import table_of, transaction
from bot.core.domain_errors import DomainError
from bot.core.settings import ServiceConfig
from bot.incidents.incident_records import OPEN_STATUSES, Incident
from bot.incidents.lifecycle import IncidentService
from bot.signals.signal_records import ReportOutcome, Signal, SignalState, Triage
from bot.signals.signal_sources import IncomingSignal
from bot.slack import rendering

log = logging.getLogger(__name__)

SIGNAL_ACTOR = "tars"
REPORT_SOURCE = "customer_report"
# Enough customer reports about one service, shown together on one triage card.
CLUSTER_SOURCE = "customer_reports"


@dataclass(frozen=True)
class Received:
    new: int = 0
    repeated: int = 0
    attached: int = 0


class SignalFlows:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        clock: Clock,
        incidents: IncidentService,
        outbox: Outbox,
        services: dict[str, ServiceConfig],
        *,
        incidents_channel: str | None,
        report_threshold: int = 3,
        report_window: timedelta = timedelta(minutes=5),
    ) -> None:
        self.report_threshold = report_threshold
        self.report_window = report_window
        self.sessions = sessions
        self.clock = clock
        self.incidents = incidents
        self.outbox = outbox
        self.services = services
        self.incidents_channel = incidents_channel

    # --- in from the sources ----------------------------------------------------------------------------------

    def receive(self, signals: list[IncomingSignal]) -> Received:
        new = repeated = attached = 0
        with transaction(self.sessions) as session:
            for incoming in signals:
                signal, created = self._upsert(session, incoming)
                if created:
                    new += 1
                    if self._attach_to_open_incident(session, signal):
                        attached += 1
                    else:
                        self._post_card(session, signal)
                else:
                    repeated += 1
                    self._seen_again(session, signal, incoming)
        return Received(new, repeated, attached)

    def _upsert(self, session: Session, incoming: IncomingSignal) -> tuple[Signal, bool]:
        """The signal's row, locked; created when this is the first time its fingerprint arrives."""
        now = self.clock.now()
        service = incoming.service_hint if incoming.service_hint in self.services else None
        insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
        created = session.execute(
            insert(table_of(Signal))
            .values(
                source=incoming.source,
                fingerprint=incoming.fingerprint,
                service=service,
                title=incoming.title,
                summary=incoming.summary,
                severity_hint=incoming.severity_hint,
                labels=incoming.labels,
                state=incoming.state.value,
                triage=Triage.OPEN.value,
                since=incoming.since,
                first_seen=now,
                last_seen=now,
                count=1,
                resolved_at=now if incoming.state is SignalState.RESOLVED else None,
                raw=incoming.raw,
            )
            .on_conflict_do_nothing(index_elements=["source", "fingerprint"])
            .returning(table_of(Signal).c.id)
        ).scalar_one_or_none()
        signal = session.execute(
            select(Signal)
            .where(Signal.source == incoming.source, Signal.fingerprint == incoming.fingerprint)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).scalar_one()
        return signal, created is not None

    def _seen_again(self, session: Session, signal: Signal, incoming: IncomingSignal) -> None:
        now = self.clock.now()
        previous = SignalState(signal.state)
        signal.last_seen = now
        signal.summary = incoming.summary or signal.summary
        signal.labels = incoming.labels or signal.labels
        signal.raw = incoming.raw
        if incoming.state is SignalState.FIRING:
            signal.count += 1
            signal.resolved_at = None
            if previous is SignalState.RESOLVED:
                signal.since = incoming.since
        else:
            signal.resolved_at = signal.resolved_at or now
        signal.state = incoming.state.value
        incident = self._linked_incident(session, signal)
        if incident is not None and previous is not incoming.state:
            text = rendering.signal_state_note(signal)
            self.incidents.record(
                session,
                incident,
                actor=SIGNAL_ACTOR,
                kind=f"signal_{signal.state}",
                text=text,
                data={"signal_id": signal.id},
            )
            self.outbox.thread_note(session, incident, text)
        if signal.card_ts is not None or signal.triage == Triage.OPEN.value:
            self.outbox.triage_refresh(session, signal.id)

    def _attach_to_open_incident(self, session: Session, signal: Signal) -> bool:
        if signal.service is None or signal.state != SignalState.FIRING.value:
            return False
        incident = self._open_incident_of(session, signal.service)
        if incident is None:
            return False
        signal.triage = Triage.ATTACHED.value
        signal.incident_id = incident.id
        text = rendering.signal_attached_note(signal)
        self.incidents.record(
            session,
            incident,
            actor=SIGNAL_ACTOR,
            kind="signal_attached",
            text=text,
            data={"signal_id": signal.id},
        )
        self.outbox.thread_note(session, incident, text)
        return True

    def _post_card(self, session: Session, signal: Signal) -> None:
        if not self.incidents_channel:
            log.warning("%s cannot be shown: TARS_INCIDENTS_CHANNEL is not set", signal.ref)
            return
        self.outbox.triage_post(session, signal.id, self.incidents_channel)

    def _linked_incident(self, session: Session, signal: Signal) -> Incident | None:
        return session.get(Incident, signal.incident_id) if signal.incident_id is not None else None

    # --- customer reports ----------------------------------------------------------------------------------------

    def report(self, service: str, text: str, *, reporter: str) -> ReportOutcome:
        """One customer's words about a service. Added to the service's open incident if there is one; otherwise
        counted, and once enough distinct reports arrive within the window, put on a triage card together."""
        now = self.clock.now()
        normalized = " ".join(text.lower().split())
        digest = hashlib.sha256(normalized.encode()).hexdigest()[:32]
        incoming = IncomingSignal(
            source=REPORT_SOURCE,
            # The same words from the same person again are the same report, counted once.
            fingerprint=f"{service}:{reporter[:64]}:{digest}",
            state=SignalState.FIRING,
            title="Customer report",
            summary=text,
            service_hint=service,
            severity_hint=None,
            labels={"reporter": reporter[:64]},
            since=now,
            raw=text,
        )
        with transaction(self.sessions) as session:
            signal, created = self._upsert(session, incoming)
            if not created:
                signal.count += 1
                signal.last_seen = now
            incident = self._open_incident_of(session, service)
            if incident is not None:
                signal.triage = Triage.ATTACHED.value
                signal.incident_id = incident.id
                text_note = rendering.customer_report_note(signal)
                self.incidents.record(
                    session,
                    incident,
                    actor=reporter if reporter.startswith(("U", "W")) else SIGNAL_ACTOR,
                    kind="customer_report",
                    text=text_note,
                    data={"signal_id": signal.id},
                )
                self.outbox.thread_note(session, incident, text_note)
                return self._outcome(service, incident.ref, 1, posted=False)
            recent = self._open_reports(session, service, since=now - self.report_window)
            cluster = self._open_cluster(session, service)
            if cluster is not None:
                self._add_to_cluster(session, cluster, recent)
                self.outbox.triage_refresh(session, cluster.id)
                return self._outcome(service, None, cluster.count, posted=False)
            if len(recent) < self.report_threshold:
                return self._outcome(service, None, len(recent), posted=False)
            cluster, _ = self._upsert(
                session,
                IncomingSignal(
                    source=CLUSTER_SOURCE,
                    fingerprint=f"{service}:{now.isoformat()}",
                    state=SignalState.FIRING,
                    title="",
                    summary="",
                    service_hint=service,
                    severity_hint=None,
                    labels={},
                    since=min(r.first_seen for r in recent),
                    raw="",
                ),
            )
            self._add_to_cluster(session, cluster, recent)
            self._post_card(session, cluster)
            return self._outcome(service, None, len(recent), posted=True)

    def _outcome(self, service: str, attached_to: str | None, count: int, *, posted: bool) -> ReportOutcome:
        return ReportOutcome(service, attached_to, count, self.report_threshold, self.report_window, posted)

    def _open_reports(self, session: Session, service: str, *, since: datetime) -> list[Signal]:
        return list(
            session.scalars(
                select(Signal)
                .where(
                    Signal.source == REPORT_SOURCE,
                    Signal.service == service,
                    Signal.triage == Triage.OPEN.value,
                    Signal.last_seen >= since,
                )
                .order_by(Signal.id)
            )
        )

    def _open_cluster(self, session: Session, service: str) -> Signal | None:
        return session.scalars(
            select(Signal)
            .where(
                Signal.source == CLUSTER_SOURCE, Signal.service == service, Signal.triage == Triage.OPEN.value
            )
            .order_by(Signal.id.desc())
            .limit(1)
            .with_for_update()
        ).first()

    def _add_to_cluster(self, session: Session, cluster: Signal, reports: list[Signal]) -> None:
        ids = cluster.report_ids
        ids += [report.id for report in reports if report.id not in ids]
        for report in reports:
            report.triage = Triage.ATTACHED.value
        cluster.labels = {"reports": ",".join(str(i) for i in ids)}
        cluster.count = len(ids)
        cluster.last_seen = self.clock.now()
        cluster.title = rendering.report_cluster_title(len(ids), cluster.service or "", self.report_window)

    def _open_incident_of(self, session: Session, service: str) -> Incident | None:
        return session.execute(
            select(Incident)
            .where(Incident.service == service, Incident.status.in_([s.value for s in OPEN_STATUSES]))
            .order_by(Incident.severity, Incident.id)
            .limit(1)
        ).scalar_one_or_none()

    # --- from the triage card ---------------------------------------------------------------------------------

    def get(self, signal_id: int) -> Signal:
        with self.sessions() as session:
            signal = session.get(Signal, signal_id)
        if signal is None:
            raise DomainError(f"There is no signal {signal_id}.")
        return signal

    def dismiss(self, signal_id: int, *, actor: str) -> Signal:
        with transaction(self.sessions) as session:
            signal = self._open_for_triage(session, signal_id)
            signal.triage = Triage.DISMISSED.value
            signal.triaged_by = actor
            self.outbox.triage_refresh(session, signal.id)
        return signal

    def link_declared(self, signal_id: int, *, actor: str) -> Callable[[Session, Incident], None]:
        """For IncidentFlows.declare: in the declaration's transaction, mark the signal confirmed and record
        on the new incident's timeline which signal it came from and who confirmed it."""

        def link(session: Session, incident: Incident) -> None:
            signal = self._open_for_triage(session, signal_id)
            signal.triage = Triage.DECLARED.value
            signal.triaged_by = actor
            signal.incident_id = incident.id
            self.incidents.record(
                session,
                incident,
                actor=actor,
                kind="signal_confirmed",
                text=rendering.signal_confirmed_text(signal, actor),
                data={"signal_id": signal.id, "source": signal.source, "fingerprint": signal.fingerprint},
            )
            self.outbox.triage_refresh(session, signal.id)

        return link

    def _open_for_triage(self, session: Session, signal_id: int) -> Signal:
        signal = session.get(Signal, signal_id, with_for_update=True)
        if signal is None:
            raise DomainError(f"There is no signal {signal_id}.")
        if signal.triage != Triage.OPEN.value:
            raise DomainError(rendering.signal_already_triaged(signal))
        return signal

    # --- for the delivery engine ------------------------------------------------------------------------------

    def card_posted(self, session: Session, _incident_id: int | None, result: dict[str, Any]) -> None:
        signal = session.get(Signal, int(result["signal_id"]), with_for_update=True)
        if signal is not None:
            signal.card_channel = str(result["channel"])
            signal.card_ts = str(result["ts"])
