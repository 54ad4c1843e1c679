"""Signals in: store each one, then attach it to its service's open incident or put it on a triage card.

Everything a signal causes (its row, the timeline entry, the outbox rows of the card or the thread note) commits
in one transaction before the sender is answered; the delivery engine posts afterwards. The same alert again
(fingerprint, alarm, dedup key) updates the same row and the same card.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from bot.comms.outbox import Outbox
from bot.core.clock import Clock
from bot.core.database import reading, table_of, transaction
from bot.core.domain_errors import DomainError
from bot.core.settings import AutoDeclareRule, ServiceConfig
from bot.incidents import input_rules
from bot.incidents.command_parser import Declare
from bot.incidents.incident_records import OPEN_STATUSES, Incident
from bot.incidents.lifecycle import IncidentService
from bot.signals.signal_records import ReportOutcome, Signal, SignalState, Triage
from bot.signals.signal_sources import IncomingSignal
from bot.slack import rendering

log = logging.getLogger(__name__)

SIGNAL_ACTOR = "tars"
# IncidentFlows.declare_in: declare inside the caller's transaction, as `actor`.
DeclareIn = Callable[[Session, Declare, str], Incident]
REPORT_SOURCE = "customer_report"
# Rows that gather other signals on one triage card, one per service at a time: enough customer reports about
# it, and an alert storm's digest.
CLUSTER_SOURCE = "customer_reports"
DIGEST_SOURCE = "digest"
GATHERING_SOURCES = (CLUSTER_SOURCE, DIGEST_SOURCE)
UNROUTED = "unrouted"


@dataclass(frozen=True)
class Received:
    new: int = 0
    repeated: int = 0
    attached: int = 0
    declared: int = 0


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
        digest_after: int = 5,
        auto_declare: Sequence[AutoDeclareRule] = (),
        declare_in: DeclareIn | None = None,
    ) -> None:
        self.auto_declare = list(auto_declare)
        self.declare_in = declare_in
        self.digest_after = digest_after
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
        new = repeated = attached = declared = 0
        # One service at a time, in a fixed order, holding the service's digest row: two requests deciding at
        # once whether a storm has begun would each see the other's alerts missing (and neither would lock
        # a signal of a service the other holds first).
        by_service = sorted(signals, key=lambda s: (self._route(s) or "", s.source, s.fingerprint))
        with transaction(self.sessions) as session:
            digests: dict[str | None, Signal] = {}
            for incoming in by_service:
                service = self._route(incoming)
                if service not in digests:
                    digests[service] = self._gathering_row(session, DIGEST_SOURCE, service)
                digest = digests[service]
                signal, created = self._upsert(session, incoming)
                if created:
                    new += 1
                    if self._attach_to_open_incident(session, signal):
                        attached += 1
                    elif self._declare_automatically(session, signal):
                        declared += 1
                    elif not self._into_digest(session, signal, digest):
                        self._post_card(session, signal)
                else:
                    repeated += 1
                    self._seen_again(session, signal, incoming, digest)
        return Received(new, repeated, attached, declared)

    def _route(self, incoming: IncomingSignal) -> str | None:
        """The catalog service the signal names (catalog names are lower-case), or None: unrouted."""
        hint = (incoming.service_hint or "").strip().lower()
        return hint if hint in self.services else None

    def _upsert(
        self, session: Session, incoming: IncomingSignal, *, triage: Triage = Triage.OPEN
    ) -> tuple[Signal, bool]:
        """The signal's row, locked; created when this is the first time its fingerprint arrives."""
        now = self.clock.now()
        service = self._route(incoming)
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
                triage=triage.value,
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

    def _seen_again(self, session: Session, signal: Signal, incoming: IncomingSignal, digest: Signal) -> None:
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
            self._tell(session, incident, signal, text, actor=SIGNAL_ACTOR, kind=f"signal_{signal.state}")
        if signal.card_ts is not None or signal.triage == Triage.OPEN.value:
            self.outbox.triage_refresh(session, signal.id)
        if digest.triage == Triage.OPEN.value and signal.id in digest.member_ids:
            self.outbox.triage_refresh(session, digest.id)

    def _attach_to_open_incident(self, session: Session, signal: Signal) -> bool:
        if signal.service is None or signal.state != SignalState.FIRING.value:
            return False
        incident = self._open_incident_of(session, signal.service)
        if incident is None:
            return False
        signal.triage = Triage.ATTACHED.value
        signal.incident_id = incident.id
        text = rendering.signal_attached_note(signal)
        self._tell(session, incident, signal, text, actor=SIGNAL_ACTOR, kind="signal_attached")
        return True

    def _declare_automatically(self, session: Session, signal: Signal) -> bool:
        """Opt-in per route (signals.auto_declare): declare and page at once, saying it was automatic."""
        if (
            signal.service is None
            or signal.state != SignalState.FIRING.value
            or self.declare_in is None
            or not self.incidents_channel  # nowhere to announce it: a person declares from the card
        ):
            return False
        rule = next((rule for rule in self.auto_declare if rule.matches(signal.labels)), None)
        if rule is None:
            return False
        words = " ".join(f"{signal.title}: {signal.summary}".split()) if signal.summary else signal.title
        command = Declare(signal.service, rule.severity, words[: input_rules.DESCRIPTION.limit])
        incident = self.declare_in(session, command, SIGNAL_ACTOR)
        signal.triage, signal.triaged_by, signal.incident_id = (
            Triage.DECLARED.value,
            SIGNAL_ACTOR,
            incident.id,
        )
        self.incidents.record(
            session,
            incident,
            actor=SIGNAL_ACTOR,
            kind="signal_confirmed",
            text=rendering.declared_automatically_text(signal),
            data={"signal_id": signal.id, "source": signal.source, "fingerprint": signal.fingerprint},
        )
        return True

    def _tell(
        self, session: Session, incident: Incident, signal: Signal, text: str, *, actor: str, kind: str
    ) -> None:
        """What a signal did to an incident: in its timeline and its thread."""
        self.incidents.record(
            session, incident, actor=actor, kind=kind, text=text, data={"signal_id": signal.id}
        )
        self.outbox.thread_note(session, incident, text)

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
                self._tell(
                    session,
                    incident,
                    signal,
                    rendering.customer_report_note(signal),
                    actor=reporter if reporter.startswith(("U", "W")) else SIGNAL_ACTOR,
                    kind="customer_report",
                )
                return self._outcome(service, incident.ref, 1, posted=False)
            cluster = self._gathering_row(session, CLUSTER_SOURCE, service)
            recent = self._open_reports(session, service, since=now - self.report_window)
            posted = False
            if cluster.triage != Triage.OPEN.value:
                if len(recent) < self.report_threshold:
                    return self._outcome(service, None, len(recent), posted=False)
                self._begin_episode(cluster)
                cluster.since = min(r.first_seen for r in recent)
                posted = True
            self._gather(cluster, recent)
            cluster.title = rendering.report_cluster_title(cluster.count, service, self.report_window)
            if posted:
                self._post_card(session, cluster)
            else:
                self.outbox.triage_refresh(session, cluster.id)
            return self._outcome(service, None, cluster.count, posted=posted)

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

    # --- cards that gather signals: customer reports, an alert storm's digest ---------------------------------

    def _into_digest(self, session: Session, signal: Signal, digest: Signal) -> bool:
        """Once more than `digest_after` alerts are firing untriaged for one service, the next ones go on a
        single digest card instead of a card each: a storm must not drown the channel. `digest` is the
        service's digest row, which the caller holds."""
        posted = False
        if digest.triage != Triage.OPEN.value:
            firing = session.scalar(
                select(func.count())
                .select_from(Signal)
                .where(
                    Signal.service.is_(None) if signal.service is None else Signal.service == signal.service,
                    Signal.source.not_in([REPORT_SOURCE, *GATHERING_SOURCES]),
                    Signal.triage == Triage.OPEN.value,
                    Signal.state == SignalState.FIRING.value,
                    Signal.id != signal.id,
                )
            )
            if int(firing or 0) < self.digest_after:
                return False
            self._begin_episode(digest)
            posted = True
        self._gather(digest, [signal])
        digest.title = rendering.digest_title(digest.count)
        if posted:
            self._post_card(session, digest)
        else:
            self.outbox.triage_refresh(session, digest.id)
        return True

    def _gathering_row(self, session: Session, source: str, service: str | None) -> Signal:
        """The service's one row of this gathering source, locked (made the first time, dormant). Holding it
        serializes the decisions that start an episode; an episode reuses the row with a new card."""
        row, _ = self._upsert(
            session,
            IncomingSignal(
                source=source,
                fingerprint=service or UNROUTED,
                state=SignalState.RESOLVED,
                title="",
                summary="",
                service_hint=service,
                severity_hint=None,
                labels={},
                since=self.clock.now(),
                raw="",
            ),
            triage=Triage.DORMANT,
        )
        return row

    def _begin_episode(self, row: Signal) -> None:
        now = self.clock.now()
        row.triage, row.triaged_by, row.incident_id = Triage.OPEN.value, None, None
        row.card_channel = row.card_ts = row.resolved_at = None
        row.labels, row.count, row.state = {}, 0, SignalState.FIRING.value
        row.since = row.first_seen = row.last_seen = now

    def _gather(self, gathering: Signal, members: list[Signal]) -> None:
        ids = gathering.member_ids
        ids += [member.id for member in members if member.id not in ids]
        for member in members:
            member.triage = Triage.ATTACHED.value
        gathering.labels = {"members": ",".join(str(i) for i in ids)}
        gathering.count = len(ids)
        gathering.last_seen = self.clock.now()

    def _open_incident_of(self, session: Session, service: str) -> Incident | None:
        return session.execute(
            select(Incident)
            .where(Incident.service == service, Incident.status.in_([s.value for s in OPEN_STATUSES]))
            .order_by(Incident.severity, Incident.id)
            .limit(1)
        ).scalar_one_or_none()

    def of_incident(self, incident_id: int) -> list[Signal]:
        """The alerts and reports linked to an incident, newest first (the cards that gathered them left out)."""
        with reading(self.sessions) as session:
            return list(
                session.scalars(
                    select(Signal)
                    .where(Signal.incident_id == incident_id, Signal.source.not_in(GATHERING_SOURCES))
                    .order_by(Signal.last_seen.desc(), Signal.id.desc())
                    .limit(100)
                )
            )

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
            self._triaged(session, signal, Triage.DISMISSED, actor, incident_id=None)
            self.outbox.triage_refresh(session, signal.id)
        return signal

    def attach(self, signal_id: int, incident_id: int, *, actor: str) -> Incident:
        """From the card's "Attach to…": the alert belongs to an incident already open."""
        with transaction(self.sessions) as session:
            signal = self._open_for_triage(session, signal_id)
            incident = self.incidents.get(session, incident_id)
            if not incident.is_open:
                raise DomainError(f"{incident.ref} is already resolved; declare a new incident instead.")
            self._triaged(session, signal, Triage.ATTACHED, actor, incident_id=incident.id)
            text = rendering.signal_attached_note(signal, actor)
            self._tell(session, incident, signal, text, actor=actor, kind="signal_attached")
            self.outbox.triage_refresh(session, signal.id)
        return incident

    def link_declared(self, signal_id: int, *, actor: str) -> Callable[[Session, Incident], None]:
        """For IncidentFlows.declare: in the declaration's transaction, mark the signal confirmed and record
        on the new incident's timeline which signal it came from and who confirmed it."""

        def link(session: Session, incident: Incident) -> None:
            signal = self._open_for_triage(session, signal_id)
            self._triaged(session, signal, Triage.DECLARED, actor, incident_id=incident.id)
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

    def _triaged(
        self, session: Session, signal: Signal, triage: Triage, actor: str, *, incident_id: int | None
    ) -> None:
        """The signal, and every signal its card gathers, get the same outcome."""
        gathered = (
            list(session.scalars(select(Signal).where(Signal.id.in_(signal.member_ids))))
            if signal.member_ids
            else []
        )
        for row in (signal, *gathered):
            row.triage = triage.value
            row.triaged_by = actor
            row.incident_id = incident_id

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
