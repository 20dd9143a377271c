"""`reconciler worker` as a real process: it runs the scheduled jobs under their leases, stops
cleanly on SIGTERM, and when it is killed outright its jobs pass to another instance within
the lease time."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from reconciler.db.engine import Database
from reconciler.db.tables import job_leases, job_runs
from scheduler.jobs import Job
from scheduler.service import JobScheduler
from stripe_sandbox import run_sandbox_sync

API_KEY = "sk_test_worker_tests"
INTERVAL = 0.3
LEASE_SECONDS = 2.0


@contextmanager
def worker(database_url: str, sandbox_url: str, cwd: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "STRIPE_API_KEY": API_KEY,
        "STRIPE_API_BASE": sandbox_url,
        "PLATFORM_BALANCE_SECONDS": str(INTERVAL),
        "JOB_LEASE_SECONDS": str(LEASE_SECONDS),
        "SCHEDULER_ENABLED": "false",  # the worker runs the jobs whatever this says
        "LOG_LEVEL": "warning",
    }
    with (cwd / "worker.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "reconciler.cli", "worker"],
            env=env,
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        try:
            yield process
        finally:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)


async def balance_runs(url: str) -> list[tuple[str, str, str | None]]:
    db = Database(url)
    try:
        async with db.read() as conn:
            result = await conn.execute(
                select(job_runs.c.owner, job_runs.c.outcome, job_runs.c.detail)
                .where(job_runs.c.job == "platform_balance")
                .order_by(job_runs.c.id)
            )
            return [(row.owner, row.outcome, row.detail) for row in result]
    finally:
        await db.dispose()


async def leases(url: str) -> list[str]:
    db = Database(url)
    try:
        async with db.read() as conn:
            return [owner for (owner,) in await conn.execute(select(job_leases.c.owner))]
    finally:
        await db.dispose()


def wait_for_runs(url: str, process: subprocess.Popen[bytes], count: int, cwd: Path) -> None:
    deadline = time.monotonic() + 30
    while len(asyncio.run(balance_runs(url))) < count:
        assert process.poll() is None, (cwd / "worker.log").read_text()
        assert time.monotonic() < deadline, "the worker ran no jobs"
        time.sleep(0.1)


def test_the_worker_runs_the_jobs_and_stops_cleanly_on_sigterm(
    database_url: str, tmp_path: Path
) -> None:
    with run_sandbox_sync(seed=1) as sandbox, worker(database_url, sandbox.url, tmp_path) as proc:
        wait_for_runs(database_url, proc, 3, tmp_path)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    log = (tmp_path / "worker.log").read_text()
    assert "Traceback" not in log and "stopping" in log
    runs = asyncio.run(balance_runs(database_url))
    assert {outcome for _, outcome, _ in runs} == {"succeeded"}  # none left running
    assert runs[0][2] == "usd: available 0, pending 0"
    assert len({owner for owner, _, _ in runs}) == 1
    assert asyncio.run(leases(database_url)) == []  # given up: the next instance need not wait


def test_a_killed_workers_jobs_pass_to_another_instance_within_the_lease(
    database_url: str, tmp_path: Path
) -> None:
    async def instead(now: datetime) -> str:
        taken.append(time.monotonic())
        return "run by b"

    taken: list[float] = []

    async def other_instance(process: subprocess.Popen[bytes]) -> float:
        db = Database(database_url)
        jobs = [Job("platform_balance", instead, every=INTERVAL)]
        other = JobScheduler(db, jobs, lease=timedelta(seconds=LEASE_SECONDS), owner="b")
        other.start()
        try:
            await asyncio.sleep(1.5)
            assert taken == []  # the worker holds the lease, renewing it each tick
            process.kill()  # SIGKILL: no shutdown, its lease stays until it runs out
            killed = time.monotonic()
            while not taken:
                assert time.monotonic() - killed < 10, "the job never passed on"
                await asyncio.sleep(0.05)
            return taken[0] - killed
        finally:
            await other.stop()
            await db.dispose()

    with run_sandbox_sync(seed=2) as sandbox, worker(database_url, sandbox.url, tmp_path) as proc:
        wait_for_runs(database_url, proc, 1, tmp_path)
        handover = asyncio.run(other_instance(proc))
    assert handover <= LEASE_SECONDS + INTERVAL + 0.5, handover
    owners = [owner for owner, _, _ in asyncio.run(balance_runs(database_url))]
    worker_owner = owners[0]
    assert worker_owner != "b" and "b" in owners
    # Each tick ran once: the worker's until it died, then b's; never both by turns.
    assert owners == [worker_owner] * owners.index("b") + ["b"] * (len(owners) - owners.index("b"))
