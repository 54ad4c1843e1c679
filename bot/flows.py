"""Orchestration: apply a rule in one transaction, then tell Slack about it.

The state change commits first; announcements follow, so a Slack outage can delay a post but never lose or
roll back a change someone made at 3 a.m.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable
from typing import TypeVar

from slack_sdk.errors import SlackApiError
from sqlalchemy.orm import Session, sessionmaker

from bot import rendering
from bot.announcer import Announcer
from bot.commands import Declare
from bot.db import transaction
from bot.errors import DomainError
from bot.incidents import SYSTEM_ACTOR, Change, IncidentService
from bot.models import Incident, Status, TimelineEvent

log = logging.getLogger(__name__)

T = TypeVar("T")


class AnnouncementFailed(DomainError):
    """The change is stored, but Slack refused to show it."""


class IncidentFlows:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        service: IncidentService,
        announcer: Announcer,
        *,
        incidents_channel: str | None,
    ) -> None:
        self.sessions = sessions
        self.service = service
        self.announcer = announcer
        self.incidents_channel = incidents_channel
        # Card refreshes for one incident must reach Slack in commit order, or a slow update could overwrite a
        # newer one; this serialises them within the process.
        self._card_locks: defaultdict[int, threading.Lock] = defaultdict(threading.Lock)

    # --- commands ---------------------------------------------------------------------------------------------

    def declare(self, command: Declare, *, actor: str, origin_channel: str | None) -> Incident:
        channel = self.incidents_channel or origin_channel
        if not channel:
            raise DomainError("TARS does not know where to announce incidents: set TARS_INCIDENTS_CHANNEL.")
        with transaction(self.sessions) as session:
            change = self.service.declare(
                session,
                service=command.service,
                severity=command.severity,
                description=command.description,
                impact=command.impact,
                reporter=actor,
            )
        incident = change.incident
        ts = self._announce(
            incident, lambda: self.announcer.post_card(incident, channel), "post the incident card"
        )
        with transaction(self.sessions) as session:
            incident = self.service.attach_card(session, incident.id, channel_id=channel, ts=ts)
            self.service.record(
                session,
                incident,
                actor=SYSTEM_ACTOR,
                kind="announced",
                text=f"Initial notification posted to <#{channel}>",
                data={"channel": channel, "ts": ts},
            )
        self._page_oncall(incident)
        return incident

    def acknowledge(self, incident_id: int, *, actor: str) -> Change:
        return self._change(
            lambda s: self.service.acknowledge(s, incident_id, actor=actor),
            note=lambda c: f"<@{actor}> acknowledged {c.incident.ref}.",
        )

    def set_status(self, incident_id: int, status: Status, *, actor: str) -> Change:
        return self._change(
            lambda s: self.service.set_status(s, incident_id, status, actor=actor),
            note=lambda c: (
                f"<@{actor}> changed the status of {c.incident.ref}: {c.event.text.removeprefix('Status ')}."
            ),
        )

    def set_severity(self, incident_id: int, severity: int, *, actor: str) -> Change:
        return self._change(
            lambda s: self.service.set_severity(s, incident_id, severity, actor=actor),
            note=lambda c: (
                f"<@{actor}> changed the severity of {c.incident.ref}: {c.event.text.removeprefix('Severity ')}."
            ),
        )

    def post_update(self, incident_id: int, *, findings: str, eta: str | None, actor: str) -> Change:
        change = self._change(
            lambda s: self.service.record_update(s, incident_id, findings=findings, eta=eta, actor=actor),
            note=None,
        )
        self._announce(
            change.incident, lambda: self.announcer.post_update(change.incident), "post the update"
        )
        return change

    def resolve(self, incident_id: int, *, root_cause: str, users_affected: int | None, actor: str) -> Change:
        change = self._change(
            lambda s: self.service.resolve(
                s, incident_id, root_cause=root_cause, users_affected=users_affected, actor=actor
            ),
            note=lambda c: rendering.resolved_summary(c.incident),
        )
        self._announce(
            change.incident, lambda: self.announcer.post_resolved(change.incident), "post the resolution"
        )
        return change

    # --- reading ----------------------------------------------------------------------------------------------

    def open_incidents(self) -> list[Incident]:
        with self.sessions() as session:
            return self.service.list_open(session)

    def incident_with_timeline(self, incident_id: int) -> tuple[Incident, list[TimelineEvent]]:
        with self.sessions() as session:
            incident = self.service.get(session, incident_id)
            return incident, self.service.timeline(session, incident_id)

    def open_incident(self, incident_id: int) -> Incident:
        """An incident that can still be changed, for opening a modal about it."""
        with self.sessions() as session:
            incident = self.service.get(session, incident_id)
        if not incident.is_open:
            raise DomainError(f"{incident.ref} is already resolved.")
        return incident

    # --- helpers ----------------------------------------------------------------------------------------------

    def _change(
        self,
        apply: Callable[[Session], Change],
        *,
        note: Callable[[Change], str] | None,
    ) -> Change:
        with transaction(self.sessions) as session:
            change = apply(session)
        self._refresh_card(change.incident.id, note(change) if note else None)
        return change

    def _refresh_card(self, incident_id: int, note: str | None) -> None:
        with self._card_locks[incident_id]:
            # Re-read inside the lock so the card always shows the newest committed state.
            with self.sessions() as session:
                incident = self.service.get(session, incident_id)
            self._announce(
                incident, lambda: self.announcer.refresh_card(incident, note), "update the incident card"
            )

    def _page_oncall(self, incident: Incident) -> None:
        if not incident.oncall:
            return
        self._announce(
            incident, lambda: self.announcer.page_by_dm(incident, incident.oncall or ""), "page the on-call"
        )
        with transaction(self.sessions) as session:
            self.service.record(
                session,
                incident,
                actor=SYSTEM_ACTOR,
                kind="paged",
                text=f"Paged {rendering.mention(incident.oncall)} by Slack DM",
                data={"user": incident.oncall, "via": "slack_dm"},
            )

    def _announce(self, incident: Incident, post: Callable[[], T], what: str) -> T:
        try:
            return post()
        except SlackApiError as error:
            reason = (
                error.response.get("error", "unknown error") if error.response is not None else str(error)
            )
            log.error("could not %s for %s: %s", what, incident.ref, reason)
            raise AnnouncementFailed(
                f"{incident.ref} is saved, but TARS could not {what} in Slack ({reason})."
            ) from error
