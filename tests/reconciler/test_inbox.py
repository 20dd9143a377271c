from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from reconciler import inbox
from reconciler.db.engine import Database
from reconciler.db.tables import inbox_events
from reconciler.errors import NotFound
from reconciler.inbox import InboxPolicy, NewEvent

POLICY = InboxPolicy(max_attempts=3, backoff_base_seconds=10, backoff_cap_seconds=25)


def new_event(stripe_id: str = "evt_1", *, ignored: str | None = None) -> NewEvent:
    return NewEvent(
        stripe_event_id=stripe_id,
        endpoint="platform",
        event_type="charge.succeeded",
        livemode=False,
        account=None,
        stripe_created=1_790_000_000,
        payload=json.dumps({"id": stripe_id}),
        ignored_reason=ignored,
    )


async def store(db: Database, now: datetime, *ids: str) -> None:
    async with db.write() as conn:
        await inbox.store_events(conn, [new_event(i) for i in ids], now)


async def statuses(db: Database) -> dict[str, tuple[str, int]]:
    async with db.read() as conn:
        rows = await conn.execute(
            select(inbox_events.c.stripe_event_id, inbox_events.c.status, inbox_events.c.attempts)
        )
        return {row[0]: (row[1], row[2]) for row in rows}


async def test_inbox_store_is_new_once_then_a_duplicate(db: Database, now: datetime) -> None:
    async with db.write() as conn:
        assert await inbox.store_event(conn, new_event(), now) is True
    async with db.write() as conn:
        assert await inbox.store_event(conn, new_event(), now) is False
    assert await statuses(db) == {"evt_1": ("received", 0)}


async def test_inbox_store_many_reports_only_the_new(db: Database, now: datetime) -> None:
    await store(db, now, "evt_1")
    async with db.write() as conn:
        new = await inbox.store_events(conn, [new_event("evt_1"), new_event("evt_2")], now)
    assert new == {"evt_2"}


async def test_inbox_one_event_stored_concurrently_makes_one_row(
    db: Database, now: datetime
) -> None:
    async def deliver() -> bool:
        async with db.write() as conn:
            return await inbox.store_event(conn, new_event("evt_race"), now)

    results = await asyncio.gather(*(deliver() for _ in range(8)))
    assert sorted(results) == [False] * 7 + [True]
    async with db.read() as conn:
        assert await conn.scalar(select(func.count()).select_from(inbox_events)) == 1


async def test_inbox_claim_leases_due_rows_in_order_once(db: Database, now: datetime) -> None:
    await store(db, now, "evt_1", "evt_2", "evt_3")
    claimed = await inbox.claim_due(db, now, limit=2, policy=POLICY)
    assert [(e.stripe_event_id, e.attempts, e.payload) for e in claimed] == [
        ("evt_1", 1, '{"id": "evt_1"}'),
        ("evt_2", 1, '{"id": "evt_2"}'),
    ]
    again = await inbox.claim_due(db, now, limit=10, policy=POLICY)
    assert [e.stripe_event_id for e in again] == ["evt_3"]
    assert await inbox.claim_due(db, now, limit=10, policy=POLICY) == []


async def test_inbox_done_rows_are_never_claimed_again(db: Database, now: datetime) -> None:
    await store(db, now, "evt_1")
    [event] = await inbox.claim_due(db, now, limit=10, policy=POLICY)
    async with db.write() as conn:
        await inbox.mark_done(conn, [event], now)
        await inbox.mark_done(conn, [event], now)  # twice: nothing changes
    later = now + timedelta(days=1)
    assert await inbox.claim_due(db, later, limit=10, policy=POLICY) == []
    assert await statuses(db) == {"evt_1": ("done", 1)}


async def test_inbox_failure_backs_off_exponentially_then_dies(db: Database, now: datetime) -> None:
    await store(db, now, "evt_1")
    clock = now
    for attempt, delay, status in [(1, 10, "failed"), (2, 20, "failed"), (3, 25, "dead")]:
        [event] = await inbox.claim_due(db, clock, limit=10, policy=POLICY)
        assert event.attempts == attempt
        async with db.write() as conn:
            assert await inbox.mark_failed(conn, event, "boom", clock, POLICY) == status
        if status == "dead":
            break
        # Not due a second before the backoff ends; due at its end.
        early = clock + timedelta(seconds=delay - 1)
        assert await inbox.claim_due(db, early, limit=10, policy=POLICY) == []
        clock += timedelta(seconds=delay)
    assert await statuses(db) == {"evt_1": ("dead", 3)}
    assert await inbox.claim_due(db, clock + timedelta(days=9), limit=10, policy=POLICY) == []
    async with db.read() as conn:
        [summary] = await inbox.list_events(conn, status="dead")
    assert summary.last_error == "boom"


def test_inbox_backoff_is_capped() -> None:
    policy = InboxPolicy(backoff_base_seconds=10, backoff_cap_seconds=3600)
    assert [policy.backoff(n).total_seconds() for n in (1, 2, 3, 9, 500)] == [
        10,
        20,
        40,
        2560,
        3600,
    ]


