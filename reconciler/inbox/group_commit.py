"""How the inbox writer commits a batch: one round trip to the database, on a connection of
its own.

Every request waits for the commit holding its event, so the commit's latency bounds how many
deliveries the service takes per second. Through the shared engine a commit is half a dozen
awaits (pool checkout, BEGIN, INSERT, fetch, COMMIT, reset), and under load each of them waits
behind every request the event loop has in hand. Here a batch is one step:
- PostgreSQL: one `INSERT ... SELECT FROM unnest(...) ON CONFLICT DO NOTHING RETURNING` on a
  dedicated asyncpg connection, outside any explicit transaction: a single statement commits
  by itself, all rows or none, and its answer says which events were new.
- SQLite: `BEGIN IMMEDIATE; INSERT ... json_each(...) ... RETURNING; COMMIT` on a dedicated
  sqlite3 connection, run whole in a thread of its own, after taking the process's place in
  the queue for the write lock (`Database.writing`).
The statement and its parameters are `db.bulk`'s, so rows are written exactly as through
SQLAlchemy. Any other database goes through the engine (`inserts.insert_events`).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, Protocol

import asyncpg
from sqlalchemy.engine import Dialect, make_url

from reconciler.db.bulk import new_rows_parameters, new_rows_statement
from reconciler.db.dialect import is_postgres
from reconciler.db.engine import SQLITE_BUSY_TIMEOUT_MS, Database, configure_sqlite_connection
from reconciler.db.tables import inbox_events
from reconciler.inbox.events import NewEvent
from reconciler.inbox.inserts import UNIQUE_COLUMN, insert_events, row_values


class GroupCommit(Protocol):
    """How the writer commits a batch of new events."""

    async def commit(self, events: Sequence[NewEvent], now: datetime) -> set[str]:
        """Insert the events not in the inbox yet, committed; return the ids of those new."""
        ...

    async def close(self) -> None: ...


def _statement(
    dialect: Dialect, events: Sequence[NewEvent], now: datetime, placeholder: Callable[[int], str]
) -> tuple[str, list[Any]]:
    rows = [row_values(event, now) for event in events]
    columns = [inbox_events.c[name] for name in rows[0]]
    sql = new_rows_statement(inbox_events, columns, dialect, UNIQUE_COLUMN, placeholder)
    return sql, new_rows_parameters(columns, rows, dialect)


class EngineCommit:
    """Through the shared engine: any database, one transaction per batch."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def commit(self, events: Sequence[NewEvent], now: datetime) -> set[str]:
        async with self._database.write() as conn:
            return await insert_events(conn, events, now)

    async def close(self) -> None:
        return None


class PostgresCommit:
    """A dedicated asyncpg connection, opened on first use and again after any error."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._dialect = database.dialect
        self._conn: asyncpg.Connection | None = None

    async def commit(self, events: Sequence[NewEvent], now: datetime) -> set[str]:
        if not events:
            return set()
        sql, parameters = _statement(self._dialect, events, now, lambda i: f"${i + 1}")
        try:
            if self._conn is None:
                args, kwargs = self._dialect.create_connect_args(self._database.engine.url)
                self._conn = await asyncpg.connect(*args, **kwargs)
            return {row[0] for row in await self._conn.fetch(sql, *parameters)}
        except BaseException:
            await self.close()  # a fresh connection for the next batch
            raise

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.terminate()


class SqliteCommit:
    """A dedicated sqlite3 connection, used only from one thread of its own."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._path = str(make_url(database.url).database)
        self._dialect = database.dialect
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inbox-commit")
        self._conn: sqlite3.Connection | None = None

    async def commit(self, events: Sequence[NewEvent], now: datetime) -> set[str]:
        if not events:
            return set()
        sql, parameters = _statement(self._dialect, events, now, lambda i: "?")
        loop = asyncio.get_running_loop()
        async with self._database.writing():
            return await loop.run_in_executor(self._thread, self._commit, sql, parameters)

    def _commit(self, sql: str, parameters: list[Any]) -> set[str]:
        if self._conn is None:
            conn = sqlite3.connect(
                self._path,
                timeout=SQLITE_BUSY_TIMEOUT_MS / 1000,
                isolation_level=None,
                check_same_thread=False,
            )
            configure_sqlite_connection(conn)
            self._conn = conn
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            new = {row[0] for row in conn.execute(sql, parameters).fetchall()}
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return new

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._thread, self._close)
        self._thread.shutdown(wait=True)

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


def open_group_commit(database: Database) -> GroupCommit:
    """The fastest way to commit the database allows."""
    if is_postgres(database):
        return PostgresCommit(database)
    if make_url(database.url).database not in (None, "", ":memory:"):
        return SqliteCommit(database)
    return EngineCommit(database)
