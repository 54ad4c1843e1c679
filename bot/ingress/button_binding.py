"""Buttons are bound to their card: a click that names a record is honoured only on that record's message.

A button's value is whatever the client sends, so on its own it proves nothing: an Approve click on request B's
card with the value changed to A would otherwise approve A. Slack tells us which message was clicked (channel
and ts, and the thread it sits in); each check compares that with where TARS put the record's card. A mismatch
is refused privately and audited in the named record's incident timeline, in a transaction of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from bot.core.database import reading, transaction
from bot.core.domain_errors import DomainError
from bot.incidents.incident_records import Incident
from bot.incidents.lifecycle import Guard, IncidentService
from bot.remediation.action_records import ActionRequest
from bot.remediation.approvals import ActionService
from bot.signals.signal_records import Signal

AUDIT_KIND = "button_mismatch"
_KEPT = 64  # clicked ids are client-controlled; the audit keeps only this many characters of each


@dataclass(frozen=True)
class ClickedMessage:
    """Where a click happened, as Slack reported it."""

    channel: str | None
    ts: str | None
    thread_ts: str | None = None

    def audit_data(self) -> dict[str, Any]:
        return {
            "clicked_channel": _kept(self.channel),
            "clicked_ts": _kept(self.ts),
            "clicked_thread_ts": _kept(self.thread_ts),
        }


class WrongCard(DomainError):
    """A button was clicked on a message that is not the card of the record it names."""


def check_incident_card(incident: Incident, clicked: ClickedMessage) -> None:
    """Acknowledge, status, severity, Resolve: only on the incident's own card."""
    if not incident.card_ts or (clicked.channel, clicked.ts) != (incident.channel_id, incident.card_ts):
        raise WrongCard(f"That button belongs to another card; use the buttons on {incident.ref}'s card.")


def check_action_card(action: ActionRequest, incident: Incident, clicked: ClickedMessage) -> None:
    """Approve and Deny: only on the request's own approval card."""
    if not action.card_ts or (clicked.channel, clicked.ts) != (action.card_channel, action.card_ts):
        raise WrongCard(
            f"That button belongs to another card; use the buttons on request {action.ref}'s card "
            f"in {incident.ref}'s thread."
        )


def check_triage_card(signal: Signal, clicked: ClickedMessage) -> None:
    """Declare and Dismiss: only on the alert's own triage card."""
    if not signal.card_ts or (clicked.channel, clicked.ts) != (signal.card_channel, signal.card_ts):
        raise WrongCard("That button belongs to another card; use the buttons on the alert's own card.")


def check_incident_thread(incident: Incident, clicked: ClickedMessage) -> None:
    """Revert flag and Merge sit on notes in the incident's thread, whose ts TARS does not keep."""
    if not incident.card_ts or (clicked.channel, clicked.thread_ts) != (
        incident.channel_id,
        incident.card_ts,
    ):
        raise WrongCard(f"That button belongs to another card; use the buttons in {incident.ref}'s thread.")


class ButtonBinding:
    """Runs the checks above against the stored records and audits every refusal."""

    def __init__(
        self, sessions: sessionmaker[Session], incidents: IncidentService, actions: ActionService
    ) -> None:
        self.sessions = sessions
        self.incidents = incidents
        self.actions = actions

    @contextmanager
    def incident_card(
        self, incident_id: int, clicked: ClickedMessage, *, actor: str, button: str
    ) -> Iterator[Guard]:
        """The check for the change to run on the incident it locks anyway, so a click costs no read of its own;
        a refusal is audited after the change has rolled back."""
        try:
            yield lambda incident: check_incident_card(incident, clicked)
        except WrongCard:
            self._audit(incident_id, actor, button, clicked, {"incident": incident_id})
            raise

    def action_card(self, action_id: int, clicked: ClickedMessage, *, actor: str, button: str) -> None:
        with reading(self.sessions) as session:
            action = self.actions.get(session, action_id)
            incident = self.incidents.get(session, action.incident_id)
        self._enforce(
            incident,
            actor,
            button,
            clicked,
            {"action": action_id},
            lambda incident, clicked: check_action_card(action, incident, clicked),
        )

    def action_thread(self, action_id: int, clicked: ClickedMessage, *, actor: str, button: str) -> None:
        with reading(self.sessions) as session:
            action = self.actions.get(session, action_id)
            incident = self.incidents.get(session, action.incident_id)
        self._enforce(incident, actor, button, clicked, {"action": action_id}, check_incident_thread)

    def incident_thread(
        self,
        incident_id: int,
        clicked: ClickedMessage,
        *,
        actor: str,
        button: str,
        record: dict[str, Any] | None = None,
    ) -> None:
        with reading(self.sessions) as session:
            incident = self.incidents.get(session, incident_id)
        named = {"incident": incident_id, **(record or {})}
        self._enforce(incident, actor, button, clicked, named, check_incident_thread)

    def _enforce(
        self,
        incident: Incident,
        actor: str,
        button: str,
        clicked: ClickedMessage,
        record: dict[str, Any],
        check: Callable[[Incident, ClickedMessage], None],
    ) -> None:
        try:
            check(incident, clicked)
        except WrongCard:
            self._audit(incident.id, actor, button, clicked, record)
            raise

    def _audit(
        self, incident_id: int, actor: str, button: str, clicked: ClickedMessage, record: dict[str, Any]
    ) -> None:
        with transaction(self.sessions) as session:
            self.incidents.record_for(
                session,
                incident_id,
                actor=actor,
                kind=AUDIT_KIND,
                text=f"{button} click refused: it was not on the card of what it names",
                data={"button": button, "record": record, **clicked.audit_data()},
            )


def _kept(value: str | None) -> str | None:
    return value[:_KEPT] if value is not None else None
