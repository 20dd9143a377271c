"""The scheduler: a tick runs where the lease is held and the job is due, its run recorded
whatever the job does; the real APScheduler on two instances runs each tick once."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from reconciler.config import Secret
from reconciler.db.engine import Database
from reconciler.db.tables import job_runs
from reconciler.gateway import StripeGateway, call_priority
from reconciler.job_runs import start_run
from reconciler.ratelimit import Priority
from scheduler.jobs import Job
from scheduler.lease import take_lease
from scheduler.service import JobScheduler

LEASE = timedelta(seconds=30)


async def runs(db: Database) -> list[tuple[str, str, str, str | None]]:
    async with db.read() as conn:
        columns = (job_runs.c.job, job_runs.c.owner, job_runs.c.outcome, job_runs.c.detail)
        result = await conn.execute(select(*columns).order_by(job_runs.c.id))
        return [tuple(row) for row in result]  # type: ignore[misc]


class Counting:
    def __init__(self) -> None:
        self.calls: list[datetime] = []

    async def __call__(self, now: datetime) -> str:
        self.calls.append(now)
        return f"call {len(self.calls)}"


async def test_a_tick_runs_once_whoever_fires_it(db: Database, now: datetime) -> None:
    work = Counting()
    jobs = [Job("sweep", work, every=60)]
    first = JobScheduler(db, jobs, lease=LEASE, owner="a")
    second = JobScheduler(db, jobs, lease=LEASE, owner="b")
    assert await first.tick("sweep", now) is not None
    # The same tick fired by the other instance, and again by the first: nothing more.
    assert await second.tick("sweep", now + timedelta(seconds=1)) is None
    assert await first.tick("sweep", now + timedelta(seconds=1)) is None
    assert await first.tick("sweep", now + timedelta(seconds=60)) is not None
    assert work.calls == [now, now + timedelta(seconds=60)]
    assert await runs(db) == [
        ("sweep", "a", "succeeded", "call 1"),
        ("sweep", "a", "succeeded", "call 2"),
    ]


async def test_a_dead_owners_job_passes_on_when_its_lease_runs_out(
    db: Database, now: datetime
) -> None:
    work = Counting()
    jobs = [Job("sweep", work, every=10)]
    first = JobScheduler(db, jobs, lease=LEASE, owner="a")
    second = JobScheduler(db, jobs, lease=LEASE, owner="b")
    assert await first.tick("sweep", now) is not None
    # "a" dies. Its lease holds the job for LEASE, then "b" takes it.
    assert await second.tick("sweep", now + timedelta(seconds=10)) is None
    assert await second.tick("sweep", now + timedelta(seconds=20)) is None
    assert await second.tick("sweep", now + LEASE) is not None
    assert [owner for _, owner, _, _ in await runs(db)] == ["a", "b"]


async def test_the_run_a_dead_owner_left_running_ends_failed_when_its_job_passes_on(
    db: Database, now: datetime
) -> None:
    work = Counting()
    jobs = [Job("sweep", work, every=10)]
    first = JobScheduler(db, jobs, lease=LEASE, owner="a")
    second = JobScheduler(db, jobs, lease=LEASE, owner="b")
    # "a" is killed mid-run: its run is recorded started, never finished.
    async with db.write() as conn:
        await start_run(conn, "sweep", "a", now)
        await take_lease(conn, "sweep", "a", now, LEASE)
    assert await second.tick("sweep", now + timedelta(seconds=10)) is None
    assert await runs(db) == [("sweep", "a", "running", None)]
    assert await second.tick("sweep", now + LEASE) is not None
    assert await runs(db) == [
        ("sweep", "a", "failed", "abandoned: its instance stopped before the run finished"),
        ("sweep", "b", "succeeded", "call 1"),
    ]
    async with db.read() as conn:
        result = await conn.execute(select(job_runs.c.duration_ms).order_by(job_runs.c.id))
        assert result.scalars().first() == LEASE.total_seconds() * 1000
    # Its own runs are not another's to end.
    assert await first.tick("sweep", now + LEASE + timedelta(seconds=10)) is None


async def test_a_run_longer_than_its_lease_keeps_it(db: Database) -> None:
    lease = timedelta(seconds=0.3)
    started, finish = asyncio.Event(), asyncio.Event()

    async def long_job(at: datetime) -> str:
        if started.is_set():  # a second run, which must not happen (and must not hang)
            return "again"
        started.set()
        await finish.wait()
        return "done"

    jobs = [Job("long", long_job, every=0.2)]
    first = JobScheduler(db, jobs, lease=lease, owner="a")
    second = JobScheduler(db, jobs, lease=lease, owner="b")
    running = asyncio.create_task(first.tick("long"))
    await started.wait()
    # Three lease lengths later, the job is due again, but "a" still holds its lease.
    await asyncio.sleep(0.9)
    assert await second.tick("long") is None
    finish.set()
    assert await running is not None
    assert [(owner, outcome) for _, owner, outcome, _ in await runs(db)] == [("a", "succeeded")]


async def test_a_job_that_raises_is_a_failed_run_and_the_next_tick_runs(
    db: Database, now: datetime
) -> None:
    calls = []

    async def flaky(at: datetime) -> str:
        calls.append(at)
        if len(calls) == 1:
            raise RuntimeError("Stripe said no")
        return "fine"

    scheduler = JobScheduler(db, [Job("flaky", flaky, every=5)], lease=LEASE, owner="a")
    await scheduler.tick("flaky", now)
    await scheduler.tick("flaky", now + timedelta(seconds=5))
    assert await runs(db) == [
        ("flaky", "a", "failed", "RuntimeError: Stripe said no"),
        ("flaky", "a", "succeeded", "fine"),
    ]


async def test_a_nightly_job_runs_once_a_night(db: Database, now: datetime) -> None:
    work = Counting()
    jobs = [Job("reconcile", work, cron="0 3 * * *")]
    first = JobScheduler(db, jobs, lease=LEASE, owner="a")
    second = JobScheduler(db, jobs, lease=LEASE, owner="b")
    night = now.replace(hour=3, minute=0)
    await first.tick("reconcile", night)
    await second.tick("reconcile", night + timedelta(minutes=5))  # its lease ran out: not due
    await second.tick("reconcile", night + timedelta(days=1))
    assert work.calls == [night, night + timedelta(days=1)]
    assert jobs[0].next_after(night) == night + timedelta(days=1)


def test_a_job_says_when_it_runs() -> None:
    async def nothing(now: datetime) -> str:
        return ""

    assert Job("a", nothing, every=2.5).schedule == "every 2.5s"
    assert Job("b", nothing, cron="0 3 * * *").schedule == "cron 0 3 * * * UTC"
    with pytest.raises(ValueError, match="either"):
        Job("c", nothing)
    with pytest.raises(ValueError, match="either"):
        Job("d", nothing, every=1, cron="* * * * *")


INTERVAL = 0.4


async def test_two_instances_run_each_tick_once(db: Database, database_url: str) -> None:
    """Two real schedulers, each with its own database pool, their ticks a moment apart."""
    work = Counting()
    jobs = [Job("sweep", work, every=INTERVAL)]
    other_db = Database(database_url)
    first = JobScheduler(db, jobs, lease=timedelta(seconds=5), owner="a")
    second = JobScheduler(other_db, jobs, lease=timedelta(seconds=5), owner="b")
    try:
        first.start()
        await asyncio.sleep(INTERVAL / 3)
        second.start()
        await asyncio.sleep(INTERVAL * 10 + INTERVAL / 6)
    finally:
        await first.stop()
        await second.stop()
        await other_db.dispose()
    recorded = await runs(db)
    # Ten periods: ten ticks, each fired by both instances, each run by one.
    assert len(recorded) == len(work.calls)
    assert 9 <= len(recorded) <= 11, recorded
    gaps = [b - a for a, b in zip(work.calls, work.calls[1:], strict=False)]
    assert min(gaps) >= timedelta(seconds=INTERVAL / 2), gaps
    assert {outcome for _, _, outcome, _ in recorded} == {"succeeded"}


async def test_a_stop_lets_the_tick_in_hand_finish_and_a_slow_tick_is_not_doubled(
    db: Database,
) -> None:
    finished = []

    async def slow(now: datetime) -> str:
        await asyncio.sleep(0.5)
        finished.append(now)
        return "done"

    scheduler = JobScheduler(db, [Job("slow", slow, every=0.1)], lease=LEASE, owner="a")
    scheduler.start()
    await asyncio.sleep(0.35)  # ticks at 0.1, 0.2, 0.3: the first still running
    await scheduler.stop()
    assert len(finished) == 1
    assert await runs(db) == [("slow", "a", "succeeded", "done")]


async def test_ticks_of_a_scheduler_started_as_background_work_are_background_work(
    db: Database,
) -> None:
    """The runtime starts the scheduler inside `gateway.background()`: the jobs' Stripe calls
    wait behind those serving a user."""
    seen = []

    async def job(now: datetime) -> str:
        seen.append(call_priority())
        return ""

    gateway = StripeGateway(Secret("sk_test_priority"), "http://127.0.0.1:9")
    scheduler = JobScheduler(db, [Job("quick", job, every=0.1)], lease=LEASE, owner="a")
    try:
        async with gateway.background():
            scheduler.start()
        assert call_priority() is Priority.USER
        await asyncio.sleep(0.35)
    finally:
        await scheduler.stop()
        await gateway.aclose()
    assert seen and set(seen) == {Priority.BACKGROUND}
