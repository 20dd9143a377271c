"""The history of scheduled jobs (`job_runs`): each run's start, end, duration and outcome.

The scheduler writes it; the API and `/metrics` read the newest run of each job, whichever
instance ran it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from reconciler.db.tables import job_runs
from reconciler.types import Queryable

RUNNING, SUCCEEDED, FAILED = "running", "succeeded", "failed"
# What a run's detail keeps at most (an error's message, a job's summary).
DETAIL_LENGTH = 2000


@dataclass(frozen=True)
class JobRun:
    id: int
    job: str
    owner: str
    started_at: datetime
    finished_at: datetime | None
    duration_ms: int | None
    outcome: str
    detail: str | None


async def start_run(conn: AsyncConnection, job: str, owner: str, now: datetime) -> int:
    result = await conn.execute(
        job_runs.insert()
        .values(job=job, owner=owner, started_at=now, outcome=RUNNING)
        .returning(job_runs.c.id)
    )
    return int(result.scalar_one())


async def finish_run(
    conn: AsyncConnection, run_id: int, *, outcome: str, detail: str, now: datetime, ms: int
) -> None:
    await conn.execute(
        update(job_runs)
        .where(job_runs.c.id == run_id)
        .values(outcome=outcome, detail=detail[:DETAIL_LENGTH], finished_at=now, duration_ms=ms)
    )


async def abandon_runs(conn: AsyncConnection, job: str, holder: str, now: datetime) -> int:
    """End as failed the runs of `job` still marked running by instances other than `holder`,
    which has just taken the job's lease: their owner stopped renewing it, so it died before
    it could write their end. Returns how many."""
    stale = select(job_runs.c.id, job_runs.c.started_at).where(
        job_runs.c.job == job, job_runs.c.outcome == RUNNING, job_runs.c.owner != holder
    )
    abandoned = list(await conn.execute(stale))
    for run_id, started_at in abandoned:
        await finish_run(
            conn,
            int(run_id),
            outcome=FAILED,
            detail="abandoned: its instance stopped before the run finished",
            now=now,
            ms=max(0, round((now - started_at).total_seconds() * 1000)),
        )
    return len(abandoned)


async def last_started(conn: Queryable, job: str) -> datetime | None:
    """When the newest run of `job` started, by any instance."""
    result = await conn.execute(
        select(job_runs.c.started_at)
        .where(job_runs.c.job == job)
        .order_by(job_runs.c.started_at.desc())
        .limit(1)
    )
    started: datetime | None = result.scalar_one_or_none()
    return started


async def latest_runs(conn: Queryable) -> dict[str, JobRun]:
    """The newest run of every job that has run, by job name."""
    newest = (
        select(job_runs.c.job, func.max(job_runs.c.id).label("id"))
        .group_by(job_runs.c.job)
        .subquery()
    )
    result = await conn.execute(
        select(job_runs).join(newest, job_runs.c.id == newest.c.id).order_by(job_runs.c.job)
    )
    return {
        row.job: JobRun(
            id=int(row.id),
            job=row.job,
            owner=row.owner,
            started_at=row.started_at,
            finished_at=row.finished_at,
            duration_ms=row.duration_ms,
            outcome=row.outcome,
            detail=row.detail,
        )
        for row in result
    }
