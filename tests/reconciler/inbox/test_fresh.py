"""The fresh-row path of the inbox: rows never tried go from received to done inside a batch's
own transaction (peek_fresh, take_fresh, mark_applied)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, text

from reconciler.db.dialect import is_postgres
from reconciler.db.engine import Database
from reconciler.db.tables import inbox_events
from reconciler.inbox import claims, inserts
from reconciler.inbox import fresh as fresh_rows
from reconciler.inbox.events import InboxEvent, NewEvent
from tests.reconciler.inbox.rows import POLICY


def new_event(stripe_id: str, *, ignored: str | None = None) -> NewEvent:
    return NewEvent(
        stripe_event_id=stripe_id,
        endpoint="connect",
        event_type="payment_intent.succeeded",
        livemode=False,
        account="acct_1",
        stripe_created=1_790_000_000,
        payload=json.dumps({"id": stripe_id}),
        ignored_reason=ignored,
    )


async def store(db: Database, at: datetime, *ids: str) -> None:
    async with db.write() as conn:
        await inserts.insert_events(conn, [new_event(i) for i in ids], at)


async def put(db: Database, stripe_id: str, at: datetime, **state: Any) -> None:
    """A row in a given state (status, attempts, next_attempt_at...), stored as is."""
    async with db.write() as conn:
        values = {**inserts.row_values(new_event(stripe_id), at), **state}
        await conn.execute(inbox_events.insert(), values)


async def rows(db: Database) -> dict[str, dict[str, Any]]:
    async with db.read() as conn:
        result = await conn.execute(select(inbox_events))
        return {row.stripe_event_id: dict(row._mapping) for row in result}


async def states(db: Database) -> dict[str, tuple[str, int]]:
    return {key: (row["status"], row["attempts"]) for key, row in (await rows(db)).items()}


async def peek(db: Database, now: datetime, limit: int = 100) -> list[InboxEvent]:
    async with db.read() as conn:
        return await fresh_rows.peek_fresh(conn, now, limit=limit)


def names(events: list[InboxEvent]) -> list[str]:
    return [event.stripe_event_id for event in events]


async def test_peek_fresh_returns_received_rows_never_tried_oldest_first(
    db: Database, now: datetime
) -> None:
    minute = timedelta(minutes=1)
    await store(db, now, "evt_late")
    await store(db, now - minute, "evt_early")  # stored after, but due before: first
    await store(db, now + minute, "evt_not_due_yet")
    await put(db, "evt_released_after_a_try", now - 2 * minute, attempts=1)
    await put(db, "evt_failed", now - 2 * minute, status="failed", attempts=1)
    await put(
        db,
        "evt_lease_ran_out",
        now - 2 * minute,
        status="processing",
        attempts=1,
        locked_until=now - minute,
    )
    await put(db, "evt_done", now - 2 * minute, status="done", attempts=1)
    async with db.write() as conn:
        await inserts.insert_events(conn, [new_event("evt_ignored", ignored="live mode")], now)
    before = await rows(db)

    fresh = await peek(db, now)

    assert names(fresh) == ["evt_early", "evt_late"]
    assert [event.attempts for event in fresh] == [1, 1]  # this try counts as the first
    [early, _] = fresh
    assert early == InboxEvent(
        id=before["evt_early"]["id"],
        stripe_event_id="evt_early",
        endpoint="connect",
        event_type="payment_intent.succeeded",
        livemode=False,
        account="acct_1",
        payload='{"id": "evt_early"}',
        attempts=1,
    )
    assert names(await peek(db, now, limit=1)) == ["evt_early"]
    assert names(await peek(db, now + minute)) == ["evt_early", "evt_late", "evt_not_due_yet"]
    assert await rows(db) == before  # nothing claimed, nothing changed


async def test_take_fresh_keeps_only_rows_still_fresh(db: Database, now: datetime) -> None:
    await store(db, now, "evt_1", "evt_2", "evt_3", "evt_4")
    fresh = await peek(db, now)
    assert names(fresh) == ["evt_1", "evt_2", "evt_3", "evt_4"]
    # Meanwhile a retry worker claims one, and another batch applies another.
    [claimed] = await claims.claim_due(db, now, limit=1, policy=POLICY)
    assert claimed.stripe_event_id == "evt_1"
    async with db.write() as conn:
        applied = await fresh_rows.take_fresh(conn, [fresh[1]], now)
        await fresh_rows.mark_applied(conn, applied, now)
    assert names(applied) == ["evt_2"]

    # A row never tried but not received (ignored) is not fresh either.
    async with db.write() as conn:
        await inserts.insert_events(conn, [new_event("evt_ignored", ignored="live mode")], now)
    ignored_id = (await rows(db))["evt_ignored"]["id"]
    ignored = dataclasses.replace(fresh[3], id=ignored_id, stripe_event_id="evt_ignored")

    async with db.write() as conn:
        taken = await fresh_rows.take_fresh(conn, [*fresh, ignored], now)
        assert await fresh_rows.take_fresh(conn, fresh, now - timedelta(seconds=1)) == []  # not due
    assert taken == fresh[2:]
    assert await states(db) == {
        "evt_1": ("processing", 1),
        "evt_2": ("done", 1),
        "evt_3": ("received", 0),
        "evt_4": ("received", 0),
        "evt_ignored": ("ignored", 0),
    }


@pytest.mark.postgres
async def test_take_fresh_skips_a_row_another_transaction_holds(
    db: Database, now: datetime
) -> None:
    if not is_postgres(db):
        pytest.skip("SQLite: the write lock keeps every other writer out")
    await store(db, now, "evt_1", "evt_2", "evt_3")
    fresh = await peek(db, now)
    async with db.engine.connect() as other, other.begin():
        held = select(inbox_events.c.id).where(inbox_events.c.id == fresh[1].id)
        await other.execute(held.with_for_update())
        async with db.write() as conn:
            # Skipped, not waited for: waiting would outlast the timeout (the lock is ours).
            taken = await asyncio.wait_for(fresh_rows.take_fresh(conn, fresh, now), timeout=5)
    assert names(taken) == ["evt_1", "evt_3"]


@pytest.mark.postgres
async def test_take_fresh_holds_its_rows_until_the_transaction_ends(
    db: Database, now: datetime
) -> None:
    if not is_postgres(db):
        pytest.skip("SQLite: the write lock keeps every other writer out")
    await store(db, now, "evt_1", "evt_2", "evt_3")
    fresh = await peek(db, now)
    free = text("SELECT stripe_event_id FROM inbox_events ORDER BY id FOR UPDATE SKIP LOCKED")
    async with db.write() as conn:
        taken = await fresh_rows.take_fresh(conn, fresh[:2], now)
        async with db.engine.connect() as other, other.begin():
            assert list((await other.execute(free)).scalars()) == ["evt_3"]
        await fresh_rows.mark_applied(conn, taken, now)
    async with db.engine.connect() as other, other.begin():
        assert list((await other.execute(free)).scalars()) == ["evt_1", "evt_2", "evt_3"]


async def test_mark_applied_makes_rows_done_at_their_first_try(db: Database, now: datetime) -> None:
    await store(db, now, "evt_1", "evt_2")
    later = now + timedelta(seconds=42)
    async with db.write() as conn:
        peeked = await fresh_rows.peek_fresh(conn, now, limit=1)
        taken = await fresh_rows.take_fresh(conn, peeked, now)
        await fresh_rows.mark_applied(conn, taken, later)
        await fresh_rows.mark_applied(conn, [], later)  # nothing to do, nothing done
    after = await rows(db)
    assert {
        name: after["evt_1"][name]
        for name in ("status", "attempts", "processed_at", "locked_until", "last_error")
    } == {
        "status": "done",
        "attempts": 1,
        "processed_at": later,
        "locked_until": None,
        "last_error": None,
    }
    assert (after["evt_2"]["status"], after["evt_2"]["attempts"]) == ("received", 0)
    assert after["evt_2"]["processed_at"] is None
    # Done for good: neither path picks it up again.
    assert names(await peek(db, later)) == ["evt_2"]
    claimed = await claims.claim_due(db, later + timedelta(days=1), limit=10, policy=POLICY)
    assert names(claimed) == ["evt_2"]
