from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from reconciler.db.engine import Database
from reconciler.db.schema import code_head, database_revision, migrate, require_current_schema
from reconciler.db.tables import metadata
from reconciler.errors import SchemaNotCurrent


async def test_migrations_build_exactly_the_tables_the_code_uses(db: Database) -> None:
    async with db.read() as conn:
        differences = await conn.run_sync(
            lambda sync: compare_metadata(MigrationContext.configure(sync), metadata)
        )
    assert differences == []
    assert await database_revision(db) == code_head()
    await require_current_schema(db)


async def test_migrating_twice_changes_nothing(db: Database) -> None:
    await migrate(db)
    assert await database_revision(db) == code_head()


async def test_an_unmigrated_database_is_refused_with_what_to_run(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")
    try:
        with pytest.raises(SchemaNotCurrent, match="run `reconciler migrate`"):
            await require_current_schema(db)
    finally:
        await db.dispose()


async def test_a_schema_newer_than_the_code_is_refused(db: Database) -> None:
    async with db.write() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    try:
        with pytest.raises(SchemaNotCurrent, match=r"newer than this code"):
            await require_current_schema(db)
    finally:  # the PostgreSQL test database is shared by the session
        async with db.write() as conn:
            await conn.execute(
                text("UPDATE alembic_version SET version_num = :v"), {"v": code_head()}
            )


async def test_postgresql_compresses_inbox_payloads_with_lz4(db: Database) -> None:
    if db.dialect.name != "postgresql":
        pytest.skip("a PostgreSQL storage setting (SQLite compresses nothing)")
    async with db.read() as conn:
        method = await conn.scalar(
            text(
                "SELECT attcompression::text FROM pg_attribute"
                " WHERE attrelid = 'inbox_events'::regclass AND attname = 'payload'"
            )
        )
    assert method == "l"  # lz4 ("p" is pglz, "" the server's default)


async def test_postgresql_keeps_no_statistics_on_inbox_payloads(db: Database) -> None:
    if db.dialect.name != "postgresql":
        pytest.skip("a PostgreSQL planner setting (SQLite's ANALYZE is not run by anyone)")
    async with db.read() as conn:
        targets = dict(
            (
                await conn.execute(
                    text(
                        "SELECT attname, attstattarget FROM pg_attribute"
                        " WHERE attrelid = 'inbox_events'::regclass"
                        " AND attname IN ('payload', 'event_type')"
                    )
                )
            ).all()
        )
    # ANALYZE no longer reads every sampled payload; the columns queries use keep theirs.
    assert targets == {"payload": 0, "event_type": -1}
