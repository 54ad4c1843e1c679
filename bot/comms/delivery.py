"""The delivery engine: committed outbox rows out to Slack and PagerDuty, on workers of its own.

- Woken when rows are committed (in this process directly, other replicas by Postgres NOTIFY; polling is the
  fallback), never driven by a listener thread.
- Lanes (an incident's card, its channel posts and thread, its pages) go out in parallel; within a lane the order
  is the order of commits. Lanes compete for Slack's rate budget by priority: declarations, escalations and pages
  first, thread notes last.
- Queued refreshes of one card collapse into one chat.update with the newest state; consecutive thread notes of an
  incident go out as one message.
- Exactly once: every post carries message metadata naming its outbox id. A post whose outcome is unknown (timeout,
  connection reset, 5xx, or a lease that ran out under another worker) is looked for in the channel before it is
  sent again.
- Leases are short and renewed while work is in flight, so a worker that died is taken over within one lease.
  Bookkeeping that fails because the database is gone is kept in memory and retried before anything else.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any, Protocol, TypeVar

from sqlalchemy import Engine, Select, and_, bindparam, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from bot.comms.comms_records import OutboxMessage, OutboxState
from bot.comms.outbox import CARD_LANE, CHANNEL_LANE, NOTIFY_CHANNEL
from bot.comms.slack_budget import Key, SlackBudget, method_key, post_key
from bot.core.clock import Clock
from bot.core.database import UTCDateTime, autocommit, reading, rows_changed, table_of, transaction
from bot.core.logs import about
from bot.incidents.incident_records import Incident

log = logging.getLogger(__name__)

T = TypeVar("T")

SYSTEM_ACTOR = "tars"
MAX_ATTEMPTS = 60
MAX_BACKOFF = timedelta(minutes=5)
# Short thread notes queued together go out as one message, within this much text; a long one (a post-mortem
# draft) stands alone.
NOTE_GROUP_LIMIT = 10
NOTE_GROUP_CHARS = 2_800
SHORT_NOTE = 400

# Slack errors that mean "not done, try again later"; a 5xx or a dropped connection may have been done.
RETRYABLE_SLACK_ERRORS = {
    "ratelimited",
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
}
POST_KINDS = {
    "card_post",
    "thread_note",
    "channel_post",
    "scheduled_update",
    "triage_post",
    "action_card_post",
    "dm",
    "thread_file",
}

_OUTBOX = table_of(OutboxMessage)
_INCIDENTS = table_of(Incident)


class PermanentFailure(Exception):
    """Retrying cannot help (e.g. channel_not_found)."""


@dataclass
class RetryLater(Exception):
    reason: str
    retry_after: timedelta | None = None
    # True when the call may have been carried out (timeout, reset, 5xx): look before sending again.
    uncertain: bool = False
    rate_limited: bool = False


@dataclass(frozen=True)
class Work:
    """A lane's head, leased by this worker."""

    id: int
    incident_id: int | None  # None: a triage card, which belongs to no incident yet
    lane: str
    kind: str
    attempts: int
    channel_id: str | None
    card_ts: str | None
    # Someone sent this before without recording the outcome: it may already be in Slack.
    check_first: bool
    # The payload's channel or user, which the Slack budget is kept by.
    target: str | None
    # Read when the row is leased: the candidate query leaves it out, since most candidates wait for the budget.
    payload: dict[str, Any] = field(default_factory=dict)


# At most one dispatcher pass per gap: far below Slack's own pace (about one post per second per channel).
MIN_PASS_GAP_SECONDS = 0.1


@dataclass
class Group:
    """The head and the rows that go out with it."""

    head: Work
    rows: list[tuple[int, dict[str, Any]]] = field(default_factory=list)

    @property
    def ids(self) -> list[int]:
        return [row_id for row_id, _payload in self.rows]


# Carries out one lane's head (and what was coalesced with it); returns the result to store. Raises RetryLater or
# PermanentFailure.
Sender = Callable[[Group], dict[str, Any]]


class TimelineWriter(Protocol):
    """The incidents domain's timeline, where delivery records what went out and what failed for good."""

    def __call__(
        self, session: Session, incident_id: int, *, actor: str, kind: str, text: str, data: dict[str, Any]
    ) -> object: ...


