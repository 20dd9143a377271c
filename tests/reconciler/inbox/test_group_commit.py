from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

import asyncpg
import pytest
from sqlalchemy import func, select, text

from reconciler.db import engine as engine_module
from reconciler.db.dialect import is_postgres
from reconciler.db.engine import Database
from reconciler.db.tables import inbox_events
from reconciler.inbox import group_commit as group_commit_module
from reconciler.inbox import inserts
from reconciler.inbox.events import NewEvent
from reconciler.inbox.group_commit import (
    EngineCommit,
    GroupCommit,
    PostgresCommit,
    SqliteCommit,
    open_group_commit,
)


def new_event(
    stripe_id: str = "evt_1",
    *,
    ignored: str | None = None,
    account: str | None = None,
    payload: str | None = None,
) -> NewEvent:
    return NewEvent(
        stripe_event_id=stripe_id,
        endpoint="connect" if account else "platform",
        event_type="charge.succeeded",
        livemode=False,
        account=account,
        stripe_created=1_790_000_000,
        payload=payload if payload is not None else json.dumps({"id": stripe_id}),
        ignored_reason=ignored,
    )


@pytest.fixture
async def group(db: Database) -> AsyncIterator[GroupCommit]:
    opened = open_group_commit(db)
    try:
        yield opened
    finally:
        await opened.close()


async def stored_ids(db: Database) -> list[str]:
    async with db.read() as conn:
        rows = await conn.execute(
            select(inbox_events.c.stripe_event_id).order_by(inbox_events.c.stripe_event_id)
        )
        return list(rows.scalars())


async def row_of(db: Database, stripe_id: str) -> dict[str, Any]:
    async with db.read() as conn:
        where = inbox_events.c.stripe_event_id == stripe_id
        row = dict((await conn.execute(select(inbox_events).where(where))).one()._mapping)
        # As the database holds it, without SQLAlchemy's result processing.
        raw = (
            await conn.execute(
                text("SELECT * FROM inbox_events WHERE stripe_event_id = :id"), {"id": stripe_id}
            )
        ).one()
    row["raw"] = dict(raw._mapping)
    for values in (row, row["raw"]):
        del values["id"], values["stripe_event_id"]
    return row


async def test_open_group_commit_picks_the_strategy_for_the_database(
    db: Database, group: GroupCommit
) -> None:
    expected = PostgresCommit if is_postgres(db) else SqliteCommit
    assert type(group) is expected


async def test_open_group_commit_in_memory_sqlite_goes_through_the_engine() -> None:
    # No file a second connection could open: the shared engine is the only way in.
    database = Database("sqlite+aiosqlite://")
    try:
        group = open_group_commit(database)
        assert type(group) is EngineCommit
        await group.close()
    finally:
        await database.dispose()


async def test_group_commit_returns_only_the_new_and_stores_each_once(
    db: Database, group: GroupCommit, now: datetime
) -> None:
    first = await group.commit([new_event("evt_1"), new_event("evt_2")], now)
    assert first == {"evt_1", "evt_2"}
    second = await group.commit(
        [new_event("evt_2"), new_event("evt_3"), new_event("evt_1"), new_event("evt_4")], now
    )
    assert second == {"evt_3", "evt_4"}
    assert await group.commit([new_event("evt_4")], now) == set()
    assert await group.commit([], now) == set()
    assert await stored_ids(db) == ["evt_1", "evt_2", "evt_3", "evt_4"]


async def test_group_commit_one_event_twice_in_a_batch_is_one_row(
    db: Database, group: GroupCommit, now: datetime
) -> None:
    assert await group.commit([new_event("evt_1"), new_event("evt_1")], now) == {"evt_1"}
    assert await stored_ids(db) == ["evt_1"]


