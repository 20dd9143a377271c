"""Applying migrations, and refusing to run on a schema that is not this code's."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

from reconciler.db.engine import Database
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

    def upgrade(connection: Connection) -> None:
        command.upgrade(_alembic_config(connection), revision)

    async with db.write() as conn:
        await conn.run_sync(upgrade)


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
