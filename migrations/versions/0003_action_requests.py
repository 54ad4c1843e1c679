"""Remediation action requests and their approval votes.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from bot.core.database import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "action_requests",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "incident_id", sa.Integer(), sa.ForeignKey("incidents.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("service", sa.String(64), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("snapshot", sa.JSON(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("advice", sa.Text()),
        sa.Column("requested_by", sa.String(32), nullable=False),
        sa.Column("requested_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("required_approvals", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("decided_by", sa.String(32)),
        sa.Column("decided_at", UTCDateTime()),
        sa.Column("finished_at", UTCDateTime()),
        sa.Column("result", sa.JSON()),
        sa.Column("card_channel", sa.String(32)),
        sa.Column("card_ts", sa.String(32)),
        sa.Column("version", sa.Integer(), nullable=False),
    )
    op.create_index(
        "ux_action_requests_one_in_flight",
        "action_requests",
        ["incident_id"],
        unique=True,
        postgresql_where=sa.text("state IN ('pending', 'executing')"),
        sqlite_where=sa.text("state IN ('pending', 'executing')"),
    )
    op.create_table(
        "action_votes",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "action_id",
            sa.Integer(),
            sa.ForeignKey("action_requests.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("user_id", sa.String(32), nullable=False),
        sa.Column("decision", sa.String(8), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
    )
    op.create_index("ux_action_votes_once", "action_votes", ["action_id", "user_id"], unique=True)


def downgrade() -> None:
    op.drop_index("ux_action_votes_once", table_name="action_votes")
    op.drop_table("action_votes")
    op.drop_index("ux_action_requests_one_in_flight", table_name="action_requests")
    op.drop_table("action_requests")
