"""The service's scheduled jobs, each one declaration: its name, when it runs, and the call
into `reconciler/` it makes. Thin on purpose: the work and its rules live in the core."""

from __future__ import annotations

from datetime import datetime

from reconciler.config import Settings
from reconciler.inbox.catchup import EventsCatchUp
from reconciler.inbox.worker import InboxWorker
from reconciler.paths.platform_balance import BalanceRefresher
from reconciler.paths.stale import StaleSweep
from reconciler.reconcile.engine import Reconciler
from scheduler.jobs import Job, Tick

PLATFORM_CURRENCY = "usd"


def refresh_platform_balance(balances: BalanceRefresher) -> Tick:
    async def run(now: datetime) -> str:
        balance = await balances.refresh(PLATFORM_CURRENCY)
        return f"{balance.currency}: available {balance.available}, pending {balance.pending}"

    return run


def retry_inbox(worker: InboxWorker) -> Tick:
    async def run(now: datetime) -> str:
        taken, applied = await worker.retry_due(now)
        return f"{applied} of {taken} retries due applied"

    return run


def standard_jobs(
    settings: Settings,
    *,
    balances: BalanceRefresher,
    catch_up: EventsCatchUp,
    sweep: StaleSweep,
    worker: InboxWorker | None,
    reconciler: Reconciler,
) -> list[Job]:
    """The jobs of this instance. The inbox retries and the nightly reconcile run only where
    events can be applied (the inbox worker is on): an ingest-only instance never takes
    their leases."""
    jobs = [
        Job(
            "platform_balance",
            refresh_platform_balance(balances),
            every=settings.platform_balance_seconds,
        ),
        Job("stale_sweep", sweep.run, every=settings.stale_sweep_seconds),
        # Stores what it finds in the inbox, so an ingest-only instance may run it too.
        Job("events_catch_up", catch_up.run, every=settings.events_catch_up_seconds),
    ]
    if worker is not None:
        jobs.append(Job("inbox_retries", retry_inbox(worker), every=settings.inbox_retry_seconds))
        # Resumes interrupted runs, then heals everything: it writes the ledger, so it runs
        # where events are applied, not on an ingest-only instance.
        jobs.append(Job("reconcile", reconciler.scheduled, cron=settings.reconcile_cron))
    return jobs