# What a domain does, in the bookkeeping transaction, once one of its posts is in Slack (e.g. remember the ts).
AfterSent = Callable[[Session, int | None, dict[str, Any]], None]


class DeliveryEngine:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        senders: Mapping[str, Sender],
        clock: Clock,
        timeline: TimelineWriter,
        *,
        budget: SlackBudget | None = None,
        workers: int = 4,
        # Short, and renewed every third of it while a post is in flight: a replica that died is taken over
        # within seconds, and a slow Slack call never loses its lease to a live worker.
        lease: timedelta = timedelta(seconds=6),
        poll_seconds: float = 1.0,
        worker_id: str | None = None,
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.timeline = timeline
        self._after_sent: dict[str, AfterSent] = {}
        self.budget = budget or SlackBudget()
        self.workers = workers
        self.lease = lease
        self.poll_seconds = poll_seconds
        self.worker_id = worker_id or f"tars-{uuid.uuid4().hex[:8]}"
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tars-delivery")
        # Reads and one-statement bookkeeping, without BEGIN and COMMIT around each.
        self._statements = autocommit(sessions.kw["bind"])
        self._candidate_query = _candidate_query(4 * workers + 20)
        self._state = threading.Condition()
        self._wake = threading.Event()
        self._in_flight: dict[tuple[int | None, str], int] = {}
        self._unrecorded: list[Callable[[], None]] = []
        self._passes = 0
        # Pieces of work finished so far: a pass is idle only if none finished while it looked, because a
        # finished head can unblock the next message of its lane after the pass's query ran.
        self._finished = 0
        self._idle_pass = -1
        self._stopping = False
        self._threads: list[threading.Thread] = []
        self._last_renewal = 0.0
        self._database_down_logged = False
        # Registered kinds: work of their own, not Slack posts that Slack's budget paces.
        self._unpaced: set[str] = set()
        self._senders: dict[str, Sender] = dict(senders)

    def register(self, kind: str, run: Callable[[int, dict[str, Any]], dict[str, Any]]) -> None:
        """Carry out outbox rows of `kind` with `run(incident_id, payload)`, which returns the result to store.
        It may raise RetryLater or PermanentFailure like any sender."""
        self._senders[kind] = lambda group: run(_incident_of(group.head), group.head.payload)
        self._unpaced.add(kind)

    def after_sent(self, kind: str, hook: AfterSent) -> None:
        """Run `hook(session, incident_id, result)` in the transaction that marks a `kind` row sent."""
        self._after_sent[kind] = hook

    # --- running ----------------------------------------------------------------------------------------------

    def wake(self) -> None:
        self._wake.set()

    @property
    def running(self) -> bool:
        return bool(self._threads)

    def start(self, *, listen: Engine | None = None) -> None:
        """Deliver in the background; with a Postgres engine, also wake on other replicas' commits."""
        self._stopping = False
        self._threads = [threading.Thread(target=self._run, name="tars-delivery-dispatch", daemon=True)]
        if listen is not None and listen.dialect.name == "postgresql":
            self._threads.append(
                threading.Thread(
                    target=self._listen, args=(listen,), name="tars-delivery-listen", daemon=True
                )
            )
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Take no new work, let what is in flight finish (or give it up after `timeout`), record outcomes."""
        self._stopping = True
        self.wake()
        deadline = time.monotonic() + timeout
        with self._state:
            while self._in_flight and time.monotonic() < deadline:
                self._state.wait(timeout=max(0.0, deadline - time.monotonic()))
            unfinished = list(self._in_flight.values())
        self._record_outstanding()
        if unfinished:
            log.warning("stopped with %d posts in flight; another worker will check them", len(unfinished))
        # The LISTEN thread notices the stop within its one-second wait and exits on its own.
        self._threads[0].join(timeout=2) if self._threads else None
        self._threads = []
        self._pool.shutdown(wait=False, cancel_futures=True)

    def deliver_due(self, timeout: float = 30.0) -> bool:
        """Wait until nothing due is left to send (tests, benchmarks and the sandbox use this to know the work a
        request started is finished). Without background threads, the caller's thread drives the passes."""
        deadline = time.monotonic() + timeout
        if self.running:
            with self._state:
                wanted = self._passes + 1
            self.wake()
            with self._state:
                while self._idle_pass < wanted and time.monotonic() < deadline:
                    self._state.wait(timeout=0.05)
                    if self._idle_pass < wanted:
                        self.wake()
                return self._idle_pass >= wanted
        while time.monotonic() < deadline:
            idle, wait = self._pass()
            if idle:
                return True
            self._wake.wait(timeout=min(max(wait, 0.01), 0.2))
            self._wake.clear()
        return False

    def _run(self) -> None:
        last_pass = 0.0
        while not (self._stopping and not self._in_flight):
            # Under a burst every commit wakes the dispatcher; one pass per gap sees all of them at once, and
            # the candidate query is the costliest statement TARS runs.
            since = time.monotonic() - last_pass
            if since < MIN_PASS_GAP_SECONDS:
                time.sleep(MIN_PASS_GAP_SECONDS - since)
            last_pass = time.monotonic()
            try:
                _idle, wait = self._pass()
            except Exception:  # the dispatcher must outlive any one bad pass
                log.exception("delivery pass failed")
                wait = self.poll_seconds
            self._wake.wait(timeout=min(wait, self.poll_seconds))
            self._wake.clear()

    def _listen(self, engine: Engine) -> None:
        import psycopg

        args = engine.url.translate_connect_args(username="user", database="dbname")
        while not self._stopping:
            try:
                with psycopg.connect(autocommit=True, connect_timeout=5, **args) as connection:
                    connection.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    while not self._stopping:
                        for _note in connection.notifies(timeout=1.0):
                            self.wake()
            except Exception:  # the database blinked; polling covers the gap until LISTEN is back
                log.debug("LISTEN connection lost", exc_info=True)
                time.sleep(1.0)

    # --- one pass of the dispatcher -----------------------------------------------------------------------------

    def _pass(self) -> tuple[bool, float]:
        """Record outcomes, renew leases, hand lane heads to free workers. Returns (idle, seconds to wait)."""
        with self._state:
            self._passes += 1
            this_pass = self._passes
        if not self._record_outstanding():
            return False, self.poll_seconds
        self._renew_leases()
        if self._stopping:
            return not self._in_flight, self.poll_seconds
        with self._state:
            free = self.workers - len(self._in_flight)
            busy_lanes = set(self._in_flight)
            finished_before = self._finished
        wait = self.poll_seconds
        candidates: list[Work] = []
        if free > 0:
            try:
                candidates = self._candidates()
                self._database_down_logged = False
            except Exception:
                self._log_database_down()
                return False, self.poll_seconds
        chosen: list[tuple[Work, list[Key]]] = []
        for work in candidates:
            if len(chosen) >= free:
                break
            if (work.incident_id, work.lane) in busy_lanes:
                continue
            keys = self._budget_keys(work)
            need = self.budget.try_take(keys)
            if need > 0:
                wait = min(wait, need)
                continue
            chosen.append((work, keys))
            busy_lanes.add((work.incident_id, work.lane))
        leased = self._lease([work.id for work, _keys in chosen]) if chosen else {}
        for work, keys in chosen:
            if work.id not in leased:
                self.budget.give_back(keys)
                continue
            with self._state:
                self._in_flight[(work.incident_id, work.lane)] = work.id
            self._pool.submit(self._work, replace(work, payload=leased[work.id]))
        with self._state:
            idle = (
                not candidates
                and not self._in_flight
                and not self._unrecorded
                and self._finished == finished_before
            )
            if idle:
                self._idle_pass = this_pass
                self._state.notify_all()
        return idle, (0.0 if len(chosen) == free and free > 0 else wait)

    def _candidates(self) -> list[Work]:
        with self._statements.connect() as connection:
            rows = connection.execute(self._candidate_query, {"now": self.clock.now()}).all()
        return [
            Work(
                id=row.id,
                incident_id=row.incident_id,
                lane=row.lane,
                kind=row.kind,
                target=row.target,
                attempts=row.attempts,
                channel_id=row.channel_id,
                card_ts=row.card_ts,
                check_first=row.locked_by is not None and row.kind in POST_KINDS,
            )
            for row in rows
        ]

    def _budget_keys(self, work: Work) -> list[Key]:
        kind = work.kind
        if kind in ("card_post", "triage_post"):
            keys = [post_key(str(work.target))]
        elif kind in ("card_refresh", "action_card_refresh", "triage_refresh"):
            keys = [method_key("chat.update")]
        elif kind == "dm":
            keys = [post_key(f"dm:{work.target}"), method_key("conversations.open")]
        elif kind == "pagerduty" or kind in self._unpaced:
            keys = []
        elif kind == "thread_file":
            keys = [method_key("files.getUploadURLExternal"), method_key("files.completeUploadExternal")]
        else:
            keys = [post_key(work.channel_id or "")]
        if work.check_first:
            keys.append(method_key("conversations.replies" if kind in _THREADED else "conversations.history"))
        return keys

    def _lease(self, ids: list[int]) -> dict[int, dict[str, Any]]:
        """The rows this worker now holds, with their payloads."""
        now = self.clock.now()
        statement = (
            update(_OUTBOX)
            .where(
                _OUTBOX.c.id.in_(ids),
                _OUTBOX.c.state == OutboxState.PENDING.value,
                or_(_OUTBOX.c.locked_until.is_(None), _OUTBOX.c.locked_until < now),
            )
            .values(locked_until=now + self.lease, locked_by=self.worker_id)
            .returning(_OUTBOX.c.id, _OUTBOX.c.payload)
        )
        try:
            with self._statements.connect() as connection:
                return {row.id: dict(row.payload or {}) for row in connection.execute(statement)}
        except Exception:
            self._log_database_down()
            return {}

    def _renew_leases(self) -> None:
        if time.monotonic() - self._last_renewal < self.lease.total_seconds() / 3:
            return
        with self._state:
            ids = list(self._in_flight.values())
        self._last_renewal = time.monotonic()
        if not ids:
            return
        try:
            with self._statements.connect() as connection:
                connection.execute(
                    update(_OUTBOX)
                    .where(_OUTBOX.c.id.in_(ids), _OUTBOX.c.locked_by == self.worker_id)
                    .values(locked_until=self.clock.now() + self.lease)
                )
        except Exception:
            self._log_database_down()

    def _record_outstanding(self) -> bool:
        """Retry bookkeeping that failed while the database was away; True when none is left."""
        with self._state:
            outstanding, self._unrecorded = self._unrecorded, []
        for index, record in enumerate(outstanding):
            try:
                record()
            except Exception:
                self._log_database_down()
                with self._state:
                    self._unrecorded[:0] = outstanding[index:]
                return False
        return True

    def _log_database_down(self) -> None:
        if not self._database_down_logged:
            log.warning("delivery cannot reach the database; retrying", exc_info=True)
            self._database_down_logged = True

    # --- one piece of work, on a worker thread ------------------------------------------------------------------

    def _work(self, work: Work) -> None:
        try:
            with about(incident=f"INC-{work.incident_id}" if work.incident_id is not None else None):
                self._deliver(work)
        except Exception:  # a worker must always free its lane
            log.exception("delivering outbox %s (%s) failed", work.id, work.kind)
        finally:
            with self._state:
                self._in_flight.pop((work.incident_id, work.lane), None)
                self._finished += 1
                self._state.notify_all()
            self.wake()

    def _deliver(self, work: Work) -> None:
        try:
            group = self._group(work)
        except Exception:
            self._log_database_down()
            self._later(lambda: self._release(work))
            return
        try:
            result = self._senders[work.kind](group)
        except RetryLater as later:
            retry = later
            if retry.rate_limited and retry.retry_after is not None:
                for key in self._budget_keys(work):
                    self.budget.close_for(key, retry.retry_after.total_seconds())
            self._later(lambda: self._reschedule(work, retry))
            return
        except PermanentFailure as failure:
            reason = str(failure)
            self._later(lambda: self._fail(work, reason))
            return
        self._later(lambda: self._mark_sent(group, result))

    def _later(self, record: Callable[[], None]) -> None:
        """Run bookkeeping now; if the database is away, keep it for the dispatcher to retry first thing."""
        try:
            record()
        except Exception:
            self._log_database_down()
            with self._state:
                self._unrecorded.append(record)

    def _group(self, work: Work) -> Group:
        group = Group(work, [(work.id, work.payload)])
        mergeable = work.kind == "card_refresh" or (
            work.kind == "thread_note" and not work.payload.get("blocks")
        )
        if not mergeable:
            return group
        statement = (
            select(_OUTBOX.c.id, _OUTBOX.c.kind, _OUTBOX.c.payload)
            .where(
                _OUTBOX.c.incident_id == work.incident_id,
                _OUTBOX.c.lane == work.lane,
                _OUTBOX.c.state == OutboxState.PENDING.value,
                _OUTBOX.c.id > work.id,
            )
            .order_by(_OUTBOX.c.id)
            .limit(NOTE_GROUP_LIMIT if work.kind == "thread_note" else 200)
        )
        with reading(self.sessions) as session:
            following = session.execute(statement).all()
        chars = len(str(work.payload.get("text", "")))
        for row in following:
            payload = dict(row.payload or {})
            if row.kind != work.kind or (work.kind == "thread_note" and not _short_note(row.kind, payload)):
                break
            if work.kind == "thread_note":
                chars += len(str(payload.get("text", ""))) + 1
                if chars > NOTE_GROUP_CHARS or len(group.rows) >= NOTE_GROUP_LIMIT:
                    break
            group.rows.append((row.id, payload))
        return group

    # --- bookkeeping (fenced on this worker's lease) ----------------------------------------------------------

    def _mine(self, message_id: int) -> tuple[Any, ...]:
        return (
            _OUTBOX.c.id == message_id,
            _OUTBOX.c.locked_by == self.worker_id,
            _OUTBOX.c.state == OutboxState.PENDING.value,
        )

    def _mark_sent(self, group: Group, result: dict[str, Any]) -> None:
        work = group.head
        now = self.clock.now()
        with transaction(self.sessions) as session:
            marked = session.execute(
                update(_OUTBOX)
                .where(*self._mine(work.id))
                .values(state=OutboxState.SENT.value, sent_at=now, result=result, locked_until=None)
            )
            if rows_changed(marked) == 0:  # another worker took it over; its bookkeeping wins
                log.warning("outbox %s was taken over by another worker while this one sent it", work.id)
                return
            others = group.ids[1:]
            if others:
                session.execute(
                    update(_OUTBOX)
                    .where(_OUTBOX.c.id.in_(others), _OUTBOX.c.state == OutboxState.PENDING.value)
                    .values(
                        state=OutboxState.SENT.value,
                        sent_at=now,
                        result={"sent_with": work.id},
                        locked_until=None,
                    )
                )
            after_sent = self._after_sent.get(work.kind)
            if after_sent is not None:
                after_sent(session, work.incident_id, result)
            for row_id, payload in group.rows:
                record = payload.get("record") or _default_record(work.kind, result)
                if record and work.incident_id is not None:
                    self.timeline(
                        session,
                        work.incident_id,
                        actor=SYSTEM_ACTOR,
                        kind=record[0],
                        text=record[1],
                        data={"outbox_id": row_id, **result},
                    )

    def _release(self, work: Work) -> None:
        with self._statements.connect() as connection:
            connection.execute(update(_OUTBOX).where(*self._mine(work.id)).values(locked_until=None))

    def _reschedule(self, work: Work, later: RetryLater) -> None:
        attempts = work.attempts + 1
        if attempts >= MAX_ATTEMPTS:
            self._fail(work, f"gave up after {attempts} attempts: {later.reason}")
            return
        backoff = min(timedelta(seconds=2 ** min(attempts, 10)), MAX_BACKOFF)
        if later.retry_after is not None:
            backoff = max(backoff, later.retry_after)
        log.warning("outbox %s (%s) failed (%s); retrying in %s", work.id, work.kind, later.reason, backoff)
        with self._statements.connect() as connection:
            connection.execute(
                update(_OUTBOX)
                .where(*self._mine(work.id))
                .values(
                    attempts=attempts,
                    next_attempt_at=self.clock.now() + backoff,
                    locked_until=None,
                    # Kept when Slack may have taken the post, so whoever tries next looks for it first.
                    locked_by=self.worker_id if later.uncertain or work.check_first else None,
                    last_error=later.reason,
                )
            )

    def _fail(self, work: Work, reason: str) -> None:
        log.error(
            "outbox %s (%s) for INC-%s failed for good: %s", work.id, work.kind, work.incident_id, reason
        )
        with transaction(self.sessions) as session:
            failed = session.execute(
                update(_OUTBOX)
                .where(*self._mine(work.id))
                .values(state=OutboxState.FAILED.value, locked_until=None, last_error=reason)
            )
            if rows_changed(failed) == 0 or work.incident_id is None:
                return
            self.timeline(
                session,
                work.incident_id,
                actor=SYSTEM_ACTOR,
                kind="announcement_failed",
                text=f"Could not deliver {work.kind.replace('_', ' ')}: {reason}",
                data={"outbox_id": work.id, "kind": work.kind},
            )