async def test_inbox_expired_lease_is_claimed_again(db: Database, now: datetime) -> None:
    await store(db, now, "evt_1")
    await inbox.claim_due(db, now, limit=10, policy=POLICY)  # this worker then dies
    lease = timedelta(seconds=POLICY.lease_seconds)
    assert (
        await inbox.claim_due(db, now + lease - timedelta(seconds=1), limit=9, policy=POLICY) == []
    )
    [again] = await inbox.claim_due(db, now + lease, limit=10, policy=POLICY)
    assert again.attempts == 2


async def test_inbox_lease_lost_too_often_is_dead(db: Database, now: datetime) -> None:
    await store(db, now, "evt_1")
    clock = now
    for _ in range(POLICY.max_attempts):
        assert len(await inbox.claim_due(db, clock, limit=10, policy=POLICY)) == 1
        clock += timedelta(seconds=POLICY.lease_seconds)
    assert await inbox.claim_due(db, clock, limit=10, policy=POLICY) == []
    assert await statuses(db) == {"evt_1": ("dead", 3)}


async def test_inbox_release_gives_rows_back_without_counting(db: Database, now: datetime) -> None:
    await store(db, now, "evt_1")
    [event] = await inbox.claim_due(db, now, limit=10, policy=POLICY)
    async with db.write() as conn:
        await inbox.release(conn, [event.id], now)
    [again] = await inbox.claim_due(db, now, limit=10, policy=POLICY)
    assert again.attempts == 1


async def test_inbox_ignored_events_are_kept_but_never_claimed(db: Database, now: datetime) -> None:
    async with db.write() as conn:
        await inbox.store_event(conn, new_event("evt_live", ignored="live-mode event"), now)
        await inbox.store_event(conn, new_event("evt_2"), now)
    [event] = await inbox.claim_due(db, now, limit=10, policy=POLICY)
    async with db.write() as conn:
        await inbox.mark_ignored(conn, event.id, "not ours", now)
    assert await statuses(db) == {"evt_live": ("ignored", 0), "evt_2": ("ignored", 1)}
    assert await inbox.claim_due(db, now, limit=10, policy=POLICY) == []


async def test_inbox_replay_makes_a_dead_event_due_now(db: Database, now: datetime) -> None:
    await store(db, now, "evt_1")
    for _ in range(POLICY.max_attempts):
        [event] = await inbox.claim_due(db, now + timedelta(hours=1), limit=1, policy=POLICY)
        async with db.write() as conn:
            await inbox.mark_failed(conn, event, "boom", now, POLICY)
    later = now + timedelta(hours=2)
    async with db.write() as conn:
        summary = await inbox.replay(conn, "evt_1", later)
    assert (summary.status, summary.attempts, summary.next_attempt_at) == ("received", 0, later)
    [event] = await inbox.claim_due(db, later, limit=1, policy=POLICY)
    assert event.attempts == 1


async def test_inbox_replay_refuses_what_is_not_failed(db: Database, now: datetime) -> None:
    await store(db, now, "evt_1")
    async with db.write() as conn:
        with pytest.raises(inbox.ReplayRefused, match="evt_1 is received"):
            await inbox.replay(conn, "evt_1", now)
        with pytest.raises(NotFound):
            await inbox.replay(conn, "evt_missing", now)
        [row] = await inbox.list_events(conn)
        assert (await inbox.find(conn, str(row.id))).stripe_event_id == "evt_1"


async def test_inbox_backlog_counts_what_waits(db: Database, now: datetime) -> None:
    async with db.read() as conn:
        assert await inbox.backlog(conn, now) == inbox.Backlog(0, 0.0)
    await store(db, now, "evt_1")
    await store(db, now + timedelta(seconds=30), "evt_2", "evt_3")
    [first] = await inbox.claim_due(db, now + timedelta(seconds=30), limit=1, policy=POLICY)
    async with db.write() as conn:
        await inbox.mark_done(conn, [first], now)
    async with db.read() as conn:
        assert await inbox.backlog(conn, now + timedelta(seconds=90)) == inbox.Backlog(2, 60.0)


async def test_inbox_list_filters_by_status_newest_first(db: Database, now: datetime) -> None:
    await store(db, now, "evt_1", "evt_2")
    async with db.read() as conn:
        assert [s.stripe_event_id for s in await inbox.list_events(conn)] == ["evt_2", "evt_1"]
        assert await inbox.list_events(conn, status="failed") == []


async def test_inbox_concurrent_claims_never_share_a_row(db: Database, now: datetime) -> None:
    await store(db, now, *(f"evt_{n}" for n in range(20)))
    batches = await asyncio.gather(
        *(inbox.claim_due(db, now, limit=5, policy=POLICY) for _ in range(4))
    )
    ids = [event.id for batch in batches for event in batch]
    assert len(ids) == len(set(ids)) == 20


async def test_inbox_a_stale_claim_cannot_mark_a_reclaimed_row_done(
    db: Database, now: datetime
) -> None:
    await store(db, now, "evt_1")
    [stale] = await inbox.claim_due(db, now, limit=10, policy=POLICY)  # then too slow
    lease = timedelta(seconds=POLICY.lease_seconds)
    [current] = await inbox.claim_due(db, now + lease, limit=10, policy=POLICY)
    async with db.write() as conn:
        await inbox.mark_done(conn, [stale], now + lease)
    assert (await statuses(db))["evt_1"] == ("processing", 2)
    async with db.write() as conn:
        await inbox.mark_done(conn, [current], now + lease)
    assert (await statuses(db))["evt_1"] == ("done", 2)
