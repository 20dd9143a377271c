"""New events become rows once each, however many deliveries race."""

from __future__ import annotations

import asyncio
from datetime import datetime

from sqlalchemy import func, select

from reconciler.db.engine import Database
from reconciler.db.tables import inbox_events
from reconciler.inbox import inserts
from tests.reconciler.inbox.rows import insert, new_event, statuses


async def test_insert_is_new_once_then_a_duplicate(db: Database, now: datetime) -> None:
    async with db.write() as conn:
        assert await inserts.insert_event(conn, new_event(), now) is True
    async with db.write() as conn:
        assert await inserts.insert_event(conn, new_event(), now) is False
    assert await statuses(db) == {"evt_1": ("received", 0)}


async def test_insert_many_reports_only_the_new(db: Database, now: datetime) -> None:
    await insert(db, now, "evt_1")
    async with db.write() as conn:
        new = await inserts.insert_events(conn, [new_event("evt_1"), new_event("evt_2")], now)
    assert new == {"evt_2"}


async def test_insert_one_event_concurrently_makes_one_row(db: Database, now: datetime) -> None:
    async def deliver() -> bool:
        async with db.write() as conn:
            return await inserts.insert_event(conn, new_event("evt_race"), now)

    results = await asyncio.gather(*(deliver() for _ in range(8)))
    assert sorted(results) == [False] * 7 + [True]
    async with db.read() as conn:
        assert await conn.scalar(select(func.count()).select_from(inbox_events)) == 1
