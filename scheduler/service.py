"""The scheduler: APScheduler's `AsyncIOScheduler` firing each job's ticks in this instance,
and the lease that lets only one instance act on each tick.

A tick, in one write transaction: take the job's lease (`lease.take_lease`); check the job
is due (no run of it, by any instance, started within half its period: two instances fire
the same tick a moment apart); record the run as started. Then the job runs outside the
transaction, and its end (succeeded with its summary, or failed with its error) is recorded.
A job that raises is a failed run; the scheduler goes on with the next tick. While a job
runs, its instance keeps renewing the lease, so a run longer than the lease is not started
again elsewhere; the instance that next takes a lease ends as failed the runs its dead
holder left marked running. Tests call
`tick(job, now)` with a clock of their own, or run the real scheduler on short intervals.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from reconciler.db.engine import Database
from reconciler.job_runs import (
    FAILED,
    SUCCEEDED,
    abandon_runs,
    finish_run,
    last_started,
    start_run,
)
from reconciler.metrics import Metrics
from reconciler.types import Clock, utcnow
from scheduler.jobs import Job
from scheduler.lease import release_leases, take_lease

logger = logging.getLogger(__name__)

STOP_GRACE_SECONDS = 10.0


def instance_owner() -> str:
    """A name for this process, unique among instances: host, pid, and a random part (a
    restarted process may get its old pid back)."""
    return f"{socket.gethostname()[:80]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def describe(error: BaseException) -> str:
    message = str(error)
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


class JobScheduler:
    def __init__(
        self,
        database: Database,
        jobs: Sequence[Job],
        *,
        lease: timedelta,
        owner: str | None = None,
        clock: Clock = utcnow,
        metrics: Metrics | None = None,
    ) -> None:
        names = [job.name for job in jobs]
        if len(set(names)) != len(names):
            raise ValueError(f"job names must be unique, got {names}")
        self._database = database
        self._jobs = {job.name: job for job in jobs}
        self._lease = lease
        self.owner = owner or instance_owner()
        self._clock = clock
        self._metrics = metrics
        self._scheduler: AsyncIOScheduler | None = None
        self._ticking: set[asyncio.Task[None]] = set()

    @property
    def jobs(self) -> list[Job]:
        return list(self._jobs.values())

    @property
    def running(self) -> bool:
        return self._scheduler is not None

    async def tick(self, name: str, now: datetime | None = None) -> int | None:
        """Run job `name`'s tick at `now` if this instance holds its lease and it is due.
        Returns the run's id, or None when it was not this instance's to run."""
        job = self._jobs[name]
        started_at = now or self._clock()
        async with self._database.write() as conn:
            if not await take_lease(conn, name, self.owner, started_at, self._lease):
                return None
            if abandoned := await abandon_runs(conn, name, self.owner, started_at):
                logger.warning(
                    "job %s: %d run(s) of a dead instance ended as failed", name, abandoned
                )
            last = await last_started(conn, name)
            if last is not None and started_at - last < job.min_gap(started_at):
                return None
            run_id = await start_run(conn, name, self.owner, started_at)
        began = time.perf_counter()
        renewing = asyncio.get_running_loop().create_task(
            self._keep_lease(name, started_at, began), name=f"lease:{name}"
        )
        outcome, detail = FAILED, "stopped before it finished"
        try:
            detail = await job.run(started_at)
            outcome = SUCCEEDED
        except Exception as error:  # the job's failure is its run's, never the scheduler's
            detail = describe(error)
            logger.warning("job %s failed: %s", name, detail)
        finally:
            renewing.cancel()
            elapsed = time.perf_counter() - began
            # Shielded: a stop cancelling the job still gets its end written.
            await asyncio.shield(self._finish(run_id, outcome, detail, elapsed))
            with contextlib.suppress(asyncio.CancelledError):
                await renewing
            if self._metrics is not None:
                self._metrics.job_runs.labels(name, outcome).inc()
        return run_id

    async def _keep_lease(self, name: str, started_at: datetime, began: float) -> None:
        """Renew the job's lease every third of its length while the job runs. Times follow
        the tick's own `now` (a test's clock as well as the wall clock)."""
        every = self._lease.total_seconds() / 3
        while True:
            await asyncio.sleep(every)
            at = started_at + timedelta(seconds=time.perf_counter() - began)
            try:
                async with self._database.write() as conn:
                    kept = await take_lease(conn, name, self.owner, at, self._lease)
            except Exception as error:  # the next renewal tries again
                logger.warning("job %s: could not renew its lease: %s", name, describe(error))
                continue
            if not kept:
                logger.warning("job %s: its lease passed to another instance while it ran", name)

    async def _finish(self, run_id: int, outcome: str, detail: str, elapsed: float) -> None:
        async with self._database.write() as conn:
            await finish_run(
                conn,
                run_id,
                outcome=outcome,
                detail=detail,
                now=self._clock(),
                ms=round(elapsed * 1000),
            )

    async def _fire(self, name: str) -> None:
        """APScheduler's call at each tick: the tick runs as a task of ours, so a stop lets it
        finish (APScheduler would cancel it), and a tick still running is not started twice.
        A coroutine function, or APScheduler would call it in a thread."""
        if any(task.get_name() == f"job:{name}" for task in self._ticking):
            logger.info("job %s: still running at its next tick, which is skipped", name)
            return
        task = asyncio.get_running_loop().create_task(self._tick_logged(name), name=f"job:{name}")
        self._ticking.add(task)
        task.add_done_callback(self._ticking.discard)

    async def _tick_logged(self, name: str) -> None:
        try:
            await self.tick(name)
        except Exception as error:  # the database is down: the next tick tries again
            logger.warning("job %s: could not take its tick: %s", name, describe(error))

    def start(self) -> None:
        """Fire every job's ticks in this event loop, from one period (or cron time) on."""
        if self._scheduler is not None:
            return
        # APScheduler logs every tick at INFO; the run history (`job_runs`) already says it.
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
        scheduler = AsyncIOScheduler(timezone="UTC")
        for job in self._jobs.values():
            scheduler.add_job(
                self._fire,
                job.trigger(),
                args=[job.name],
                id=job.name,
                name=job.name,
                coalesce=True,  # ticks missed while busy or asleep make one
                misfire_grace_time=None,
            )
        scheduler.start()
        self._scheduler = scheduler

    async def stop(self) -> None:
        """No more ticks; the ones running finish (or, past a grace time, end as failed);
        this instance's leases are given up so another takes the next tick at once."""
        if self._scheduler is None:
            return
        self._scheduler.shutdown(wait=False)
        self._scheduler = None
        if self._ticking:
            _, late = await asyncio.wait(set(self._ticking), timeout=STOP_GRACE_SECONDS)
            for task in late:
                task.cancel()
            for task in late:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        try:
            async with self._database.write() as conn:
                await release_leases(conn, self.owner)
        except Exception as error:  # they run out on their own
            logger.warning("scheduler: could not give up its leases: %s", describe(error))

    def next_run(self, name: str) -> datetime | None:
        """When this instance fires `name` next; None if its scheduler is not running."""
        if self._scheduler is None:
            return None
        job = self._scheduler.get_job(name)
        fire: datetime | None = job.next_run_time if job is not None else None
        return fire
