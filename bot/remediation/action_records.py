"""Tables of this domain: what is stored. Rules live in the services."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from bot.core.database import Base, UTCDateTime
from bot.incidents.incident_records import Incident


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


class VoteOutcome(StrEnum):
    APPROVED_MORE_NEEDED = "approved_more_needed"
    EXECUTE = "execute"  # this vote completed the approvals: run it
    DENIED = "denied"
    REFUSED = "refused"  # not allowed to vote; audited
    EXPIRED = "expired"


@dataclass(frozen=True)
class Vote:
    """What one click on Approve or Deny did; `slack.rendering.vote_reply` words it for the person."""

    outcome: VoteOutcome
    action: ActionRequest
    incident: Incident
    why: str = ""  # for REFUSED, EXPIRED and DENIED: which rule decided
    missing: int = 0  # approvals still needed
