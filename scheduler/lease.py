"""The job lease: one row per job (`job_leases`) naming the instance that may run its ticks
and until when. Taken by one atomic upsert, so of several instances ticking at once exactly
one gets it; its owner keeps renewing it, and a dead owner's lease simply runs out."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncConnection

from reconciler.db.dialect import insert_for
from reconciler.db.tables import job_leases


async def take_lease(
    conn: AsyncConnection, job: str, owner: str, now: datetime, lasting: timedelta
) -> bool:
    """Whether `owner` holds `job`'s lease until `now + lasting`: taken if nobody holds it,
    it ran out, or `owner` already holds it (then renewed)."""
    insert = insert_for(conn, job_leases).values(job=job, owner=owner, expires_at=now + lasting)
    taken = await conn.execute(
        insert.on_conflict_do_update(
            index_elements=[job_leases.c.job],
            set_={"owner": insert.excluded.owner, "expires_at": insert.excluded.expires_at},
            where=(job_leases.c.expires_at <= now) | (job_leases.c.owner == owner),
        ).returning(job_leases.c.owner)
    )
    return taken.first() is not None


async def release_leases(conn: AsyncConnection, owner: str) -> None:
    """Give up every lease `owner` holds (a clean shutdown: the others need not wait)."""
    await conn.execute(delete(job_leases).where(job_leases.c.owner == owner))
