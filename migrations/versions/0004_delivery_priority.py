"""Outbox priority: declarations, escalations and pages go before updates and thread notes.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("priority", sa.Integer(), nullable=False, server_default="2"))
    # Cards moved to a lane of their own, so a backlog of thread notes never holds back the card's newest state.
    op.execute("UPDATE outbox SET lane = 'card' WHERE kind IN ('card_post', 'card_refresh')")


def downgrade() -> None:
    op.execute("UPDATE outbox SET lane = 'channel' WHERE lane = 'card'")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("priority")