def _candidate_query(limit: int) -> Select[Any]:
    """Lane heads that are due and not leased, most urgent first. Built once: building it costs more than
    running it.

    The heads are found first (the lowest pending id of each lane, from the pending-lane index), and only they are
    looked at further: a backlog waiting for Slack's budget costs the query one index entry per row.
    """
    now = bindparam("now", type_=UTCDateTime())
    pending = OutboxState.PENDING.value
    heads = (
        select(func.min(_OUTBOX.c.id).label("id"))
        .where(_OUTBOX.c.state == pending)
        .group_by(_OUTBOX.c.incident_id, _OUTBOX.c.lane)
        .subquery("heads")
    )
    # Thread notes and channel posts need the card (its ts and channel) to be out first.
    card = _OUTBOX.alias("pending_card")
    waiting_for_card = (
        select(card.c.id)
        .where(
            card.c.incident_id == _OUTBOX.c.incident_id,
            card.c.lane == CARD_LANE,
            card.c.kind == "card_post",
            card.c.state == pending,
        )
        .exists()
    )
    return (
        select(
            _OUTBOX.c.id,
            _OUTBOX.c.incident_id,
            _OUTBOX.c.lane,
            _OUTBOX.c.kind,
            func.coalesce(
                _OUTBOX.c.payload["channel"].as_string(), _OUTBOX.c.payload["user"].as_string()
            ).label("target"),
            _OUTBOX.c.attempts,
            _OUTBOX.c.locked_by,
            _INCIDENTS.c.channel_id,
            _INCIDENTS.c.card_ts,
        )
        .join(heads, heads.c.id == _OUTBOX.c.id)
        .outerjoin(_INCIDENTS, _INCIDENTS.c.id == _OUTBOX.c.incident_id)
        .where(
            _OUTBOX.c.next_attempt_at <= now,
            or_(_OUTBOX.c.locked_until.is_(None), _OUTBOX.c.locked_until < now),
            ~and_(_OUTBOX.c.lane == CHANNEL_LANE, waiting_for_card),
        )
        .order_by(_OUTBOX.c.priority, _OUTBOX.c.id)
        .limit(limit)
    )


def _incident_of(work: Work) -> int:
    if work.incident_id is None:
        raise PermanentFailure(f"{work.kind} needs an incident and this row names none")
    return work.incident_id


# Kinds posted into a card's thread: an uncertain one is looked for with conversations.replies.
_THREADED = {"thread_note", "action_card_post", "thread_file"}


def _short_note(kind: str, payload: dict[str, Any]) -> bool:
    return (
        kind == "thread_note"
        and not payload.get("blocks")
        and len(str(payload.get("text", ""))) <= SHORT_NOTE
    )


def _default_record(kind: str, result: dict[str, Any]) -> tuple[str, str] | None:
    if kind == "card_post":
        return ("announced", f"Initial notification posted to <#{result['channel']}>")
    if kind == "pagerduty" and result.get("status") == "dry_run":
        return (
            "paged",
            f"DRY RUN: would have paged via PagerDuty (dedup key {result.get('dedup_key')}); nothing was sent",
        )
    if kind == "pagerduty":
        return ("paged", f"Paged via PagerDuty (dedup key {result.get('dedup_key')})")
    return None
