"""Postgres tells every replica about new outbox rows itself, when the transaction that wrote them commits.

A NOTIFY sent by the application was one more round trip on every change; a statement-level trigger costs none,
and Postgres folds identical notifications of one transaction into one. SQLite has no NOTIFY: a single process
wakes its own delivery engine.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        """
        CREATE FUNCTION tars_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('tars_outbox', '');
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER outbox_notify AFTER INSERT ON outbox "
        "FOR EACH STATEMENT EXECUTE FUNCTION tars_outbox_notify()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER outbox_notify ON outbox")
    op.execute("DROP FUNCTION tars_outbox_notify()")
