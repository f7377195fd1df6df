"""Alembic environment: runs against the connection or URL that tool.cli hands it."""

from __future__ import annotations

from alembic import context
from sqlalchemy import pool

from tool.db import Base, make_engine
import tool.lti.models  # noqa: F401  (registers the tables on Base.metadata)
import tool.ledger.models  # noqa: F401
import tool.assessments.models  # noqa: F401
import tool.ags.models  # noqa: F401
import tool.delivery.models  # noqa: F401
import tool.ops.models  # noqa: F401

config = context.config
target_metadata = Base.metadata


def run_migrations_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata,
                      literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url"), poolclass=pool.NullPool)
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            # A batch migration copies a table, drops the original and renames the copy. With
            # foreign keys on, SQLite's DROP TABLE deletes the rows first and cascades that to
            # the tables that refer to it. Off before the transaction begins (it is a no-op
            # inside one); the connection is not pooled, so the setting dies with it.
            conn.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
        context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        conn.commit()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
