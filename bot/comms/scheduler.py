"""The tick: find reminders whose time has come and fire each exactly once; their posts go to the outbox.

The database is the schedule. Due rows (and their incidents) are claimed with `FOR UPDATE SKIP LOCKED`, so
several replicas ticking together each take different rows, and a row whose incident is being changed by a
person right now is simply picked up on the next tick. Firing happens in the claiming transaction: a crash
before commit leaves the reminder pending for the next tick; after commit the announcement sits in the outbox.
APScheduler only drives the periodic tick; there are no per-incident in-memory jobs.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from bot.comms.comms_records import Reminder, ReminderState
from bot.comms.delivery import DeliveryEngine
from bot.comms.reminders import ReminderHandlers
from bot.core.clock import Clock
from bot.core.database import among, bulk_rows, table_of, transaction
from bot.core.metrics import REMINDERS_FIRED, TICK_SECONDS
from bot.incidents.incident_records import Incident

log = logging.getLogger(__name__)


class ReminderFailed(Exception):
    def __init__(self, reminder_id: int) -> None:
        super().__init__(f"reminder {reminder_id} failed")
        self.reminder_id = reminder_id


@dataclass(frozen=True)
class TickResult:
    fired: int
    late: int


class Scheduler:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        handlers: ReminderHandlers,
        delivery: DeliveryEngine,
        clock: Clock,
        *,
        tick: timedelta,
        batch: int = 500,
    ) -> None:
        self.sessions = sessions
        self.handlers = handlers
        self.delivery = delivery
        self.clock = clock
        self.tick_interval = tick
        self.batch = batch
        # A reminder fired this much after its time was missed (TARS was down), and says so.
        self.late_after = max(2 * tick, timedelta(seconds=60))
        self._lock = threading.Lock()
        self._background: object | None = None

    def tick(self) -> TickResult:
        fired = late = 0
        with self._lock, TICK_SECONDS.time():
            while True:
                try:
                    count, late_count = self._fire_batch()
                except ReminderFailed as failed:
                    # Roll back the batch, set the one bad reminder aside, and go again: one broken row must
                    # never hold back every escalation and update behind it.
                    self._set_aside(failed.reminder_id, failed.__cause__)
                    continue
                fired += count
                late += late_count
                if count < self.batch:
                    break
        return TickResult(fired, late)

    def run_once(self) -> TickResult:
        """A tick, then wait until what it queued (and anything else due) is delivered."""
        result = self.tick()
        if not self.delivery.deliver_due():
            log.warning("posts queued by the tick are still being delivered")
        return result

    def _fire_batch(self) -> tuple[int, int]:
        now = self.clock.now()
        statement = (
            select(Reminder, Incident)
            .join(Incident, Incident.id == Reminder.incident_id)
            .where(Reminder.state == ReminderState.PENDING.value, Reminder.due_at <= now)
            .order_by(Reminder.due_at, Reminder.id)
            .limit(self.batch)
            .with_for_update(skip_locked=True)
        )
        late_ids: list[int] = []
        on_time_ids: list[int] = []
        incident_changes: dict[tuple[tuple[str, Any], ...], list[int]] = defaultdict(list)
        with transaction(self.sessions) as session, bulk_rows(session):
            dialect = session.get_bind().dialect
            rows = session.execute(statement).all()
            for reminder, incident in rows:
                late = now - reminder.due_at > self.late_after
                (late_ids if late else on_time_ids).append(reminder.id)
                try:
                    changes = self.handlers.fire(session, reminder, incident, now=now, late=late)
                except Exception as error:
                    raise ReminderFailed(reminder.id) from error
                REMINDERS_FIRED.labels(reminder.kind).inc()
                if changes:
                    incident_changes[tuple(sorted(changes.items()))].append(incident.id)
            # One statement per kind of change instead of one per row keeps the tick's cost flat.
            for ids, late in ((on_time_ids, False), (late_ids, True)):
                if ids:
                    session.execute(
                        # The table, not the entity: no ORM bookkeeping for rows this session will not touch again.
                        update(table_of(Reminder))
                        .where(among(table_of(Reminder).c.id, ids, dialect))
                        .values(state=ReminderState.DONE.value, done_at=now, late=late)
                    )
            for change, incident_ids in incident_changes.items():
                # Core, not ORM: these columns are TARS's own bookkeeping, so they do not bump the version that
                # guards people's concurrent edits. Reminders fired together share `now`, so this is one statement.
                session.execute(
                    update(table_of(Incident))
                    .where(among(table_of(Incident).c.id, incident_ids, dialect))
                    .values(dict(change))
                )
        return len(rows), len(late_ids)

    def _set_aside(self, reminder_id: int, error: BaseException | None) -> None:
        log.error("reminder %s failed and was set aside", reminder_id, exc_info=error)
        with transaction(self.sessions) as session:
            session.execute(
                update(table_of(Reminder))
                .where(table_of(Reminder).c.id == reminder_id)
                .values(state=ReminderState.FAILED.value, done_at=self.clock.now())
            )

    # --- the background driver ------------------------------------------------------------------------------

    def start(self) -> None:
        from apscheduler.schedulers.background import BackgroundScheduler

        background = BackgroundScheduler(timezone=UTC)
        background.add_job(
            self._run_safely,
            "interval",
            seconds=self.tick_interval.total_seconds(),
            next_run_time=datetime.now(UTC),  # catch up at once with whatever became due while we were down
            max_instances=1,
            coalesce=True,
            id="tars-tick",
        )
        background.start()
        self._background = background

    def stop(self) -> None:
        if self._background is not None:
            self._background.shutdown(wait=True)  # type: ignore[attr-defined]
            self._background = None

    def _run_safely(self) -> None:
        try:
            result = self.tick()
            self.delivery.wake()
            if result.fired:
                log.debug("tick fired %d reminders (%d late)", result.fired, result.late)
        except Exception:  # a bad tick must not stop the next one
            log.exception("scheduler tick failed")
