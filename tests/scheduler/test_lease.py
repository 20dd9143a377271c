"""The job lease: one holder at a time, renewed by its owner, free once it runs out."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from reconciler.db.engine import Database
from reconciler.db.tables import job_leases
from scheduler.lease import release_leases, take_lease

LASTING = timedelta(seconds=30)


async def holder(db: Database, job: str) -> tuple[str, datetime] | None:
    async with db.read() as conn:
        row = (
            await conn.execute(
                select(job_leases.c.owner, job_leases.c.expires_at).where(job_leases.c.job == job)
            )
        ).first()
    return None if row is None else (row.owner, row.expires_at)


async def take(db: Database, job: str, owner: str, now: datetime) -> bool:
    async with db.write() as conn:
        return await take_lease(conn, job, owner, now, LASTING)


async def test_one_owner_holds_a_lease_until_it_runs_out(db: Database, now: datetime) -> None:
    assert await take(db, "sweep", "a", now) is True
    assert await take(db, "sweep", "b", now) is False
    assert await take(db, "sweep", "b", now + LASTING - timedelta(seconds=1)) is False
    assert await holder(db, "sweep") == ("a", now + LASTING)
    # Its owner renews it; only then does it run out, and another takes it.
    assert await take(db, "sweep", "a", now + timedelta(seconds=20)) is True
    assert await take(db, "sweep", "b", now + LASTING) is False
    later = now + timedelta(seconds=20) + LASTING
    assert await take(db, "sweep", "b", later) is True
    assert await holder(db, "sweep") == ("b", later + LASTING)
    assert await take(db, "sweep", "a", later) is False


async def test_leases_are_per_job_and_given_up_by_their_owner(db: Database, now: datetime) -> None:
    assert await take(db, "sweep", "a", now) is True
    assert await take(db, "balance", "b", now) is True
    async with db.write() as conn:
        await release_leases(conn, "a")
    assert await holder(db, "sweep") is None
    assert await take(db, "sweep", "b", now) is True
    assert await holder(db, "balance") == ("b", now + LASTING)
