"""Tables of this domain: what is stored. Rules live in the services."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Text
from sqlalchemy.orm import Mapped, mapped_column

from bot.core.database import Base, UTCDateTime


class SeenRequest(Base):
    """A signed Slack request already let in: the same signature again, within its window, is a replay.

    Rows are needed only while a replay could still pass the timestamp check; the front door deletes the rest.
    """

    __tablename__ = "seen_requests"
    __table_args__ = (Index("ix_seen_requests_seen_at", "seen_at"),)

    signature: Mapped[str] = mapped_column(Text, primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
