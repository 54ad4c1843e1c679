"""When TARS speaks without being asked: update cadence, escalation, post-resolution reminders.

`Planner` decides what becomes due (rows in `reminders`), called from the incident rules inside the same
transaction as the change. `ReminderHandlers` decides what to say when a reminder fires. Neither sends
anything itself: both write to the outbox, which delivers.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from bot.comms.comms_records import Reminder, ReminderState
from bot.comms.outbox import Outbox
from bot.comms.paging import Pager
from bot.core.clock import Clock
from bot.core.database import rows_for, table_of
from bot.core.settings import PolicyConfig, ServiceConfig
from bot.incidents.incident_records import Incident, TimelineEvent
from bot.remediation.action_records import ActionRequest, ActionState
from bot.slack import rendering


class ReminderKind(StrEnum):
    UPDATE = "update"
    ESCALATION = "escalation"
    POSTMORTEM = "postmortem"
    CUSTOM = "custom"
    ACTION_EXPIRY = "action_expiry"
    VALIDATION = "validation"  # TARS checks a fix against the metrics itself (+5 and +10 minutes)


_REMINDERS = table_of(Reminder)
# The table, not the entity: the session holds no reminders to keep in step, and the ORM's synchronisation would
# cost more than the UPDATE itself on every command.
_CANCEL = (
    update(_REMINDERS)
    .where(
        _REMINDERS.c.incident_id == bindparam("incident"),
        _REMINDERS.c.kind.in_(bindparam("kinds", expanding=True)),
        _REMINDERS.c.state == ReminderState.PENDING.value,
    )
    .values(state=ReminderState.CANCELLED.value, done_at=bindparam("now", type_=_REMINDERS.c.done_at.type))
)


class Planner:
    def __init__(
        self, clock: Clock, policy: PolicyConfig, services: dict[str, ServiceConfig], outbox: Outbox
    ) -> None:
        self.clock = clock
        self.policy = policy
        self.services = services
        self.outbox = outbox

    # --- primitives -----------------------------------------------------------------------------------------

    def schedule(
        self,
        session: Session,
        incident_id: int,
        kind: ReminderKind,
        due_at: datetime,
        payload: dict[str, Any] | None = None,
    ) -> None:
        row = {
            "incident_id": incident_id,
            "kind": kind.value,
            "due_at": due_at,
            "payload": payload or {},
            "state": ReminderState.PENDING.value,
            "created_at": self.clock.now(),
            "late": False,
        }
        rows_for(session).add(_REMINDERS, row)

    def cancel(self, session: Session, incident_id: int, *kinds: ReminderKind) -> None:
        session.connection().execute(
            _CANCEL, {"incident": incident_id, "kinds": [k.value for k in kinds], "now": self.clock.now()}
        )

    def remind_at(
        self,
        session: Session,
        incident: Incident,
        due_at: datetime,
        text: str,
        mentions: list[str] | None = None,
    ) -> None:
        """The generic facility: at `due_at`, post `text` in the incident's thread, mentioning `mentions`."""
        self.schedule(
            session, incident.id, ReminderKind.CUSTOM, due_at, {"text": text, "mentions": mentions or []}
        )

    # --- reactions to incident changes ----------------------------------------------------------------------

    def on_declared(self, session: Session, incident: Incident) -> None:
        self._plan_update(session, incident, since=incident.declared_at)
        deadline = self.policy.ack_deadline.for_severity(incident.severity)
        if deadline is not None and self.policy.max_escalations > 0:
            self.schedule(
                session, incident.id, ReminderKind.ESCALATION, incident.declared_at + deadline, {"level": 1}
            )

    def on_acknowledged(self, session: Session, incident: Incident) -> None:
        self.cancel(session, incident.id, ReminderKind.ESCALATION)

    def on_first_update(self, session: Session, incident: Incident) -> None:
        """The first 📊 update of a P1 or P2 carries the error-rate chart, when the service has metrics."""
        service = self.services.get(incident.service)
        if incident.severity <= 2 and service is not None and service.metrics is not None:
            self.outbox.observe_job(session, incident, {"job": "chart", "purpose": "update"})

    def on_manual_update(self, session: Session, incident: Incident) -> None:
        self.cancel(session, incident.id, ReminderKind.UPDATE)
        self._plan_update(session, incident, since=self.clock.now())

    def on_severity_changed(self, session: Session, incident: Incident) -> None:
        self.cancel(session, incident.id, ReminderKind.UPDATE)
        self._plan_update(session, incident, since=incident.last_update_at or incident.declared_at)
        if incident.acknowledged_at is None:
            self.cancel(session, incident.id, ReminderKind.ESCALATION)
            deadline = self.policy.ack_deadline.for_severity(incident.severity)
            level = incident.escalations + 1
            if deadline is not None and level <= self.policy.max_escalations:
                due = max(incident.declared_at + deadline * level, self.clock.now())
                self.schedule(session, incident.id, ReminderKind.ESCALATION, due, {"level": level})

    def on_resolved(self, session: Session, incident: Incident) -> None:
        self.cancel(
            session,
            incident.id,
            ReminderKind.UPDATE,
            ReminderKind.ESCALATION,
            ReminderKind.ACTION_EXPIRY,
            ReminderKind.VALIDATION,
        )
        # A remediation still waiting for approval must not run against a resolved incident.
        pending = session.scalars(
            select(ActionRequest).where(
                ActionRequest.incident_id == incident.id, ActionRequest.state == ActionState.PENDING.value
            )
        ).all()
        for action in pending:
            action.state = ActionState.EXPIRED.value
            action.decided_at = self.clock.now()
            action.result = {"ok": False, "summary": f"retired: {incident.ref} was resolved"}
            self.outbox.refresh_action_card(session, incident, action.id)
        if incident.postmortem_due_at is not None:
            day_before = incident.postmortem_due_at - timedelta(hours=24)
            if day_before > self.clock.now():
                self.schedule(
                    session, incident.id, ReminderKind.POSTMORTEM, day_before, {"stage": "day_before"}
                )
            self.schedule(
                session, incident.id, ReminderKind.POSTMORTEM, incident.postmortem_due_at, {"stage": "due"}
            )
        if self.customer_notification_needed(incident):
            self.outbox.channel_post(
                session,
                incident,
                rendering.customer_notification_text(incident),
                record=["customer_notification_reminder", "Reminded to notify affected customers"],
            )

    def customer_notification_needed(self, incident: Incident) -> bool:
        if incident.severity == 1:
            return True
        users = incident.users_affected or 0
        return incident.severity == 2 and users > self.policy.customer_notification_min_users

    def _plan_update(self, session: Session, incident: Incident, *, since: datetime) -> None:
        interval = self.policy.update_interval.for_severity(incident.severity)
        if interval is None:
            return
        self.schedule(session, incident.id, ReminderKind.UPDATE, max(since + interval, self.clock.now()))


