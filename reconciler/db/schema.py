"""Applying migrations, and refusing to run on a schema that is not this code's."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

from reconciler.db.dialect import is_postgres
from reconciler.db.engine import IMMEDIATE, Database
from reconciler.errors import SchemaNotCurrent

MIGRATIONS = Path(__file__).with_name("migrations")


def _alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def code_head() -> str:
    """The newest migration this code knows."""
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None, "no migrations found"
    return head


async def migrate(db: Database, revision: str = "head") -> None:
    """Bring the database up to `revision` (default: the newest)."""
    await _run(db, lambda connection: command.upgrade(_alembic_config(connection), revision))


async def downgrade(db: Database, revision: str) -> None:
    """Take the database back to `revision`, deliberately (what newer code added is lost)."""
    await _run(db, lambda connection: command.downgrade(_alembic_config(connection), revision))


async def _run(db: Database, migration: Callable[[Connection], None]) -> None:
    if not is_postgres(db):
        await _migrate_sqlite(db, migration)
        return
    async with db.write() as conn:
        await conn.run_sync(migration)


async def _migrate_sqlite(db: Database, upgrade: Callable[[Connection], None]) -> None:
    """SQLite alters a table by copying it and dropping the old one, which its foreign keys
    refuse while any row points at the table (and the pragma that allows it is ignored inside
    a transaction). So the keys are off for the migration, on its own connection, and checked
    whole before it commits: a migration that broke one fails, changing nothing."""

    def run(connection: Connection) -> None:
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        cursor.execute("PRAGMA foreign_keys=OFF")  # outside any transaction: it takes effect
        try:
            with connection.begin():
                upgrade(connection)
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise SchemaNotCurrent(
                        f"migration left {len(broken)} rows pointing nowhere, first: {broken[0]}"
                    )
        finally:
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

    async with db.writing(), db.engine.connect() as conn:
        await conn.execution_options(**{IMMEDIATE: True})
        await conn.run_sync(run)


async def database_revision(db: Database) -> str | None:
    async with db.read() as conn:
        return await conn.run_sync(
            lambda sync: MigrationContext.configure(sync).get_current_revision()
        )


async def require_current_schema(db: Database) -> None:
    """Raise `SchemaNotCurrent`, saying what to do, unless the database is at this code's head."""
    current = await database_revision(db)
    head = code_head()
    if current == head:
        return
    known = {
        script.revision
        for script in ScriptDirectory.from_config(_alembic_config()).walk_revisions()
    }
    if current is None:
        raise SchemaNotCurrent(
            "the database has no schema yet: run `reconciler migrate` before starting the service"
        )
    if current not in known:
        raise SchemaNotCurrent(
            f"the database schema ({current}) is newer than this code (which knows up to "
            f"{head}): deploy the newer code, or downgrade the database deliberately"
        )
    raise SchemaNotCurrent(
        f"the database schema is at {current} but this code needs {head}: run `reconciler migrate`"
    )
