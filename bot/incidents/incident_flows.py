"""Orchestration: apply a rule and queue its announcements in one transaction.

The change and the announcements commit together, before the person is answered; the delivery engine picks
the announcements up from the committed rows. A Slack outage can delay a post but never lose or roll back a
change someone made at 3 a.m., and a crash right after the answer loses nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from bot.comms.outbox import Outbox
from bot.comms.paging import Pager
from bot.core.database import reading, transaction
from bot.core.domain_errors import DomainError
from bot.incidents.command_parser import Declare
from bot.incidents.incident_records import Incident, Status, TimelineEvent
from bot.incidents.lifecycle import Change, Guard, IncidentService
from bot.slack import rendering

log = logging.getLogger(__name__)


class IncidentFlows:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        service: IncidentService,
        outbox: Outbox,
        pager: Pager,
        *,
        incidents_channel: str | None,
    ) -> None:
        self.sessions = sessions
        self.service = service
        self.outbox = outbox
        self.pager = pager
        self.incidents_channel = incidents_channel
        # Called inside a resolution's transaction, to queue what follows it (e.g. the P1 post-mortem draft).
        self.on_resolve: list[Callable[[Session, Incident, str], None]] = []

    # --- commands ---------------------------------------------------------------------------------------------

    def declare(
        self,
        command: Declare,
        *,
        actor: str,
        origin_channel: str | None,
        also: Callable[[Session, Incident], None] | None = None,
    ) -> Incident:
        """Declare, announce and page; `also` runs in the same transaction (e.g. linking the alert it came
        from), so the incident never exists without it."""
        with transaction(self.sessions) as session:
            incident = self.declare_in(session, command, actor=actor, origin_channel=origin_channel)
            if also is not None:
                also(session, incident)
        return incident

    def declare_in(
        self, session: Session, command: Declare, *, actor: str, origin_channel: str | None = None
    ) -> Incident:
        """Declare inside the caller's transaction: the incident, its card and its pages commit with it."""
        channel = self.incidents_channel or origin_channel
        if not channel:
            raise DomainError("TARS does not know where to announce incidents: set TARS_INCIDENTS_CHANNEL.")
        change = self.service.declare(
            session,
            service=command.service,
            severity=command.severity,
            description=command.description,
            impact=command.impact,
            reporter=actor,
        )
        self.outbox.post_card(session, change.incident, channel)
        self.pager.page(session, change.incident)
        incident = change.incident
        incident.channel_id = incident.channel_id or channel
        return incident

    # `guard` runs on the locked incident before the rule (e.g. that a click was on its own card).

    def acknowledge(self, incident_id: int, *, actor: str, guard: Guard | None = None) -> Change:
        return self._change(
            lambda s: self.service.acknowledge(s, incident_id, actor=actor, guard=guard),
            note=True,
        )

    def set_status(
        self, incident_id: int, status: Status, *, actor: str, guard: Guard | None = None
    ) -> Change:
        return self._change(
            lambda s: self.service.set_status(s, incident_id, status, actor=actor, guard=guard),
            note=True,
        )

    def set_severity(
        self, incident_id: int, severity: int, *, actor: str, guard: Guard | None = None
    ) -> Change:
        return self._change(
            lambda s: self.service.set_severity(s, incident_id, severity, actor=actor, guard=guard),
            note=True,
        )

    def post_update(self, incident_id: int, *, findings: str, eta: str | None, actor: str) -> Change:
        def apply(session: Session) -> Change:
            change = self.service.record_update(session, incident_id, findings=findings, eta=eta, actor=actor)
            incident = change.incident
            self.outbox.channel_post(
                session, incident, rendering.update_text(incident), rendering.update_blocks(incident)
            )
            return change

        return self._change(apply, note=False)

    def resolve(
        self,
        incident_id: int,
        *,
        root_cause: str,
        users_affected: int | None,
        actor: str,
        force: bool = False,
        criteria: str | None = None,
    ) -> Change:
        def apply(session: Session) -> Change:
            change = self.service.resolve(
                session,
                incident_id,
                root_cause=root_cause,
                users_affected=users_affected,
                actor=actor,
                force=force,
                criteria=criteria,
            )
            incident = change.incident
            self.outbox.channel_post(
                session, incident, rendering.resolved_text(incident), rendering.resolved_blocks(incident)
            )
            for hook in self.on_resolve:
                hook(session, incident, actor)
            return change

        return self._change(apply, note=True)

    # --- reading ----------------------------------------------------------------------------------------------

    def open_incidents(self) -> tuple[list[Incident], int]:
        with reading(self.sessions) as session:
            return self.service.list_open(session)

    def incident_with_timeline(self, incident_id: int) -> tuple[Incident, list[TimelineEvent]]:
        with reading(self.sessions) as session:
            incident = self.service.get(session, incident_id)
            return incident, self.service.timeline(session, incident_id)

    def open_incident(self, incident_id: int, *, guard: Guard | None = None) -> Incident:
        """An incident that can still be changed, for opening a modal about it."""
        with reading(self.sessions) as session:
            incident = self.service.get(session, incident_id)
        if guard is not None:
            guard(incident)
        if not incident.is_open:
            raise DomainError(f"{incident.ref} is already resolved.")
        return incident

    # --- helpers ----------------------------------------------------------------------------------------------

    def _change(self, apply: Callable[[Session], Change], *, note: bool) -> Change:
        """Apply a rule and refresh the card; with `note`, the change is also told in the card's thread."""
        with transaction(self.sessions) as session:
            change = apply(session)
            told = rendering.change_note(change.incident, change.event) if note else None
            log.info(
                "%s: %s", change.incident.ref, change.event.kind, extra={"incident": change.incident.ref}
            )
            self.outbox.refresh_card(session, change.incident, told)
        return change