class ReminderHandlers:
    """What to say when a reminder fires; runs inside the scheduler's claiming transaction.

    Handlers queue announcements and next reminders, and return the incident columns to change rather than
    setting them, so the scheduler can write a whole batch in one statement.
    """

    def __init__(self, planner: Planner, pager: Pager, outbox: Outbox) -> None:
        self.planner = planner
        self.pager = pager
        self.outbox = outbox
        self.policy = planner.policy
        self.services = planner.services

    def fire(
        self, session: Session, reminder: Reminder, incident: Incident, *, now: datetime, late: bool
    ) -> dict[str, Any]:
        handler = {
            ReminderKind.UPDATE.value: self._update,
            ReminderKind.ESCALATION.value: self._escalate,
            ReminderKind.POSTMORTEM.value: self._postmortem,
            ReminderKind.CUSTOM.value: self._custom,
            ReminderKind.ACTION_EXPIRY.value: self._expire_action,
            ReminderKind.VALIDATION.value: self._validate,
        }.get(reminder.kind)
        if handler is None:
            return {}
        return handler(session, reminder, incident, now, late)

    def _update(
        self, session: Session, reminder: Reminder, incident: Incident, now: datetime, late: bool
    ) -> dict[str, Any]:
        interval = self.policy.update_interval.for_severity(incident.severity)
        if not incident.is_open or interval is None:
            return {}
        stale = incident.findings_at is None or (
            incident.last_update_at is not None and incident.findings_at <= incident.last_update_at
        )
        nag = (incident.commander or incident.oncall) if stale else None
        label = (
            "Scheduled 📊 update posted"
            + (" (late)" if late else "")
            + (", asked for findings" if stale else "")
        )
        if incident.last_update_at is None:
            self.planner.on_first_update(session, incident)
        self.outbox.scheduled_update(
            session,
            incident,
            nag_user=nag,
            late_due=reminder.due_at if late else None,
            record=["update_posted", label],
        )
        # Keep the cadence on its grid, but never owe a backlog after downtime: one late post, then onwards.
        next_due = reminder.due_at + interval
        if next_due <= now:
            next_due = now + interval
        self.planner.schedule(session, incident.id, ReminderKind.UPDATE, next_due)
        return {"last_update_at": now}

    def _escalate(
        self, session: Session, reminder: Reminder, incident: Incident, now: datetime, late: bool
    ) -> dict[str, Any]:
        if not incident.is_open or incident.acknowledged_at is not None:
            return {}
        level = int(reminder.payload.get("level", 1))
        service = self.services.get(incident.service)
        target = service.escalation if service else None
        text = rendering.escalation_text(incident, level, self.policy.max_escalations, target, now)
        self.outbox.channel_post(
            session,
            incident,
            text,
            record=[
                "escalated",
                f"Escalation {level}/{self.policy.max_escalations}: not acknowledged; paged again",
            ],
            urgent=True,
        )
        self.pager.page(session, incident, escalation_level=level)
        deadline = self.policy.ack_deadline.for_severity(incident.severity)
        if deadline is not None and level < self.policy.max_escalations:
            self.planner.schedule(
                session, incident.id, ReminderKind.ESCALATION, now + deadline, {"level": level + 1}
            )
        return {"escalations": level}

    def _postmortem(
        self, session: Session, reminder: Reminder, incident: Incident, now: datetime, late: bool
    ) -> dict[str, Any]:
        owner = incident.commander or incident.resolved_by or incident.oncall
        text = rendering.postmortem_reminder_text(
            incident, owner, due_now=reminder.payload.get("stage") == "due"
        )
        self.outbox.thread_note(session, incident, text)
        if owner:
            self.outbox.direct_message(
                session,
                incident,
                owner,
                text,
                record=["postmortem_reminder", f"Reminded {rendering.mention(owner)} of the post-mortem"],
            )
        return {}

    def _custom(
        self, session: Session, reminder: Reminder, incident: Incident, now: datetime, late: bool
    ) -> dict[str, Any]:
        text = rendering.reminder_text(
            reminder.payload.get("mentions", []),
            str(reminder.payload.get("text", "")),
            late_due=reminder.due_at if late else None,
        )
        self.outbox.add(session, incident, "thread_note", {"text": text, "record": ["reminder", text]})
        return {}

    def _validate(
        self, session: Session, reminder: Reminder, incident: Incident, now: datetime, late: bool
    ) -> dict[str, Any]:
        self.outbox.observe_job(session, incident, {"job": "validate", **reminder.payload})
        return {}

    def _expire_action(
        self, session: Session, reminder: Reminder, incident: Incident, now: datetime, late: bool
    ) -> dict[str, Any]:
        action = session.get(ActionRequest, int(reminder.payload["action_id"]), with_for_update=True)
        if action is None or action.state != ActionState.PENDING.value:
            return {}
        action.state = ActionState.EXPIRED.value
        action.decided_at = now
        session.add(
            TimelineEvent(
                incident_id=incident.id,
                at=now,
                actor="tars",
                kind="action_expired",
                text=f"Request {action.ref} expired without enough approvals",
                data={"action_id": action.id},
            )
        )
        self.outbox.refresh_action_card(session, incident, action.id)
        self.outbox.thread_note(session, incident, rendering.action_expired_note(action))
        return {}
