"""What operators ask: replay, listing, the backlog."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from reconciler.db.engine import Database
from reconciler.errors import NotFound
from reconciler.inbox import claims, queries
from tests.reconciler.inbox.rows import POLICY, insert


async def test_replay_makes_a_dead_event_due_now(db: Database, now: datetime) -> None:
    await insert(db, now, "evt_1")
    for _ in range(POLICY.max_attempts):
        [event] = await claims.claim_due(db, now + timedelta(hours=1), limit=1, policy=POLICY)
        async with db.write() as conn:
            await claims.mark_failed(conn, event, "boom", now, POLICY)
    later = now + timedelta(hours=2)
    async with db.write() as conn:
        summary = await queries.replay(conn, "evt_1", later)
    assert (summary.status, summary.attempts, summary.next_attempt_at) == ("received", 0, later)
    [event] = await claims.claim_due(db, later, limit=1, policy=POLICY)
    assert event.attempts == 1


async def test_replay_refuses_what_is_not_failed(db: Database, now: datetime) -> None:
    await insert(db, now, "evt_1")
    async with db.write() as conn:
        with pytest.raises(queries.ReplayRefused, match="evt_1 is received"):
            await queries.replay(conn, "evt_1", now)
        with pytest.raises(NotFound):
            await queries.replay(conn, "evt_missing", now)
        [row] = await queries.list_events(conn)
        assert (await queries.find(conn, str(row.id))).stripe_event_id == "evt_1"


async def test_backlog_counts_what_waits(db: Database, now: datetime) -> None:
    async with db.read() as conn:
        assert await queries.backlog(conn, now) == queries.Backlog(0, 0.0)
    await insert(db, now, "evt_1")
    await insert(db, now + timedelta(seconds=30), "evt_2", "evt_3")
    [first] = await claims.claim_due(db, now + timedelta(seconds=30), limit=1, policy=POLICY)
    async with db.write() as conn:
        await claims.mark_done(conn, [first], now)
    async with db.read() as conn:
        assert await queries.backlog(conn, now + timedelta(seconds=90)) == queries.Backlog(2, 60.0)


async def test_list_filters_by_status_newest_first(db: Database, now: datetime) -> None:
    await insert(db, now, "evt_1", "evt_2")
    async with db.read() as conn:
        assert [s.stripe_event_id for s in await queries.list_events(conn)] == ["evt_2", "evt_1"]
        assert await queries.list_events(conn, status="failed") == []
