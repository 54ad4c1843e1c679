"""Alembic environment: TARS passes its own connection in; `alembic` on the command line uses DATABASE_URL."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import Connection

from bot import all_tables  # noqa: F401 - registers the tables on Base.metadata
from bot.core.database import Base, make_engine
from bot.core.settings import normalize_database_url

target_metadata = Base.metadata


def run_with(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    run_with(connection)
else:
    engine = make_engine(normalize_database_url(os.environ.get("DATABASE_URL", "sqlite:///tars.db")))
    with engine.connect() as own_connection:
        run_with(own_connection)
        own_connection.commit()