@pytest.mark.parametrize(
    "variant",
    [
        pytest.param({}, id="received"),
        pytest.param({"ignored": "live-mode event, we run in test mode"}, id="ignored"),
        pytest.param({"account": "acct_1"}, id="connect"),
    ],
)
async def test_group_commit_rows_are_those_insert_events_writes(
    db: Database, group: GroupCommit, variant: dict[str, Any]
) -> None:
    # An aware time that is not UTC, with microseconds, so its conversion is exercised too.
    at = datetime(2026, 11, 26, 13, 0, 0, 654321, tzinfo=timezone(timedelta(hours=1)))
    payload = json.dumps({"id": "evt", "note": "caf\u00e9 'quoted' \"twice\""}, ensure_ascii=False)
    assert await group.commit([new_event("evt_store", payload=payload, **variant)], at) == {
        "evt_store"
    }
    async with db.write() as conn:
        await inserts.insert_events(conn, [new_event("evt_engine", payload=payload, **variant)], at)
    through_store, through_engine = await row_of(db, "evt_store"), await row_of(db, "evt_engine")
    assert through_store == through_engine
    assert through_store["received_at"] == at and through_store["received_at"].utcoffset() == (
        timedelta(0)
    )
    assert through_store["payload"] == payload


@pytest.mark.postgres
async def test_postgres_commit_recovers_after_its_connection_is_broken(
    db: Database, group: GroupCommit, now: datetime
) -> None:
    if not is_postgres(db):
        pytest.skip("PostgreSQL only: the group commit's own server connection")
    assert await group.commit([new_event("evt_1")], now) == {"evt_1"}
    # The server ends every other session on this database: its connection with it.
    others = (
        "datname = current_database() AND pid <> pg_backend_pid()"
        " AND backend_type = 'client backend'"
    )
    admin = Database(db.url)
    try:
        async with admin.read() as conn:
            await conn.execute(
                text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE {others}")
            )
        for _ in range(500):  # termination is asynchronous: wait until they are gone
            async with admin.read() as conn:  # a transaction sees one snapshot of the view
                left = await conn.scalar(
                    text(f"SELECT count(*) FROM pg_stat_activity WHERE {others}")
                )
            if left == 0:
                break
            await asyncio.sleep(0.01)
        assert left == 0
    finally:
        await admin.dispose()
    # Which error depends on when the driver notices: the closed socket, or the server's
    # "terminating connection" message.
    with pytest.raises((asyncpg.InterfaceError, asyncpg.PostgresError, OSError)):
        await group.commit([new_event("evt_2")], now)
    assert await group.commit([new_event("evt_2"), new_event("evt_3")], now) == {"evt_2", "evt_3"}
    assert await stored_ids(db) == ["evt_1", "evt_2", "evt_3"]


async def test_sqlite_commit_waits_its_turn_behind_a_write_of_the_same_database(
    db: Database, group: GroupCommit, now: datetime, monkeypatch: pytest.MonkeyPatch
) -> None:
    if is_postgres(db):
        pytest.skip("SQLite only: one writer at a time")
    # SQLite's own wait for the lock is cut short, so a commit that did not queue behind the
    # open write in the event loop (and went straight to SQLite) would fail "database is
    # locked" instead of waiting. Connections are opened after this, so all of them get it.
    monkeypatch.setattr(engine_module, "SQLITE_BUSY_TIMEOUT_MS", 50)
    monkeypatch.setattr(group_commit_module, "SQLITE_BUSY_TIMEOUT_MS", 50)
    async with db.write() as conn:
        await inserts.insert_events(conn, [new_event("evt_write")], now)  # holds the write lock
        pending = asyncio.create_task(group.commit([new_event("evt_store")], now))
        await asyncio.sleep(0.3)  # several busy timeouts
        assert not pending.done()
    assert await asyncio.wait_for(pending, timeout=5) == {"evt_store"}
    assert await stored_ids(db) == ["evt_store", "evt_write"]


async def test_sqlite_commit_and_writes_interleave_without_losing_a_row(
    db: Database, group: GroupCommit, now: datetime
) -> None:
    if is_postgres(db):
        pytest.skip("SQLite only: one writer at a time")

    async def through_engine(n: int) -> None:
        async with db.write() as conn:
            await inserts.insert_events(conn, [new_event(f"evt_engine_{n}")], now)

    async def through_group_commit(n: int) -> set[str]:
        return await group.commit([new_event(f"evt_store_{n}")], now)

    results = await asyncio.gather(
        *(through_engine(n) for n in range(10)), *(through_group_commit(n) for n in range(10))
    )
    assert results[10:] == [{f"evt_store_{n}"} for n in range(10)]
    async with db.read() as conn:
        assert await conn.scalar(select(func.count()).select_from(inbox_events)) == 20
