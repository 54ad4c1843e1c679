"""Incident rules: what may change, and how each change lands in the timeline.

Every method takes the caller's session so a change and its timeline entry commit together. Rows are loaded
`FOR UPDATE` (a no-op on SQLite) and carry a version column, so two people acting on one incident at the same
moment are serialised instead of overwriting each other.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import Session, load_only

from bot.comms.reminders import Planner
from bot.core.clock import Clock
from bot.core.database import rows_for, table_of, write_pending_rows
from bot.core.domain_errors import IllegalTransition, NotFound, UsageError
from bot.core.settings import PolicyConfig, ServiceConfig
from bot.incidents.incident_records import OPEN_STATUSES, Incident, Status, TimelineEvent
from bot.slack import rendering

SYSTEM_ACTOR = "tars"

# `/incident list` shows this many; the rest are counted, so a reply never outgrows a Slack message.
LIST_LIMIT = 50


# Built once: building and hashing a statement per command cost more than running it.
_LOAD_INCIDENT = select(Incident).where(Incident.id == bindparam("id"))
_LOCK_INCIDENT = _LOAD_INCIDENT.with_for_update().execution_options(populate_existing=True)
_TIMELINE = table_of(TimelineEvent)
_ATTACH_CARD = (
    update(table_of(Incident))
    .where(table_of(Incident).c.id == bindparam("incident_id"))
    .values(channel_id=bindparam("channel"), card_ts=bindparam("ts"))
)


# Runs on the locked incident before any rule, e.g. to check that a click was made on this incident's own card;
# it refuses by raising.
Guard = Callable[[Incident], None]


@dataclass(frozen=True)
class Change:
    """What a command changed: the incident as it now is and the timeline entry that records it."""

    incident: Incident
    event: TimelineEvent


class IncidentService:
    def __init__(
        self, clock: Clock, services: Mapping[str, ServiceConfig], policy: PolicyConfig, planner: Planner
    ) -> None:
        self.clock = clock
        self.services = services
        self.policy = policy
        self.planner = planner

    # --- reading -------------------------------------------------------------------------------------------

    def get(self, session: Session, incident_id: int, *, for_update: bool = False) -> Incident:
        statement = _LOCK_INCIDENT if for_update else _LOAD_INCIDENT
        incident = session.execute(statement, {"id": incident_id}).scalar_one_or_none()
        if incident is None:
            raise NotFound(rendering.no_such_incident(incident_id))
        return incident

    def list_open(self, session: Session, *, limit: int = LIST_LIMIT) -> tuple[list[Incident], int]:
        """The most severe and oldest open incidents, at most `limit`, and how many are open in all."""
        is_open = Incident.status.in_([s.value for s in OPEN_STATUSES])
        statement = (
            select(Incident)
            .options(
                load_only(
                    Incident.id,
                    Incident.service,
                    Incident.severity,
                    Incident.status,
                    Incident.description,
                    Incident.oncall,
                    Incident.declared_at,
                    Incident.acknowledged_at,
                    raiseload=True,
                )
            )
            .where(is_open)
            .order_by(Incident.severity, Incident.id)
            .limit(limit)
        )
        shown = list(session.scalars(statement))
        total = (
            len(shown)
            if len(shown) < limit
            else int(session.scalar(select(func.count()).select_from(Incident).where(is_open)) or 0)
        )
        return shown, total

    def timeline(self, session: Session, incident_id: int) -> list[TimelineEvent]:
        write_pending_rows(session)
        statement = (
            select(TimelineEvent).where(TimelineEvent.incident_id == incident_id).order_by(TimelineEvent.id)
        )
        return list(session.scalars(statement))

    # --- changes -------------------------------------------------------------------------------------------

    def record(
        self,
        session: Session,
        incident: Incident,
        *,
        actor: str,
        kind: str,
        text: str,
        data: dict[str, Any] | None = None,
    ) -> TimelineEvent:
        return self.record_for(session, incident.id, actor=actor, kind=kind, text=text, data=data)

    def record_for(
        self,
        session: Session,
        incident_id: int,
        *,
        actor: str,
        kind: str,
        text: str,
        data: dict[str, Any] | None = None,
    ) -> TimelineEvent:
        row = {
            "incident_id": incident_id,
            "at": self.clock.now(),
            "actor": actor,
            "kind": kind,
            "text": text,
            "data": data or {},
        }
        # Written at commit with the change's other rows, in the same round trip; `timeline` writes what is
        # queued first, so a reader later in the transaction (a post-mortem draft) still sees it.
        rows_for(session).add(_TIMELINE, row)
        return TimelineEvent(**row)

    def declare(
        self,
        session: Session,
        *,
        service: str,
        severity: int,
        description: str,
        impact: str | None,
        reporter: str,
    ) -> Change:
        catalog_entry = self.services.get(service)
        if catalog_entry is None:
            raise UsageError(rendering.unknown_service(service, self.services))
        _check_severity(severity)
        description = description.strip()
        if not description:
            raise UsageError("The description may not be empty: say what is broken.")
        now = self.clock.now()
        incident = Incident(
            service=service,
            severity=severity,
            status=Status.INVESTIGATING.value,
            description=description,
            impact=(impact or "").strip() or None,
            reporter=reporter,
            oncall=catalog_entry.oncall,
            declared_at=now,
        )
        session.add(incident)
        session.flush()
        event = self.record(
            session,
            incident,
            actor=reporter,
            kind="declared",
            text=f"Declared P{severity} for {service}: {description}",
            data={
                "service": service,
                "severity": severity,
                "description": description,
                "impact": incident.impact,
            },
        )
        self.planner.on_declared(session, incident)
        return Change(incident, event)

    def card_posted(self, session: Session, incident_id: int | None, result: dict[str, Any]) -> None:
        """The incident's card is in Slack: remember where, so refreshes and thread posts find it."""
        assert incident_id is not None  # card_post rows always name their incident
        session.connection().execute(
            _ATTACH_CARD, {"incident_id": incident_id, "channel": result["channel"], "ts": result["ts"]}
        )

    def acknowledge(
        self, session: Session, incident_id: int, *, actor: str, guard: Guard | None = None
    ) -> Change:
        incident = self._open_incident(session, incident_id, "acknowledge", guard)
        if incident.acknowledged_at is not None:
            raise IllegalTransition(rendering.already_acknowledged(incident))
        now = self.clock.now()
        incident.acknowledged_at = now
        incident.acknowledged_by = actor
        if incident.commander is None:
            incident.commander = actor
        event = self.record(
            session,
            incident,
            actor=actor,
            kind="acknowledged",
            text=f"Acknowledged by {rendering.mention(actor)}",
            data={"response_seconds": int((now - incident.declared_at).total_seconds())},
        )
        self.planner.on_acknowledged(session, incident)
        return Change(incident, event)

    def set_status(
        self, session: Session, incident_id: int, status: Status, *, actor: str, guard: Guard | None = None
    ) -> Change:
        if status not in OPEN_STATUSES:
            raise UsageError(rendering.RESOLVE_WITH_RESOLVE)
        incident = self._open_incident(session, incident_id, f"move to {status.label}", guard)
        old = incident.status_enum
        if old == status:
            raise IllegalTransition(f"{incident.ref} is already {status.label}.")
        now = self.clock.now()
        incident.status = status.value
        if status == Status.MONITORING:
            incident.monitoring_since = now
            if incident.mitigated_at is None:
                incident.mitigated_at = now
        else:
            incident.monitoring_since = None
        event = self.record(
            session,
            incident,
            actor=actor,
            kind="status_changed",
            text=f"Status {old.label} → {status.label}",
            data={"old": old.value, "new": status.value},
        )
        return Change(incident, event)

    def set_severity(
        self, session: Session, incident_id: int, severity: int, *, actor: str, guard: Guard | None = None
    ) -> Change:
        incident = self._open_incident(session, incident_id, "change the severity of", guard)
        _check_severity(severity)
        old = incident.severity
        if old == severity:
            raise IllegalTransition(f"{incident.ref} is already P{severity}.")
        incident.severity = severity
        event = self.record(
            session,
            incident,
            actor=actor,
            kind="severity_changed",
            text=f"Severity P{old} → P{severity}",
            data={"old": old, "new": severity},
        )
        self.planner.on_severity_changed(session, incident)
        return Change(incident, event)

    def record_update(
        self, session: Session, incident_id: int, *, findings: str, eta: str | None, actor: str
    ) -> Change:
        findings = findings.strip()
        if not findings:
            raise UsageError("The update needs the latest findings, in one sentence.")
        incident = self._open_incident(session, incident_id, "post an update for")
        old_eta = incident.eta
        now = self.clock.now()
        if incident.last_update_at is None:
            self.planner.on_first_update(session, incident)
        incident.latest_findings = findings
        incident.findings_at = now
        incident.last_update_at = now
        if eta is not None:
            incident.eta = eta.strip() or None
        event = self.record(
            session,
            incident,
            actor=actor,
            kind="update",
            text=f"Update: {findings}" + (f" (ETA {incident.eta})" if incident.eta else ""),
            data={"findings": findings, "eta": incident.eta, "old_eta": old_eta},
        )
        self.planner.on_manual_update(session, incident)
        return Change(incident, event)

    def resolve(
        self,
        session: Session,
        incident_id: int,
        *,
        root_cause: str,
        users_affected: int | None,
        actor: str,
        force: bool = False,
        criteria: str | None = None,
    ) -> Change:
        """Resolve, if the runbook's criteria are met: by default, 10 minutes in Monitoring. `criteria` is the
        metrics' verdict instead, for a service whose error rate TARS has just read ("under 0.1% for 12 min")."""
        root_cause = root_cause.strip()
        if not root_cause:
            raise UsageError("Resolving needs the root cause, in one sentence.")
        if users_affected is not None and users_affected < 0:
            raise UsageError("Users affected cannot be negative.")
        incident = self._open_incident(session, incident_id, "resolve")
        old = incident.status_enum
        now = self.clock.now()
        shortfall = None if criteria else self._monitoring_shortfall(incident)
        if shortfall and not force:
            raise IllegalTransition(rendering.monitoring_refusal(incident, **shortfall))
        if shortfall:
            self.record(
                session,
                incident,
                actor=actor,
                kind="resolve_guard_overridden",
                text=f"Resolved with --force, overriding: {rendering.monitoring_shortfall(incident, **shortfall)}",
                data={"min_monitoring_seconds": int(self.policy.min_monitoring.total_seconds())},
            )
        incident.status = Status.RESOLVED.value
        incident.resolved_at = now
        incident.resolved_by = actor
        incident.root_cause = root_cause
        incident.users_affected = users_affected
        incident.monitoring_since = None
        if incident.mitigated_at is None:
            incident.mitigated_at = now
        incident.postmortem_due_at = now + self.policy.postmortem_due if incident.severity == 1 else None
        event = self.record(
            session,
            incident,
            actor=actor,
            kind="resolved",
            text=f"Resolved ({old.label} → Resolved): {root_cause}" + (f" ({criteria})" if criteria else ""),
            data={
                "old": old.value,
                "root_cause": root_cause,
                "users_affected": users_affected,
                "duration_seconds": int((now - incident.declared_at).total_seconds()),
                "postmortem_due_at": _iso(incident.postmortem_due_at),
                "forced": bool(shortfall),
                "criteria": criteria,
            },
        )
        self.planner.on_resolved(session, incident)
        return Change(incident, event)

    def _monitoring_shortfall(self, incident: Incident) -> dict[str, Any] | None:
        """How resolving now falls short of the runbook's "monitor for at least 10 minutes" rule, or None:
        the minimum, and how long it has been watched (None: it is not in Monitoring)."""
        minimum = self.policy.min_monitoring
        if incident.status_enum != Status.MONITORING or incident.monitoring_since is None:
            return {"minimum": minimum, "watched": None}
        watched = self.clock.now() - incident.monitoring_since
        return {"minimum": minimum, "watched": watched} if watched < minimum else None

    # --- helpers -------------------------------------------------------------------------------------------

    def _open_incident(
        self, session: Session, incident_id: int, doing: str, guard: Guard | None = None
    ) -> Incident:
        incident = self.get(session, incident_id, for_update=True)
        if guard is not None:
            guard(incident)
        if not incident.is_open:
            raise IllegalTransition(
                f"{incident.ref} was resolved at {incident.resolved_at:%Y-%m-%d %H:%M} UTC; "
                f"you cannot {doing} a resolved incident. Declare a new incident if the problem is back."
            )
        return incident


def _check_severity(severity: int) -> None:
    if severity not in (1, 2, 3, 4):
        raise UsageError(f"P{severity} is not a severity; use P1, P2, P3 or P4.")


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None
