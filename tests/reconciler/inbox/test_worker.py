from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from reconciler.config import Settings
from reconciler.db.engine import Database
from reconciler.db.tables import inbox_events
from reconciler.inbox import claims, inserts, queries
from reconciler.inbox.events import InboxEvent, InboxPolicy, NewEvent
from reconciler.inbox.worker import InboxWorker
from reconciler.metrics import Metrics

SETTINGS = Settings()
POLICY = replace(
    InboxPolicy.from_settings(SETTINGS),
    max_attempts=2,
    backoff_base_seconds=60,
    backoff_cap_seconds=600,
)
BATCH = SETTINGS.inbox_batch_size


class FakeApplier:
    """Records what it applied; fails the events named in `failing`."""

    def __init__(self, failing: set[str] | None = None) -> None:
        self.applied: list[str] = []
        self.failing = failing or set()

    async def __call__(self, event: InboxEvent) -> None:
        if event.stripe_event_id in self.failing:
            raise RuntimeError(f"cannot apply {event.event_type}")
        self.applied.append(event.stripe_event_id)


async def store(db: Database, now: datetime, *ids: str) -> None:
    events = [
        NewEvent(i, "platform", "charge.succeeded", False, None, 1, f'{{"id":"{i}"}}') for i in ids
    ]
    async with db.write() as conn:
        await inserts.insert_events(conn, events, now)


async def statuses(db: Database) -> list[tuple[str, str, int, str | None]]:
    columns = inbox_events.c
    async with db.read() as conn:
        result = await conn.execute(
            select(
                columns.stripe_event_id, columns.status, columns.attempts, columns.last_error
            ).order_by(columns.id)
        )
        return [tuple(row) for row in result]  # type: ignore[misc]


async def test_worker_applies_and_marks_done_and_running_twice_changes_nothing(
    db: Database, now: datetime
) -> None:
    await store(db, now, "evt_1", "evt_2")
    applier = FakeApplier()
    worker = InboxWorker(db, applier, policy=POLICY, batch_size=BATCH)
    assert await worker.run_once(now) == 2
    assert await worker.run_once(now) == 0  # cron runs again: nothing applied twice
    assert applier.applied == ["evt_1", "evt_2"]
    assert await statuses(db) == [("evt_1", "done", 1, None), ("evt_2", "done", 1, None)]


async def test_worker_failure_is_kept_retried_after_backoff_then_dead(
    db: Database, now: datetime
) -> None:
    await store(db, now, "evt_bad", "evt_good")
    applier = FakeApplier(failing={"evt_bad"})
    metrics = Metrics()
    worker = InboxWorker(db, applier, policy=POLICY, batch_size=BATCH, metrics=metrics)
    await worker.run_once(now)
    assert await statuses(db) == [
        ("evt_bad", "failed", 1, "RuntimeError: cannot apply charge.succeeded"),
        ("evt_good", "done", 1, None),
    ]
    assert await worker.run_once(now + timedelta(seconds=59)) == 0  # still backing off
    assert await worker.run_once(now + timedelta(seconds=60)) == 1
    assert (await statuses(db))[0][:3] == ("evt_bad", "dead", 2)
    assert await worker.run_once(now + timedelta(days=1)) == 0
    sample = metrics.registry.get_sample_value
    assert sample("reconciler_inbox_apply_failures_total") == 2
    assert sample("reconciler_inbox_dead_events_total") == 1
    assert sample("reconciler_inbox_applied_events_total") == 1
    assert sample("reconciler_inbox_apply_duration_seconds_count") == 3


async def test_worker_replayed_dead_event_is_applied(db: Database, now: datetime) -> None:
    await store(db, now, "evt_1")
    applier = FakeApplier(failing={"evt_1"})
    worker = InboxWorker(db, applier, policy=POLICY, batch_size=BATCH)
    await worker.run_once(now)
    await worker.run_once(now + timedelta(hours=1))
    applier.failing.clear()  # the bug is fixed
    later = now + timedelta(hours=2)
    async with db.write() as conn:
        await queries.replay(conn, "evt_1", later)
    assert await worker.run_once(later) == 1
    assert applier.applied == ["evt_1"]
    assert (await statuses(db))[0][:2] == ("evt_1", "done")


