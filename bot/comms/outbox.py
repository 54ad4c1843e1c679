"""Announcements that survive Slack failures: the enqueue side.

An announcement is written to the outbox in the same transaction as the change it announces, so the change
never depends on Slack being up and a crash after the commit loses nothing. Each message belongs to a lane of its
incident, delivered in order: "card" (the card and its refreshes, so the card never waits behind a backlog of
notes), "channel" (thread notes and channel posts) and "page" (DMs and PagerDuty, so a stuck post never delays a
page). `bot.comms.delivery` sends them.

Committing a transaction that queued messages wakes the delivery engine: in this process directly, and every
replica through the NOTIFY that an outbox trigger sends on Postgres.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, event, update
from sqlalchemy.orm import Session, sessionmaker

from bot.comms.comms_records import OutboxMessage, OutboxState
from bot.core.clock import Clock
from bot.core.database import in_batch, rows_for, table_of
from bot.incidents.incident_records import Incident
from integrations.pagerduty import PageRequest

CARD_LANE = "card"
CHANNEL_LANE = "channel"
# Triage cards belong to no incident: they share one lane, so a card's refreshes follow its post.
TRIAGE_LANE = "triage"
PAGE_LANE = "page"
# Slow commands (they call a cluster, AWS or GitHub), carried out in order per incident.
WORK_LANE = "work"
COMMAND_KIND = "command"
REMEDIATION_KIND = "remediation"
# Reading a service's metrics and logs: its own lane, so a slow Prometheus never holds up a rollback request.
OBSERVE_LANE = "observe"
OBSERVE_KIND = "observe"
NOTIFY_CHANNEL = "tars_outbox"  # as migration 0007's trigger spells it

# Lanes compete for Slack's per-channel budget: what wakes people goes first, chatter last.
URGENT, CARD, POST, NOTE = 0, 1, 2, 3

_QUEUED = "tars_outbox_queued"
_OUTBOX = table_of(OutboxMessage)


def wake_on_commit(sessions: sessionmaker[Session], wake: Callable[[], None]) -> None:
    """Call `wake` after every commit that queued messages. Other replicas hear of them from Postgres: a trigger
    on the outbox (migration 0007) sends the NOTIFY."""

    def after_commit(session: Session) -> None:
        if session.info.pop(_QUEUED, False):
            wake()

    def after_rollback(session: Session) -> None:
        session.info.pop(_QUEUED, None)

    event.listen(sessions, "after_commit", after_commit)
    event.listen(sessions, "after_soft_rollback", lambda session, _previous: after_rollback(session))


class Outbox:
    """The enqueue side, used inside the transaction of a change."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def add(
        self,
        session: Session,
        incident: Incident | None,
        kind: str,
        payload: dict[str, Any],
        *,
        lane: str = CHANNEL_LANE,
        priority: int = POST,
    ) -> None:
        now = self.clock.now()
        row = {
            "incident_id": incident.id if incident is not None else None,
            "lane": lane,
            "kind": kind,
            "priority": priority,
            "payload": payload,
            "state": OutboxState.PENDING.value,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        session.info[_QUEUED] = True
        rows_for(session).add(_OUTBOX, row)

    def post_card(self, session: Session, incident: Incident, channel: str) -> None:
        self.add(session, incident, "card_post", {"channel": channel}, lane=CARD_LANE, priority=URGENT)

    def refresh_card(self, session: Session, incident: Incident, note: str | None = None) -> None:
        if in_batch(session) or not _refresh_queued(session, incident.id):
            self.add(session, incident, "card_refresh", {}, lane=CARD_LANE, priority=CARD)
        if note:
            self.thread_note(session, incident, note)

    def thread_note(
        self,
        session: Session,
        incident: Incident,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
        *,
        record: list[str] | None = None,
    ) -> None:
        """A note in the incident's thread; `record` is the timeline entry written when it is posted."""
        payload: dict[str, Any] = {"text": text, "blocks": blocks}
        if record:
            payload["record"] = record
        self.add(session, incident, "thread_note", payload, priority=NOTE)

    def thread_file(
        self,
        session: Session,
        incident: Incident,
        title: str,
        file_name: str,
        content: str | bytes,
        comment: str,
        *,
        record: list[str] | None = None,
        facts: dict[str, Any] | None = None,
    ) -> None:
        """A file shared in the incident thread (files_upload_v2): text too long for any message, or a chart.
        Bytes travel in the row as base64, since the payload is JSON. `facts` go into the timeline entry."""
        payload: dict[str, Any] = {"title": title, "file_name": file_name, "comment": comment}
        if isinstance(content, bytes):
            payload["content_base64"] = base64.b64encode(content).decode("ascii")
        else:
            payload["content"] = content
        if record:
            payload["record"] = record
        if facts:
            payload["facts"] = facts
        self.add(session, incident, "thread_file", payload, priority=NOTE)

    def channel_post(
        self,
        session: Session,
        incident: Incident,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
        *,
        record: list[str] | None = None,
        urgent: bool = False,
    ) -> None:
        payload = {"text": text, "blocks": blocks, "record": record}
        self.add(session, incident, "channel_post", payload, priority=URGENT if urgent else POST)

    def scheduled_update(
        self,
        session: Session,
        incident: Incident,
        *,
        nag_user: str | None,
        late_due: datetime | None,
        record: list[str],
    ) -> None:
        """The cadence's 📊 update, rendered when it is sent: a tick fires a hundred of these at once, and rendering
        them there was a third of the tick."""
        payload = {
            "nag_user": nag_user,
            "late_due": late_due.isoformat() if late_due else None,
            "record": record,
        }
        self.add(session, incident, "scheduled_update", payload, priority=POST)

    def triage_post(self, session: Session, signal_id: int, channel: str) -> None:
        """A signal's triage card: there is no incident yet, so it goes in the lane of such cards."""
        payload = {"signal_id": signal_id, "channel": channel}
        self.add(session, None, "triage_post", payload, lane=TRIAGE_LANE, priority=CARD)

    def triage_refresh(self, session: Session, signal_id: int) -> None:
        """Like a card refresh: one already queued and not yet taken will show this transaction's state too."""
        payload = {"signal_id": signal_id}
        if rows_for(session).holds(_OUTBOX, kind="triage_refresh", payload=payload):
            return
        if (
            session.connection().execute(_JOIN_PENDING_TRIAGE_REFRESH, {"signal": signal_id}).first()
            is not None
        ):
            return
        self.add(session, None, "triage_refresh", payload, lane=TRIAGE_LANE, priority=CARD)

    def direct_message(
        self, session: Session, incident: Incident, user: str, text: str, *, record: list[str] | None = None
    ) -> None:
        payload = {"user": user, "text": text, "record": record}
        self.add(session, incident, "dm", payload, lane=PAGE_LANE, priority=URGENT)

    def action_card(self, session: Session, incident: Incident, action_id: int) -> None:
        """The approval card, in the incident card's thread; later refreshes update it in place."""
        self.add(session, incident, "action_card_post", {"action_id": action_id}, priority=CARD)

    def refresh_action_card(self, session: Session, incident: Incident, action_id: int) -> None:
        self.add(session, incident, "action_card_refresh", {"action_id": action_id}, priority=CARD)

    def observe_job(self, session: Session, incident: Incident, payload: dict[str, Any]) -> None:
        self.add(session, incident, OBSERVE_KIND, payload, lane=OBSERVE_LANE, priority=NOTE)

    def command_job(self, session: Session, incident: Incident, payload: dict[str, Any]) -> None:
        self.add(session, incident, COMMAND_KIND, payload, lane=WORK_LANE, priority=POST)

    def remediation_job(self, session: Session, incident: Incident, action_id: int) -> None:
        """Start an approved remediation; a 'what wakes people' priority, since someone is waiting on it."""
        self.add(
            session, incident, REMEDIATION_KIND, {"action_id": action_id}, lane=WORK_LANE, priority=URGENT
        )

    def pagerduty(self, session: Session, incident: Incident, page: PageRequest) -> None:
        payload = {
            "routing_key": page.routing_key,
            "summary": page.summary,
            "dedup_key": page.dedup_key,
            "severity": page.severity,
            "custom_details": page.custom_details or {},
        }
        self.add(session, incident, "pagerduty", payload, lane=PAGE_LANE, priority=URGENT)


_JOIN_PENDING_REFRESH = (
    update(_OUTBOX)
    .where(
        _OUTBOX.c.incident_id == bindparam("incident"),
        _OUTBOX.c.lane == CARD_LANE,
        _OUTBOX.c.kind == "card_refresh",
        _OUTBOX.c.state == OutboxState.PENDING.value,
        _OUTBOX.c.locked_by.is_(None),
    )
    .values(state=OutboxState.PENDING.value)
    .returning(_OUTBOX.c.id)
)


_JOIN_PENDING_TRIAGE_REFRESH = (
    update(_OUTBOX)
    .where(
        _OUTBOX.c.incident_id.is_(None),
        _OUTBOX.c.lane == TRIAGE_LANE,
        _OUTBOX.c.kind == "triage_refresh",
        _OUTBOX.c.state == OutboxState.PENDING.value,
        _OUTBOX.c.locked_by.is_(None),
        _OUTBOX.c.payload["signal_id"].as_integer() == bindparam("signal"),
    )
    .values(state=OutboxState.PENDING.value)
    .returning(_OUTBOX.c.id)
)


def _refresh_queued(session: Session, incident_id: int) -> bool:
    """True when a refresh of this card is already queued and no worker holds it yet: it will render the state
    this transaction commits, so a second one would only cost Slack a call.

    The UPDATE is what makes that safe: it locks the row until this transaction ends, so a worker leasing the row
    meanwhile waits for the commit and then renders the new state. Once a worker holds it, the UPDATE matches
    nothing and a new refresh is queued behind it.
    """
    if rows_for(session).holds(_OUTBOX, incident_id=incident_id, kind="card_refresh"):
        return True
    joined = session.connection().execute(_JOIN_PENDING_REFRESH, {"incident": incident_id}).first()
    return joined is not None
