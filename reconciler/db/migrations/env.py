"""Alembic environment. Migrations run through `reconciler.db.schema.migrate`, which hands
us an open connection; nothing here reads configuration."""

from __future__ import annotations

from alembic import context

from reconciler.db.tables import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