async def test_worker_loop_wakes_on_new_rows_and_stops_cleanly(db: Database, now: datetime) -> None:
    applier = FakeApplier()
    # A poll interval far longer than the test: only wake() can make it look.
    worker = InboxWorker(db, applier, policy=POLICY, batch_size=BATCH, poll_interval=60)
    worker.start()
    try:
        await asyncio.sleep(0.05)
        await store(db, datetime.now(now.tzinfo), "evt_woken")
        worker.wake()
        for _ in range(200):
            if applier.applied:
                break
            await asyncio.sleep(0.01)
    finally:
        await worker.stop()
    assert applier.applied == ["evt_woken"]


async def test_worker_loop_polls_for_rows_stored_elsewhere(db: Database, now: datetime) -> None:
    applier = FakeApplier()
    worker = InboxWorker(db, applier, policy=POLICY, batch_size=BATCH, poll_interval=0.05)
    worker.start()
    try:
        await store(db, datetime.now(now.tzinfo), "evt_polled")  # no wake(): another instance
        for _ in range(200):
            if applier.applied:
                break
            await asyncio.sleep(0.01)
    finally:
        await worker.stop()
    assert applier.applied == ["evt_polled"]


async def test_worker_stop_gives_back_the_rest_of_the_batch(db: Database, now: datetime) -> None:
    await store(db, now, "evt_1", "evt_2", "evt_3")
    started = asyncio.Event()
    release = asyncio.Event()
    seen: list[str] = []

    async def slow(event: InboxEvent) -> None:
        seen.append(event.stripe_event_id)
        started.set()
        await release.wait()

    worker = InboxWorker(db, slow, policy=POLICY, batch_size=BATCH, poll_interval=60)
    worker.start()
    await asyncio.wait_for(started.wait(), 5)
    stopping = asyncio.create_task(worker.stop())
    await asyncio.sleep(0.05)
    release.set()
    await stopping
    assert seen == ["evt_1"]
    assert [row[:3] for row in await statuses(db)] == [
        ("evt_1", "done", 1),
        ("evt_2", "received", 0),
        ("evt_3", "received", 0),
    ]


async def test_worker_keeps_a_slow_batch_leased_until_it_is_done(
    db: Database, now: datetime
) -> None:
    """A batch that outlives a third of its lease renews the rest, so no other instance
    takes rows this worker is still going to apply."""
    policy = replace(POLICY, max_attempts=3, lease_seconds=1)
    await store(db, now, "evt_1", "evt_2", "evt_3")
    seen_by_other_instance: list[list[InboxEvent]] = []

    class SlowApplier(FakeApplier):
        async def __call__(self, event: InboxEvent) -> None:
            await asyncio.sleep(0.4)
            seen_by_other_instance.append(
                await claims.claim_due(db, datetime.now(now.tzinfo), limit=10, policy=policy)
            )
            await super().__call__(event)

    applier = SlowApplier()
    worker = InboxWorker(db, applier, policy=policy, batch_size=BATCH)
    assert await worker.run_once() == 3
    assert applier.applied == ["evt_1", "evt_2", "evt_3"]
    assert seen_by_other_instance == [[], [], []]
    assert [row[:3] for row in await statuses(db)] == [
        ("evt_1", "done", 1),
        ("evt_2", "done", 1),
        ("evt_3", "done", 1),
    ]


