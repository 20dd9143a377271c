"""How the inbox writer commits a batch: one round trip to the database, on a connection of
its own.

Every request waits for the commit holding its event, so the commit's latency bounds how many
deliveries the service takes per second. Through the shared engine a commit is half a dozen
awaits (pool checkout, BEGIN, INSERT, fetch, COMMIT, reset), and under load each of them waits
behind every request the event loop has in hand. Here a batch is one step:
- PostgreSQL: one `INSERT ... SELECT FROM unnest(...) ON CONFLICT DO NOTHING RETURNING` on a
  dedicated asyncpg connection, outside any explicit transaction: a single statement commits
  by itself, all rows or none, and its answer says which events were new. Only what differs
  between events goes in as arrays (eight of them); the batch's time once, and the columns that
  follow from it (or from an event being ignored) are spelled in the statement. The statement
  is prepared once per connection (asyncpg's statement cache).
- SQLite: `BEGIN IMMEDIATE`, the highest row id, one prepared `INSERT ... ON CONFLICT DO
  NOTHING` run over every row (sqlite3's executemany, a loop in C), the events of the rows
  above that id (the new ones: the write lock is ours), `COMMIT`, all in a thread of its own on
  a dedicated sqlite3 connection, after taking the process's place in the queue for the write
  lock (`Database.writing`).
The rows are exactly those `inserts.row_values` describes and SQLAlchemy would write
(`tests/reconciler/inbox/test_group_commit.py` compares them). Any other database goes through
the engine (`inserts.insert_events`).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, Protocol

import asyncpg
from sqlalchemy.engine import make_url

from reconciler.db.dialect import is_postgres
from reconciler.db.engine import SQLITE_BUSY_TIMEOUT_MS, Database, configure_sqlite_connection
from reconciler.db.tables import inbox_events
from reconciler.inbox.events import IGNORED, RECEIVED, NewEvent
from reconciler.inbox.inserts import UNIQUE_COLUMN, insert_events


class GroupCommit(Protocol):
    """How the writer commits a batch of new events."""

    async def commit(self, events: Sequence[NewEvent], now: datetime) -> set[str]:
        """Insert the events not in the inbox yet, committed; return the ids of those new."""
        ...

    async def close(self) -> None: ...


_COLUMNS = (
    "stripe_event_id, endpoint, event_type, livemode, account, stripe_created, payload, "
    "status, attempts, next_attempt_at, locked_until, last_error, received_at, processed_at"
)
# $9 is the batch's time; `reason` an ignored event's (null for the others).
_POSTGRES_INSERT = f"""\
INSERT INTO inbox_events ({_COLUMNS})
SELECT id, endpoint, type, livemode, account, created, payload,
       CASE WHEN reason IS NULL THEN '{RECEIVED}' ELSE '{IGNORED}' END, 0,
       $9::timestamptz, NULL, reason, $9::timestamptz,
       CASE WHEN reason IS NULL THEN NULL ELSE $9::timestamptz END
FROM unnest($1::varchar[], $2::varchar[], $3::varchar[], $4::boolean[], $5::varchar[],
            $6::bigint[], $7::text[], $8::text[])
     AS new (id, endpoint, type, livemode, account, created, payload, reason)
ON CONFLICT ({UNIQUE_COLUMN}) DO NOTHING RETURNING {UNIQUE_COLUMN}"""
_SQLITE_INSERT = (
    f"INSERT INTO inbox_events ({_COLUMNS}) VALUES ({', '.join('?' * 14)}) "
    f"ON CONFLICT ({UNIQUE_COLUMN}) DO NOTHING"
)


def _postgres_parameters(events: Sequence[NewEvent], now: datetime) -> list[Any]:
    return [
        [event.stripe_event_id for event in events],
        [event.endpoint for event in events],
        [event.event_type for event in events],
        [event.livemode for event in events],
        [event.account for event in events],
        [event.stripe_created for event in events],
        [event.payload for event in events],
        [event.ignored_reason or None for event in events],
        now.astimezone(UTC),
    ]


def _sqlite_rows(events: Sequence[NewEvent], at: object) -> list[tuple[Any, ...]]:
    """`at`: the batch's time as the column type writes it on SQLite."""
    return [
        (
            event.stripe_event_id,
            event.endpoint,
            event.event_type,
            event.livemode,
            event.account,
            event.stripe_created,
            event.payload,
            IGNORED if event.ignored_reason else RECEIVED,
            0,
            at,
            None,
            event.ignored_reason,
            at,
            at if event.ignored_reason else None,
        )
        for event in events
    ]


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
        parameters = _postgres_parameters(events, now)
        try:
            if self._conn is None:
                args, kwargs = self._dialect.create_connect_args(self._database.engine.url)
                self._conn = await asyncpg.connect(*args, **kwargs)
            return {row[0] for row in await self._conn.fetch(_POSTGRES_INSERT, *parameters)}
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
        column = inbox_events.c.received_at
        self._time = column.type.dialect_impl(database.dialect).bind_processor(database.dialect)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inbox-commit")
        self._conn: sqlite3.Connection | None = None

    async def commit(self, events: Sequence[NewEvent], now: datetime) -> set[str]:
        if not events:
            return set()
        rows = _sqlite_rows(events, self._time(now) if self._time else now)
        loop = asyncio.get_running_loop()
        async with self._database.writing():
            return await loop.run_in_executor(self._thread, self._commit, rows)

    def _commit(self, rows: list[tuple[Any, ...]]) -> set[str]:
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
            # Ids only grow, and no one else writes until COMMIT: rows above it are this batch's.
            (top,) = conn.execute("SELECT coalesce(max(id), 0) FROM inbox_events").fetchone()
            conn.executemany(_SQLITE_INSERT, rows)
            new = {
                stripe_id
                for (stripe_id,) in conn.execute(
                    f"SELECT {UNIQUE_COLUMN} FROM inbox_events WHERE id > ?", (top,)
                )
            }
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
