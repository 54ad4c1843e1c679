"""Signals (alerts and reports before a declaration) and outbox rows that belong to no incident yet.

A triage card is posted before there is an incident, so an outbox row may now name none: such rows share one
lane of their own.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from bot.core.database import UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "signals",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("fingerprint", sa.String(255), nullable=False),
        sa.Column("service", sa.String(64)),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("severity_hint", sa.String(32)),
        sa.Column("labels", sa.JSON, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("triage", sa.String(16), nullable=False),
        sa.Column("triaged_by", sa.String(32)),
        sa.Column("since", UTCDateTime(), nullable=False),
        sa.Column("first_seen", UTCDateTime(), nullable=False),
        sa.Column("last_seen", UTCDateTime(), nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("resolved_at", UTCDateTime()),
        sa.Column("incident_id", sa.Integer, sa.ForeignKey("incidents.id", ondelete="SET NULL")),
        sa.Column("card_channel", sa.String(32)),
        sa.Column("card_ts", sa.String(32)),
        sa.Column("raw", sa.Text, nullable=False),
        sa.UniqueConstraint("source", "fingerprint", name="uq_signals_source_fingerprint"),
    )
    op.create_index("ix_signals_incident", "signals", ["incident_id"])
    with op.batch_alter_table("outbox") as batch:
        batch.alter_column("incident_id", existing_type=sa.Integer, nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM outbox WHERE incident_id IS NULL")
    with op.batch_alter_table("outbox") as batch:
        batch.alter_column("incident_id", existing_type=sa.Integer, nullable=False)
    op.drop_index("ix_signals_incident", "signals")
    op.drop_table("signals")
