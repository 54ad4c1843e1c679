"""Tables of this domain: what is stored. Rules live in the services."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bot.core.database import Base, UTCDateTime


class SignalState(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


class Triage(StrEnum):
    """What people (or TARS) made of the signal."""

    OPEN = "open"  # waiting on the triage card
    DECLARED = "declared"  # confirmed as real: an incident was declared from it
    ATTACHED = "attached"  # belongs to an incident already open
    DISMISSED = "dismissed"  # a fluke
    DORMANT = "dormant"  # a gathering row (customer reports, a storm's digest) between episodes


@dataclass(frozen=True)
class ReportOutcome:
    """What became of a customer report, for the reply to whoever filed it."""

    service: str
    attached_to: str | None  # the open incident it was added to
    in_window: int  # distinct reports about the service within the window, this one included
    threshold: int
    window: timedelta
    triage_posted: bool


class Signal(Base):
    """One alert (or report) as its source identifies it: the same fingerprint again is the same signal."""

    __tablename__ = "signals"
    __table_args__ = (
        UniqueConstraint("source", "fingerprint", name="uq_signals_source_fingerprint"),
        Index("ix_signals_incident", "incident_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(32))
    fingerprint: Mapped[str] = mapped_column(String(255))
    # The catalog service it was routed to; None when nothing in it named one.
    service: Mapped[str | None] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(Text)
    summary: Mapped[str] = mapped_column(Text)
    severity_hint: Mapped[str | None] = mapped_column(String(32))
    labels: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16))
    triage: Mapped[str] = mapped_column(String(16))
    triaged_by: Mapped[str | None] = mapped_column(String(32))
    since: Mapped[datetime] = mapped_column(UTCDateTime())
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime())
    count: Mapped[int] = mapped_column(Integer)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id", ondelete="SET NULL"))
    card_channel: Mapped[str | None] = mapped_column(String(32))
    card_ts: Mapped[str | None] = mapped_column(String(32))
    # The last payload as received, cut to RAW_PAYLOAD_LIMIT characters of JSON.
    raw: Mapped[str] = mapped_column(Text)

    @property
    def ref(self) -> str:
        return f"signal {self.id}"

    @property
    def member_ids(self) -> list[int]:
        """For a card that gathers signals (customer reports, an alert storm's digest): the signals it gathers."""
        return [int(i) for i in self.labels.get("members", "").split(",") if i.isdigit()]
