"""Claims and leases: rows tried before, taken one worker at a time, changed only under the
claim that took them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from reconciler.db.engine import Database
from reconciler.db.tables import inbox_events
from reconciler.inbox import claims, inserts, queries
from reconciler.inbox.events import InboxEvent
from tests.reconciler.inbox.rows import POLICY, insert, new_event, statuses
from tests.reconciler.inbox.test_fresh import names, put, states, store


async def test_claim_leases_due_rows_in_order_once(db: Database, now: datetime) -> None:
    await insert(db, now, "evt_1", "evt_2", "evt_3")
    claimed = await claims.claim_due(db, now, limit=2, policy=POLICY)
    assert [(e.stripe_event_id, e.attempts, e.payload) for e in claimed] == [
        ("evt_1", 1, '{"id": "evt_1"}'),
        ("evt_2", 1, '{"id": "evt_2"}'),
    ]
    again = await claims.claim_due(db, now, limit=10, policy=POLICY)
    assert [e.stripe_event_id for e in again] == ["evt_3"]
    assert await claims.claim_due(db, now, limit=10, policy=POLICY) == []


async def test_done_rows_are_never_claimed_again(db: Database, now: datetime) -> None:
    await insert(db, now, "evt_1")
    [event] = await claims.claim_due(db, now, limit=10, policy=POLICY)
    async with db.write() as conn:
        await claims.mark_done(conn, [event], now)
        await claims.mark_done(conn, [event], now)  # twice: nothing changes
    later = now + timedelta(days=1)
    assert await claims.claim_due(db, later, limit=10, policy=POLICY) == []
    assert await statuses(db) == {"evt_1": ("done", 1)}


async def test_failure_backs_off_exponentially_then_dies(db: Database, now: datetime) -> None:
    await insert(db, now, "evt_1")
    clock = now
    for attempt, delay, status in [(1, 10, "failed"), (2, 20, "failed"), (3, 25, "dead")]:
        [event] = await claims.claim_due(db, clock, limit=10, policy=POLICY)
        assert event.attempts == attempt
        async with db.write() as conn:
            assert await claims.mark_failed(conn, event, "boom", clock, POLICY) == status
        if status == "dead":
            break
        # Not due a second before the backoff ends; due at its end.
        early = clock + timedelta(seconds=delay - 1)
        assert await claims.claim_due(db, early, limit=10, policy=POLICY) == []
        clock += timedelta(seconds=delay)
    assert await statuses(db) == {"evt_1": ("dead", 3)}
    assert await claims.claim_due(db, clock + timedelta(days=9), limit=10, policy=POLICY) == []
    async with db.read() as conn:
        [summary] = await queries.list_events(conn, status="dead")
    assert summary.last_error == "boom"


async def test_expired_lease_is_claimed_again(db: Database, now: datetime) -> None:
    await insert(db, now, "evt_1")
    await claims.claim_due(db, now, limit=10, policy=POLICY)  # this worker then dies
    lease = timedelta(seconds=POLICY.lease_seconds)
    assert (
        await claims.claim_due(db, now + lease - timedelta(seconds=1), limit=9, policy=POLICY) == []
    )
    [again] = await claims.claim_due(db, now + lease, limit=10, policy=POLICY)
    assert again.attempts == 2


async def test_lease_lost_too_often_is_dead(db: Database, now: datetime) -> None:
    await insert(db, now, "evt_1")
    clock = now
    for _ in range(POLICY.max_attempts):
        assert len(await claims.claim_due(db, clock, limit=10, policy=POLICY)) == 1
        clock += timedelta(seconds=POLICY.lease_seconds)
    assert await claims.claim_due(db, clock, limit=10, policy=POLICY) == []
    assert await statuses(db) == {"evt_1": ("dead", 3)}


async def test_release_gives_rows_back_without_counting(db: Database, now: datetime) -> None:
    await insert(db, now, "evt_1")
    [event] = await claims.claim_due(db, now, limit=10, policy=POLICY)
    async with db.write() as conn:
        await claims.release(conn, [event], now)
    [again] = await claims.claim_due(db, now, limit=10, policy=POLICY)
    assert again.attempts == 1


async def test_ignored_events_are_kept_but_never_claimed(db: Database, now: datetime) -> None:
    async with db.write() as conn:
        await inserts.insert_event(conn, new_event("evt_live", ignored="live-mode event"), now)
        await inserts.insert_event(conn, new_event("evt_2"), now)
    [event] = await claims.claim_due(db, now, limit=10, policy=POLICY)
    async with db.write() as conn:
        await claims.mark_ignored(conn, event, "not ours", now)
    assert await statuses(db) == {"evt_live": ("ignored", 0), "evt_2": ("ignored", 1)}
    assert await claims.claim_due(db, now, limit=10, policy=POLICY) == []


async def test_concurrent_claims_never_share_a_row(db: Database, now: datetime) -> None:
    await insert(db, now, *(f"evt_{n}" for n in range(20)))
    batches = await asyncio.gather(
        *(claims.claim_due(db, now, limit=5, policy=POLICY) for _ in range(4))
    )
    ids = [event.id for batch in batches for event in batch]
    assert len(ids) == len(set(ids)) == 20


async def test_a_stale_claim_cannot_mark_a_reclaimed_row_done(db: Database, now: datetime) -> None:
    await insert(db, now, "evt_1")
    [stale] = await claims.claim_due(db, now, limit=10, policy=POLICY)  # then too slow
    lease = timedelta(seconds=POLICY.lease_seconds)
    [current] = await claims.claim_due(db, now + lease, limit=10, policy=POLICY)
    async with db.write() as conn:
        await claims.mark_done(conn, [stale], now + lease)
    assert (await statuses(db))["evt_1"] == ("processing", 2)
    async with db.write() as conn:
        await claims.mark_done(conn, [current], now + lease)
    assert (await statuses(db))["evt_1"] == ("done", 2)


async def test_claim_due_tried_only_leaves_fresh_rows_and_claims_retries(
    db: Database, now: datetime
) -> None:
    await store(db, now, "evt_failed", "evt_stuck")
    failing, _ = await claims.claim_due(db, now, limit=10, policy=POLICY)  # the second: lost
    async with db.write() as conn:
        await claims.mark_failed(conn, failing, "boom", now, POLICY)  # retry in 10s
    await store(db, now, "evt_fresh")
    await put(db, "evt_released_after_a_try", now, attempts=1)
    seconds = POLICY.backoff(1).total_seconds()

    early = now + timedelta(seconds=seconds - 1)
    assert names(await claims.claim_due(db, early, limit=10, policy=POLICY, tried_only=True)) == [
        "evt_released_after_a_try"
    ]
    retry = await claims.claim_due(
        db, now + timedelta(seconds=seconds), limit=10, policy=POLICY, tried_only=True
    )
    assert [(event.stripe_event_id, event.attempts) for event in retry] == [("evt_failed", 2)]
    lease = now + timedelta(seconds=POLICY.lease_seconds)
    lost = await claims.claim_due(db, lease, limit=10, policy=POLICY, tried_only=True)
    assert [(event.stripe_event_id, event.attempts) for event in lost] == [("evt_stuck", 2)]
    assert (await states(db))["evt_fresh"] == ("received", 0)
    # The fresh row was due all along: only tried_only kept it out.
    assert names(await claims.claim_due(db, lease, limit=10, policy=POLICY)) == ["evt_fresh"]


async def row_state(db: Database) -> dict[str, object]:
    async with db.read() as conn:
        [row] = (await conn.execute(select(inbox_events))).all()
    return dict(row._mapping)


StaleChange = Callable[[AsyncConnection, InboxEvent, datetime], Awaitable[object]]
STALE_CHANGES: dict[str, StaleChange] = {
    "mark_done": lambda conn, event, at: claims.mark_done(conn, [event], at),
    "renew_lease": lambda conn, event, at: claims.renew_lease(conn, [event], at, POLICY),
    "mark_failed": lambda conn, event, at: claims.mark_failed(conn, event, "late", at, POLICY),
    "release": lambda conn, event, at: claims.release(conn, [event], at),
    "mark_ignored": lambda conn, event, at: claims.mark_ignored(conn, event, "not ours", at),
}


@pytest.mark.parametrize("change", list(STALE_CHANGES))
async def test_a_stale_claim_changes_nothing_of_a_reclaimed_row(
    db: Database, now: datetime, change: str
) -> None:
    await insert(db, now, "evt_1")
    [stale] = await claims.claim_due(db, now, limit=10, policy=POLICY)  # then its lease runs out
    lease = timedelta(seconds=POLICY.lease_seconds)
    [current] = await claims.claim_due(db, now + lease, limit=10, policy=POLICY)
    held = await row_state(db)
    async with db.write() as conn:
        await STALE_CHANGES[change](conn, stale, now + 2 * lease)
    assert await row_state(db) == held
    # The claim holding the row still can.
    async with db.write() as conn:
        await STALE_CHANGES[change](conn, current, now + 2 * lease)
    assert await row_state(db) != held


async def test_mark_failed_says_when_the_claim_was_lost(db: Database, now: datetime) -> None:
    await insert(db, now, "evt_1")
    [stale] = await claims.claim_due(db, now, limit=10, policy=POLICY)
    lease = timedelta(seconds=POLICY.lease_seconds)
    [current] = await claims.claim_due(db, now + lease, limit=10, policy=POLICY)
    async with db.write() as conn:
        assert await claims.mark_failed(conn, stale, "late", now + lease, POLICY) is None
        assert await claims.mark_failed(conn, current, "boom", now + lease, POLICY) == "failed"
