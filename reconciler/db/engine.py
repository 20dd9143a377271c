"""Engine setup and the two kinds of transaction the service uses.

- `read()`: a plain transaction.
- `write()`: a transaction that will write. On SQLite it starts with `BEGIN IMMEDIATE`, taking
  the single write lock up front: a deferred transaction that reads and then writes can fail
  with SQLITE_BUSY instead of waiting, because its snapshot went stale. Writers of one process
  also queue for that lock in the event loop first: SQLite's own wait for a busy lock sleeps
  (1, 2, 5, 10... ms), so two of our writers meeting there (the webhook's group commit and the
  worker) would each lose milliseconds; in the queue the next one starts the moment the last
  commits. Other processes are still waited for by SQLite's busy timeout.

Ledger changes run in a `write()` through `reconciler.ledger.session`, which on PostgreSQL also
locks each merchant's row (`SELECT ... FOR UPDATE`) before deciding anything about its money.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

SQLITE_BUSY_TIMEOUT_MS = 30_000
# Execution option: begin the connection's transactions with BEGIN IMMEDIATE (SQLite).
IMMEDIATE = "reconciler_immediate"


def configure_sqlite_connection(connection: Any) -> None:
    """What every connection to the SQLite file needs, whoever opens it."""
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    # FULL: an acknowledged webhook or payout row must survive a power cut, not just a crash.
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()


def _configure_sqlite(engine: AsyncEngine) -> None:
    # pysqlite's own transaction handling emits BEGIN lazily and never IMMEDIATE; take it over
    # (the SQLAlchemy-documented recipe) so we decide when and how each transaction begins.
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        configure_sqlite_connection(dbapi_connection)

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        immediate = connection.get_execution_options().get(IMMEDIATE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class Database:
    """The service's database: an async engine plus the transaction helpers above."""

    def __init__(self, url: str, *, pool_size: int = 10, echo: bool = False) -> None:
        parsed = make_url(url)
        self.url = url
        sqlite = parsed.get_backend_name() == "sqlite"
        options: dict[str, Any] = {"echo": echo}
        if sqlite:
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            options["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        else:
            options.update(pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
        self.engine = create_async_engine(url, **options)
        self._writers: asyncio.Lock | None = None
        self._writing_task: asyncio.Task[Any] | None = None
        if sqlite:
            _configure_sqlite(self.engine)
            self._writers = asyncio.Lock()

    @property
    def dialect(self) -> Dialect:
        return self.engine.dialect

    async def dispose(self) -> None:
        await self.engine.dispose()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        if self._writers is None:
            async with self.engine.connect() as conn, conn.begin():
                yield conn
            return
        async with self._turn(), self.engine.connect() as conn:
            await conn.execution_options(**{IMMEDIATE: True})
            async with conn.begin():
                yield conn

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[None]:
        """This process's turn to write (SQLite), for a writer with a connection of its own;
        it must still begin its transaction IMMEDIATE. Elsewhere there is no turn to wait."""
        if self._writers is None:
            yield
            return
        async with self._turn():
            yield

    @asynccontextmanager
    async def _turn(self) -> AsyncIterator[None]:
        assert self._writers is not None
        task = asyncio.current_task()
        if task is not None and task is self._writing_task:
            # The lock is not reentrant: waiting here would wait for ourselves forever.
            raise RuntimeError("a write transaction inside another on the same database")
        async with self._writers:
            self._writing_task = task
            try:
                yield
            finally:
                self._writing_task = None
