"""Tables. Rules live in the services; these classes only describe what is stored."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from bot.db import Base, UTCDateTime


class Status(StrEnum):
    INVESTIGATING = "investigating"
    MITIGATING = "mitigating"
    MONITORING = "monitoring"
    RESOLVED = "resolved"

    @property
    def label(self) -> str:
        return self.value.capitalize()


OPEN_STATUSES = (Status.INVESTIGATING, Status.MITIGATING, Status.MONITORING)
SEVERITIES = (1, 2, 3, 4)


class Incident(Base):
    __tablename__ = "incidents"
    __table_args__ = (
        CheckConstraint("severity BETWEEN 1 AND 4", name="ck_incidents_severity"),
        CheckConstraint(
            "status IN ('investigating', 'mitigating', 'monitoring', 'resolved')", name="ck_incidents_status"
        ),
        Index("ix_incidents_status", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    service: Mapped[str] = mapped_column(String(64))
    severity: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default=Status.INVESTIGATING.value)
    description: Mapped[str] = mapped_column(Text)
    impact: Mapped[str | None] = mapped_column(Text)
    reporter: Mapped[str] = mapped_column(String(32))
    oncall: Mapped[str | None] = mapped_column(String(32))
    commander: Mapped[str | None] = mapped_column(String(32))
    declared_at: Mapped[datetime] = mapped_column(UTCDateTime())
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    acknowledged_by: Mapped[str | None] = mapped_column(String(32))
    mitigated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    monitoring_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    resolved_by: Mapped[str | None] = mapped_column(String(32))
    root_cause: Mapped[str | None] = mapped_column(Text)
    users_affected: Mapped[int | None] = mapped_column(Integer)
    latest_findings: Mapped[str | None] = mapped_column(Text)
    findings_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    eta: Mapped[str | None] = mapped_column(String(200))
    postmortem_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    channel_id: Mapped[str | None] = mapped_column(String(32))
    card_ts: Mapped[str | None] = mapped_column(String(32))
    last_update_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    escalations: Mapped[int] = mapped_column(Integer, default=0)
    version: Mapped[int] = mapped_column(Integer, default=1)

    events: Mapped[list[TimelineEvent]] = relationship(
        back_populates="incident", order_by="TimelineEvent.id", cascade="all, delete-orphan"
    )

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 - SQLAlchemy's documented spelling

    @property
    def ref(self) -> str:
        return f"INC-{self.id}"

    @property
    def status_enum(self) -> Status:
        return Status(self.status)

    @property
    def is_open(self) -> bool:
        return self.status != Status.RESOLVED.value


class TimelineEvent(Base):
    __tablename__ = "timeline_events"
    __table_args__ = (Index("ix_timeline_events_incident_id", "incident_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(40))
    text: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    incident: Mapped[Incident] = relationship(back_populates="events")


class ReminderState(StrEnum):
    PENDING = "pending"
    DONE = "done"
    CANCELLED = "cancelled"
    FAILED = "failed"  # its handler raised; set aside (and logged) so the others still go out


class Reminder(Base):
    """Work that becomes due at a time: cadence updates, escalations, post-mortem and validation reminders.

    The table is the schedule; the scheduler only looks for pending rows whose time has come, so nothing is lost
    when a process restarts and nothing is doubled when several run.
    """

    __tablename__ = "reminders"
    __table_args__ = (
        Index(
            "ix_reminders_pending_due",
            "due_at",
            postgresql_where=text("state = 'pending'"),
            sqlite_where=text("state = 'pending'"),
        ),
        Index("ix_reminders_incident_kind", "incident_id", "kind", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(12), default=ReminderState.PENDING.value)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    late: Mapped[bool] = mapped_column(Boolean, default=False)


class OutboxState(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


class OutboxMessage(Base):
    """An announcement committed with the change it announces, delivered (and retried) in order per lane."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index(
            "ix_outbox_pending",
            "next_attempt_at",
            postgresql_where=text("state = 'pending'"),
            sqlite_where=text("state = 'pending'"),
        ),
        Index("ix_outbox_lane", "incident_id", "lane", "state", "id"),
        Index(
            "ix_outbox_pending_lane",
            "incident_id",
            "lane",
            "id",
            postgresql_where=text("state = 'pending'"),
            sqlite_where=text("state = 'pending'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"))
    lane: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(24))
    # Lower goes first when lanes compete for Slack's rate budget; order within a lane is always by id.
    priority: Mapped[int] = mapped_column(Integer, default=2, server_default="2")
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(12), default=OutboxState.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    locked_by: Mapped[str | None] = mapped_column(String(64))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class ActionState(StrEnum):
    PENDING = "pending"  # waiting for approvals
    EXECUTING = "executing"  # approved; the integration is running
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DENIED = "denied"
    EXPIRED = "expired"

    @property
    def in_flight(self) -> bool:
        return self in (ActionState.PENDING, ActionState.EXECUTING)


IN_FLIGHT_STATES = ("pending", "executing")


class ActionRequest(Base):
    """A remediation someone asked for: its exact parameters, the target as it was, and its approvals.

    Approvals are bound to this row; executing re-checks the target against `snapshot`, so an approval never
    applies to a change other than the one the approvers saw.
    """

    __tablename__ = "action_requests"
    __table_args__ = (
        # "Do not apply multiple fixes simultaneously": at most one request in flight per incident.
        Index(
            "ux_action_requests_one_in_flight",
            "incident_id",
            unique=True,
            postgresql_where=text("state IN ('pending', 'executing')"),
            sqlite_where=text("state IN ('pending', 'executing')"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    service: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    snapshot: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    summary: Mapped[str] = mapped_column(Text)
    advice: Mapped[str | None] = mapped_column(Text)
    requested_by: Mapped[str] = mapped_column(String(32))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    required_approvals: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default=ActionState.PENDING.value)
    decided_by: Mapped[str | None] = mapped_column(String(32))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    card_channel: Mapped[str | None] = mapped_column(String(32))
    card_ts: Mapped[str | None] = mapped_column(String(32))
    version: Mapped[int] = mapped_column(Integer, default=1)

    votes: Mapped[list[ActionVote]] = relationship(order_by="ActionVote.id", cascade="all, delete-orphan")

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 - SQLAlchemy's documented spelling

    @property
    def ref(self) -> str:
        return f"#{self.id}"

    @property
    def state_enum(self) -> ActionState:
        return ActionState(self.state)

    @property
    def approvers(self) -> list[str]:
        return [vote.user_id for vote in self.votes if vote.decision == "approve"]


class ActionVote(Base):
    __tablename__ = "action_votes"
    __table_args__ = (Index("ux_action_votes_once", "action_id", "user_id", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    action_id: Mapped[int] = mapped_column(ForeignKey("action_requests.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(String(32))
    decision: Mapped[str] = mapped_column(String(8))  # approve | deny
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class SeenRequest(Base):
    """A signed Slack request already let in: the same signature again, within its window, is a replay.

    Rows are needed only while a replay could still pass the timestamp check; the front door deletes the rest.
    """

    __tablename__ = "seen_requests"
    __table_args__ = (Index("ix_seen_requests_seen_at", "seen_at"),)

    signature: Mapped[str] = mapped_column(Text, primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