class FakeBatchApplier(FakeApplier):
    """Applies a batch in the worker's transaction: marks each row it applies there, so a
    rollback shows. `before_apply` runs between prepare and the transaction."""

    def __init__(self, failing: set[str] | None = None) -> None:
        super().__init__(failing)
        self.prepared: list[list[str]] = []
        self.batches: list[list[str]] = []
        self.before_apply: Callable[[], Awaitable[object]] | None = None

    async def prepare(self, events: Sequence[InboxEvent]) -> FakeBatchApplier:
        self.prepared.append([event.stripe_event_id for event in events])
        if self.before_apply is not None:
            await self.before_apply()
        return self

    async def apply(self, conn: AsyncConnection, events: Sequence[InboxEvent]) -> None:
        self.batches.append([event.stripe_event_id for event in events])
        ids = [event.id for event in events]
        await conn.execute(
            update(inbox_events).where(inbox_events.c.id.in_(ids)).values(last_error="applying")
        )
        if self.failing & {event.stripe_event_id for event in events}:
            raise RuntimeError("the batch is spoiled")
        self.applied.extend(event.stripe_event_id for event in events)


async def test_worker_applies_fresh_rows_in_its_own_transaction_only_those_it_took(
    db: Database, now: datetime
) -> None:
    await store(db, now, "evt_1", "evt_2", "evt_3")
    applier = FakeBatchApplier()
    other: list[InboxEvent] = []

    async def another_worker_claims_one() -> None:
        other.extend(await claims.claim_due(db, now, limit=1, policy=POLICY))

    applier.before_apply = another_worker_claims_one
    worker = InboxWorker(db, applier, policy=POLICY, batch_size=BATCH)
    assert await worker.run_once(now) == 2
    assert applier.prepared == [["evt_1", "evt_2", "evt_3"]]
    assert applier.batches == [["evt_2", "evt_3"]]  # evt_1 was taken by the other worker
    assert await statuses(db) == [
        ("evt_1", "processing", 1, None),
        ("evt_2", "done", 1, None),
        ("evt_3", "done", 1, None),
    ]


async def test_worker_batch_that_fails_is_rolled_back_and_applied_one_at_a_time(
    db: Database, now: datetime
) -> None:
    await store(db, now, "evt_1", "evt_bad", "evt_3")
    applier = FakeBatchApplier(failing={"evt_bad"})
    worker = InboxWorker(db, applier, policy=POLICY, batch_size=BATCH)
    assert await worker.run_once(now) == 3
    assert applier.batches == [["evt_1", "evt_bad", "evt_3"]]
    assert applier.applied == ["evt_1", "evt_3"]  # one at a time, after the rollback
    assert await statuses(db) == [
        ("evt_1", "done", 1, None),  # "applying" was rolled back, then done alone
        ("evt_bad", "failed", 1, "RuntimeError: cannot apply charge.succeeded"),
        ("evt_3", "done", 1, None),
    ]


async def test_retry_due_applies_only_retries_whose_time_has_come_and_once(
    db: Database, now: datetime
) -> None:
    """What the scheduler's `inbox_retries` job calls: rows never tried are left to the worker
    loop's batches, and a failed row waits out its backoff."""
    await store(db, now, "evt_1", "evt_2")
    applier = FakeApplier(failing={"evt_1", "evt_2"})
    worker = InboxWorker(db, applier, policy=POLICY, batch_size=BATCH)
    assert await worker.retry_due(now) == (0, 0)  # never tried: not a retry
    assert await worker.run_once(now) == 2  # both fail, due again in 60 s
    applier.failing = {"evt_2"}
    assert await worker.retry_due(now + timedelta(seconds=30)) == (0, 0)  # backoff not over
    assert await worker.retry_due(now + timedelta(seconds=60)) == (2, 1)
    assert await worker.retry_due(now + timedelta(seconds=60)) == (0, 0)  # run twice: nothing
    assert applier.applied == ["evt_1"]
    assert [(i, status, tries) for i, status, tries, _ in await statuses(db)] == [
        ("evt_1", "done", 2),
        ("evt_2", "dead", 2),
    ]
