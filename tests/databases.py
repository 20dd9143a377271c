"""The test databases: a migrated SQLite template copied per test, and one PostgreSQL database
per test session, migrated once and truncated before each test.

PostgreSQL is found at TEST_POSTGRES_URL (default: the local server as user postgres). When it
cannot be reached its tests are skipped, and the run says so at the end; with
RECONCILER_REQUIRE_POSTGRES=1 (CI), an unreachable server is an error instead.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from reconciler.db.engine import Database
from reconciler.db.schema import migrate
from reconciler.db.tables import metadata

DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)
REQUIRE_POSTGRES = os.environ.get("RECONCILER_REQUIRE_POSTGRES") == "1"


async def _migrate(url: str) -> None:
    db = Database(url)
    try:
        await migrate(db)
    finally:
        await db.dispose()


@dataclass
class SqliteTemplate:
    path: Path

    @classmethod
    def build(cls, folder: Path) -> SqliteTemplate:
        path = folder / "template.db"
        asyncio.run(_migrate(f"sqlite+aiosqlite:///{path}"))
        return cls(path)

    def fresh_url(self, folder: Path) -> str:
        target = folder / "reconciler.db"
        shutil.copyfile(self.path, target)
        return f"sqlite+aiosqlite:///{target}"


@dataclass
class PostgresServer:
    """A throwaway database on the local server, or the reason there is none."""

    url: str | None = None
    unavailable: str | None = None
    tests_run: int = 0
    _admin_url: str = field(default=POSTGRES_URL, repr=False)

    @classmethod
    def start(cls) -> PostgresServer:
        name = f"reconciler_test_{uuid.uuid4().hex[:12]}"
        try:
            asyncio.run(_admin(POSTGRES_URL, f'CREATE DATABASE "{name}"'))
        except Exception as error:  # any failure to reach the server means: no PostgreSQL
            reason = (
                f"PostgreSQL unreachable at {_safe(POSTGRES_URL)}: {type(error).__name__}: {error}"
            )
            return cls(unavailable=reason)
        url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
        asyncio.run(_migrate(url))
        return cls(url=url)

    def stop(self) -> None:
        if self.url is not None:
            name = make_url(self.url).database
            asyncio.run(_admin(self._admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    def truncate(self) -> None:
        assert self.url is not None
        tables = ", ".join(table.name for table in metadata.sorted_tables)
        asyncio.run(_admin(self.url, f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


async def _admin(url: str, statement: str) -> None:
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await asyncio.wait_for(conn.execute(text(statement)), timeout=10)
    finally:
        await engine.dispose()


def _safe(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)
