"""Incidents and their timeline.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from bot.core.database import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "incidents",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("service", sa.String(64), nullable=False),
        sa.Column("severity", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("impact", sa.Text()),
        sa.Column("reporter", sa.String(32), nullable=False),
        sa.Column("oncall", sa.String(32)),
        sa.Column("commander", sa.String(32)),
        sa.Column("declared_at", UTCDateTime(), nullable=False),
        sa.Column("acknowledged_at", UTCDateTime()),
        sa.Column("acknowledged_by", sa.String(32)),
        sa.Column("mitigated_at", UTCDateTime()),
        sa.Column("monitoring_since", UTCDateTime()),
        sa.Column("resolved_at", UTCDateTime()),
        sa.Column("resolved_by", sa.String(32)),
        sa.Column("root_cause", sa.Text()),
        sa.Column("users_affected", sa.Integer()),
        sa.Column("latest_findings", sa.Text()),
        sa.Column("findings_at", UTCDateTime()),
        sa.Column("eta", sa.String(200)),
        sa.Column("postmortem_due_at", UTCDateTime()),
        sa.Column("channel_id", sa.String(32)),
        sa.Column("card_ts", sa.String(32)),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.CheckConstraint("severity BETWEEN 1 AND 4", name="ck_incidents_severity"),
        sa.CheckConstraint(
            "status IN ('investigating', 'mitigating', 'monitoring', 'resolved')", name="ck_incidents_status"
        ),
    )
    op.create_index("ix_incidents_status", "incidents", ["status"])
    op.create_table(
        "timeline_events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "incident_id", sa.Integer(), sa.ForeignKey("incidents.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
    )
    op.create_index("ix_timeline_events_incident_id", "timeline_events", ["incident_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_timeline_events_incident_id", table_name="timeline_events")
    op.drop_table("timeline_events")
    op.drop_index("ix_incidents_status", table_name="incidents")
    op.drop_table("incidents")
