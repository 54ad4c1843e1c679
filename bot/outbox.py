"""Announcements that survive Slack failures.

An announcement is written to the outbox in the same transaction as the change it announces, so the change
never depends on Slack being up. Delivery claims messages with a lease, sends them in order per incident and
lane ("channel" for the card, its thread and channel posts; "page" for DMs and PagerDuty, so a stuck channel
post never delays a page), and retries transient failures with backoff that honours Retry-After.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any, TypeVar

from slack_sdk.errors import SlackApiError
from sqlalchemy import and_, select, update
from sqlalchemy.orm import Session, aliased, sessionmaker

from bot import rendering
from bot.announcer import Announcer
from bot.clock import Clock
from bot.db import buffer_for, transaction
from bot.models import ActionRequest, Incident, OutboxMessage, OutboxState, TimelineEvent
from integrations.base import IntegrationError
from integrations.pagerduty import PagerDutyEvents, PageRequest

log = logging.getLogger(__name__)

T = TypeVar("T")

CHANNEL_LANE = "channel"
PAGE_LANE = "page"
SYSTEM_ACTOR = "tars"

# Slack errors that mean "try again later" rather than "this can never work".
RETRYABLE_SLACK_ERRORS = {
    "ratelimited",
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
}
MAX_ATTEMPTS = 60
MAX_BACKOFF = timedelta(minutes=5)


class Outbox:
    """The enqueue side, used inside the transaction of a change."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def add(
        self,
        session: Session,
        incident: Incident,
        kind: str,
        payload: dict[str, Any],
        *,
        lane: str = CHANNEL_LANE,
    ) -> None:
        now = self.clock.now()
        row = {
            "incident_id": incident.id,
            "lane": lane,
            "kind": kind,
            "payload": payload,
            "state": OutboxState.PENDING.value,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        buffer = buffer_for(session)
        if buffer is not None:
            buffer.add(OutboxMessage.__table__, row)
        else:
            session.add(OutboxMessage(**row))

    def post_card(self, session: Session, incident: Incident, channel: str) -> None:
        self.add(session, incident, "card_post", {"channel": channel})

    def refresh_card(self, session: Session, incident: Incident, note: str | None = None) -> None:
        self.add(session, incident, "card_refresh", {})
        if note:
            self.thread_note(session, incident, note)

    def thread_note(
        self, session: Session, incident: Incident, text: str, blocks: list[dict[str, Any]] | None = None
    ) -> None:
        self.add(session, incident, "thread_note", {"text": text, "blocks": blocks})

    def channel_post(
        self,
        session: Session,
        incident: Incident,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
        *,
        record: str | None = None,
    ) -> None:
        self.add(session, incident, "channel_post", {"text": text, "blocks": blocks, "record": record})

    def direct_message(
        self, session: Session, incident: Incident, user: str, text: str, *, record: str | None = None
    ) -> None:
        self.add(session, incident, "dm", {"user": user, "text": text, "record": record}, lane=PAGE_LANE)

    def action_card(self, session: Session, incident: Incident, action_id: int) -> None:
        """The approval card, in the incident card's thread; later refreshes update it in place."""
        self.add(session, incident, "action_card_post", {"action_id": action_id})

    def refresh_action_card(self, session: Session, incident: Incident, action_id: int) -> None:
        self.add(session, incident, "action_card_refresh", {"action_id": action_id})

    def pagerduty(self, session: Session, incident: Incident, page: PageRequest) -> None:
        payload = {
            "routing_key": page.routing_key,
            "summary": page.summary,
            "dedup_key": page.dedup_key,
            "severity": page.severity,
            "custom_details": page.custom_details or {},
        }
        self.add(session, incident, "pagerduty", payload, lane=PAGE_LANE)


class Outcome(StrEnum):
    SENT = "sent"
    FAILED = "failed"
    RETRY = "retry"


class PermanentFailure(Exception):
    """Retrying cannot help (e.g. channel_not_found)."""


@dataclass
class RetryLater(Exception):
    reason: str
    retry_after: timedelta | None = None


class Deliverer:
    """The delivery side: claim due messages, send them, record the outcome."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        announcer: Announcer,
        pagerduty: PagerDutyEvents,
        clock: Clock,
        *,
        # Longer than the slowest send: the client may wait out Retry-After (twice) and a 10 s timeout.
        lease: timedelta = timedelta(minutes=5),
        batch: int = 50,
        worker_id: str | None = None,
    ) -> None:
        self.sessions = sessions
        self.announcer = announcer
        self.pagerduty = pagerduty
        self.clock = clock
        self.lease = lease
        self.batch = batch
        self.worker_id = worker_id or f"tars-{uuid.uuid4().hex[:8]}"
        self._lock = threading.Lock()
        self._requested = False
        self._senders: dict[str, Callable[[OutboxMessage, Incident], dict[str, Any]]] = {
            "card_post": self._send_card_post,
            "card_refresh": self._send_card_refresh,
            "thread_note": self._send_thread_note,
            "channel_post": self._send_channel_post,
            "dm": self._send_dm,
            "pagerduty": self._send_pagerduty,
            "action_card_post": self._send_action_card,
            "action_card_refresh": self._send_action_card_refresh,
        }

    def deliver(self, max_messages: int = 1000, *, wait: bool = False) -> int:
        """Send what is due, oldest first, one message per lane at a time; returns how many were sent.

        Listener threads call this right after a change with wait=False: if another thread is already
        delivering (say Slack is rate-limiting and the client is honouring Retry-After), they leave a note for
        it and return at once, so no listener thread is ever parked here and new requests keep being acked.
        """
        self._requested = True
        if not self._lock.acquire(blocking=wait):
            return 0
        sent = 0
        try:
            while self._requested:
                self._requested = False
                sent += self._deliver_locked(max_messages)
        finally:
            self._lock.release()
        # A request that arrived between the last pass and the release must not wait for the next tick.
        if self._requested:
            sent += self.deliver(max_messages, wait=False)
        return sent

    def _deliver_locked(self, max_messages: int) -> int:
        sent = handled = 0
        while handled < max_messages:
            claimed = self._claim()
            if not claimed:
                break
            # A lane moves on when its head is sent or given up on; a head waiting to retry blocks it.
            outcomes = [self._deliver_one(message_id) for message_id in claimed]
            sent += outcomes.count(Outcome.SENT)
            finished = len(outcomes) - outcomes.count(Outcome.RETRY)
            handled += finished
            if finished == 0:
                break
        return sent

    # --- claiming -------------------------------------------------------------------------------------------

    def _claim(self) -> list[int]:
        now = self.clock.now()
        earlier = aliased(OutboxMessage)
        blocked_by_earlier = (
            select(earlier.id)
            .where(
                and_(
                    earlier.incident_id == OutboxMessage.incident_id,
                    earlier.lane == OutboxMessage.lane,
                    earlier.state == OutboxState.PENDING.value,
                    earlier.id < OutboxMessage.id,
                )
            )
            .exists()
        )
        statement = (
            select(OutboxMessage.id)
            .where(
                OutboxMessage.state == OutboxState.PENDING.value,
                OutboxMessage.next_attempt_at <= now,
                (OutboxMessage.locked_until.is_(None)) | (OutboxMessage.locked_until < now),
                ~blocked_by_earlier,
            )
            .order_by(OutboxMessage.id)
            .limit(self.batch)
            .with_for_update(skip_locked=True, of=OutboxMessage)
        )
        with transaction(self.sessions) as session:
            ids = list(session.scalars(statement))
            if ids:
                session.execute(
                    update(OutboxMessage)
                    .where(OutboxMessage.id.in_(ids))
                    .values(locked_until=now + self.lease, locked_by=self.worker_id)
                )
        return ids

    # --- sending --------------------------------------------------------------------------------------------

    def _deliver_one(self, message_id: int) -> Outcome:
        with self.sessions() as session:
            message = session.get(OutboxMessage, message_id)
            incident = session.get(Incident, message.incident_id) if message else None
        if message is None or incident is None or message.locked_by != self.worker_id:
            return Outcome.RETRY  # someone else holds it now
        try:
            result = self._senders[message.kind](message, incident)
        except RetryLater as later:
            self._reschedule(message, later)
            return Outcome.RETRY
        except PermanentFailure as failure:
            self._fail(message, incident, str(failure))
            return Outcome.FAILED
        self._mark_sent(message, incident, result)
        return Outcome.SENT

    def _still_mine(self, message: OutboxMessage) -> tuple[Any, ...]:
        """Bookkeeping applies only while this worker holds the lease, so a slow holder never overwrites a
        replica that took the message over after the lease ran out."""
        return (
            OutboxMessage.id == message.id,
            OutboxMessage.locked_by == self.worker_id,
            OutboxMessage.state == OutboxState.PENDING.value,
        )

    def _mark_sent(self, message: OutboxMessage, incident: Incident, result: dict[str, Any]) -> None:
        now = self.clock.now()
        with transaction(self.sessions) as session:
            marked = session.execute(
                update(OutboxMessage)
                .where(*self._still_mine(message))
                .values(state=OutboxState.SENT.value, sent_at=now, result=result, locked_until=None)
            )
            if marked.rowcount == 0:  # another replica took it over; its bookkeeping wins
                log.warning("outbox %s was taken over by another worker while this one sent it", message.id)
                return
            if message.kind == "card_post":
                session.execute(
                    update(Incident)
                    .where(Incident.id == incident.id)
                    .values(channel_id=result["channel"], card_ts=result["ts"])
                )
            if message.kind == "action_card_post":
                session.execute(
                    update(ActionRequest.__table__)
                    .where(ActionRequest.id == result["action_id"])
                    .values(card_channel=result["channel"], card_ts=result["ts"])
                )
            record = message.payload.get("record") or _default_record(message, result)
            if record:
                session.add(
                    TimelineEvent(
                        incident_id=incident.id,
                        at=now,
                        actor=SYSTEM_ACTOR,
                        kind=record[0],
                        text=record[1],
                        data={"outbox_id": message.id, **result},
                    )
                )

    def _reschedule(self, message: OutboxMessage, later: RetryLater) -> None:
        attempts = message.attempts + 1
        if attempts >= MAX_ATTEMPTS:
            with self.sessions() as session:
                incident = session.get(Incident, message.incident_id)
            assert incident is not None
            self._fail(message, incident, f"gave up after {attempts} attempts: {later.reason}")
            return
        backoff = min(timedelta(seconds=2 ** min(attempts, 10)), MAX_BACKOFF)
        if later.retry_after is not None:
            backoff = max(backoff, later.retry_after)
        log.warning(
            "outbox %s (%s) failed (%s); retrying in %s", message.id, message.kind, later.reason, backoff
        )
        with transaction(self.sessions) as session:
            session.execute(
                update(OutboxMessage)
                .where(*self._still_mine(message))
                .values(
                    attempts=attempts,
                    next_attempt_at=self.clock.now() + backoff,
                    locked_until=None,
                    last_error=later.reason,
                )
            )

    def _fail(self, message: OutboxMessage, incident: Incident, reason: str) -> None:
        log.error("outbox %s (%s) for %s failed for good: %s", message.id, message.kind, incident.ref, reason)
        with transaction(self.sessions) as session:
            session.execute(
                update(OutboxMessage)
                .where(*self._still_mine(message))
                .values(state=OutboxState.FAILED.value, locked_until=None, last_error=reason)
            )
            session.add(
                TimelineEvent(
                    incident_id=incident.id,
                    at=self.clock.now(),
                    actor=SYSTEM_ACTOR,
                    kind="announcement_failed",
                    text=f"Could not deliver {message.kind.replace('_', ' ')}: {reason}",
                    data={"outbox_id": message.id, "kind": message.kind},
                )
            )

    # --- one sender per kind --------------------------------------------------------------------------------

    def _send_card_post(self, message: OutboxMessage, incident: Incident) -> dict[str, Any]:
        channel = str(message.payload["channel"])
        ts = _slack(lambda: self.announcer.post_card(incident, channel))
        return {"channel": channel, "ts": ts}

    def _send_card_refresh(self, message: OutboxMessage, incident: Incident) -> dict[str, Any]:
        _require_card(incident)
        _slack(lambda: self.announcer.refresh_card(incident))
        return {"ts": incident.card_ts}

    def _send_thread_note(self, message: OutboxMessage, incident: Incident) -> dict[str, Any]:
        _require_card(incident)
        text, blocks = str(message.payload["text"]), message.payload.get("blocks")
        ts = _slack(
            lambda: self.announcer.post(incident.channel_id or "", text, blocks, thread_ts=incident.card_ts)
        )
        return {"ts": ts}

    def _send_channel_post(self, message: OutboxMessage, incident: Incident) -> dict[str, Any]:
        if not incident.channel_id:
            raise PermanentFailure("the incident has no channel (its card was never posted)")
        ts = _slack(
            lambda: self.announcer.post(
                incident.channel_id or "", str(message.payload["text"]), message.payload.get("blocks")
            )
        )
        return {"channel": incident.channel_id, "ts": ts}

    def _send_dm(self, message: OutboxMessage, incident: Incident) -> dict[str, Any]:
        user = str(message.payload["user"])
        _slack(lambda: self.announcer.direct_message(user, str(message.payload["text"])))
        return {"user": user}

    def _action(
        self, message: OutboxMessage, incident: Incident
    ) -> tuple[ActionRequest, str, list[dict[str, Any]]]:
        with self.sessions() as session:
            action = session.get(ActionRequest, int(message.payload["action_id"]))
            if action is None:
                raise PermanentFailure("the remediation request no longer exists")
            text = rendering.action_card_text(action, incident)
            blocks = rendering.action_card_blocks(action, incident)
        return action, text, blocks

    def _send_action_card(self, message: OutboxMessage, incident: Incident) -> dict[str, Any]:
        _require_card(incident)
        action, text, blocks = self._action(message, incident)
        ts = _slack(
            lambda: self.announcer.post(incident.channel_id or "", text, blocks, thread_ts=incident.card_ts)
        )
        return {"action_id": action.id, "channel": incident.channel_id, "ts": ts}

    def _send_action_card_refresh(self, message: OutboxMessage, incident: Incident) -> dict[str, Any]:
        action, text, blocks = self._action(message, incident)
        if not action.card_channel or not action.card_ts:
            raise PermanentFailure("the approval card was never posted")
        _slack(lambda: self.announcer.update(action.card_channel or "", action.card_ts or "", text, blocks))
        return {"action_id": action.id}

    def _send_pagerduty(self, message: OutboxMessage, incident: Incident) -> dict[str, Any]:
        payload = message.payload
        page = PageRequest(
            routing_key=str(payload["routing_key"]),
            summary=str(payload["summary"]),
            dedup_key=str(payload["dedup_key"]),
            severity=str(payload["severity"]),
            custom_details=dict(payload.get("custom_details") or {}),
        )
        try:
            answer = self.pagerduty.trigger(page)
        except IntegrationError as error:
            if error.status is not None and error.status < 500 and error.status != 429:
                raise PermanentFailure(error.message) from error
            raise RetryLater(error.message) from error
        return {"dedup_key": answer.get("dedup_key", page.dedup_key), "status": answer.get("status")}


def _require_card(incident: Incident) -> None:
    if not incident.channel_id or not incident.card_ts:
        raise PermanentFailure("the incident card was never posted")


def _slack(call: Callable[[], T]) -> T:
    try:
        return call()
    except SlackApiError as error:
        response = error.response
        status = getattr(response, "status_code", 200)
        code = str(response.get("error", "unknown_error")) if response is not None else "unknown_error"
        if status == 429 or status >= 500 or code in RETRYABLE_SLACK_ERRORS:
            retry_after = response.headers.get("Retry-After") or response.headers.get("retry-after")
            wait = timedelta(seconds=int(retry_after)) if retry_after and str(retry_after).isdigit() else None
            raise RetryLater(f"Slack {status} {code}", wait) from error
        raise PermanentFailure(f"Slack refused: {code}") from error
    except (OSError, TimeoutError) as error:  # connection refused/reset, DNS, timeouts
        raise RetryLater(f"Slack unreachable: {error}") from error


def _default_record(message: OutboxMessage, result: dict[str, Any]) -> tuple[str, str] | None:
    if message.kind == "card_post":
        return ("announced", f"Initial notification posted to <#{result['channel']}>")
    if message.kind == "pagerduty":
        return ("paged", f"Paged via PagerDuty (dedup key {result.get('dedup_key')})")
    return None


def record_spec(kind: str, text: str) -> list[str]:
    """The `record` payload: a timeline entry written when the message is actually delivered."""
    return [kind, text]
