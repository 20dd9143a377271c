"""The long-lived resources, built once: the database, the Stripe gateway, the inbox writer
and worker, the payout executor, the scheduler. The CLI (the composition root) and the HTTP
app's lifespan use these; nothing else builds a `Database` or a `StripeGateway` of its own.

`open_runtime` starts what runs in the background and, leaving, closes it in the one safe
order: stop taking rows (the writer commits what it holds), stop the scheduled jobs, the
executor, finish applying (the worker), close the gateway, dispose of the database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

from reconciler.apply import EventApplier
from reconciler.apply.context import ApplyContext
from reconciler.config import Settings
from reconciler.db.engine import Database
from reconciler.db.schema import require_current_schema
from reconciler.gateway import StripeGateway
from reconciler.inbox.appliers import ApplierFactory, open_applier
from reconciler.inbox.catchup import CatchUpPolicy, EventsCatchUp
from reconciler.inbox.events import InboxPolicy
from reconciler.inbox.worker import Applier, InboxWorker
from reconciler.inbox.writer import InboxWriter
from reconciler.metrics import Metrics
from reconciler.money import FeeSchedule
from reconciler.paths.checkout import Checkout
from reconciler.paths.connect import ConnectOnboarding
from reconciler.paths.executor import Executor
from reconciler.paths.payouts import PayoutRequests
from reconciler.paths.platform_balance import BalanceRefresher
from reconciler.paths.refunds import RefundRequests
from reconciler.paths.stale import StaleSweep
from reconciler.ratelimit import TokenBucket
from reconciler.reconcile.engine import Reconciler
from scheduler.service import JobScheduler
from scheduler.standard import standard_jobs


@asynccontextmanager
async def open_database(settings: Settings) -> AsyncIterator[Database]:
    """The service's database, disposed of on the way out."""
    database = Database(settings.database_url)
    try:
        yield database
    finally:
        await database.dispose()


@asynccontextmanager
async def open_gateway(
    settings: Settings, *, api_base: str | None = None
) -> AsyncIterator[StripeGateway]:
    """The Stripe gateway, at `api_base` if given (the sandbox before settings point at it),
    else where the settings say, with the process's one rate limiter; closed on the way out."""
    limit = settings.stripe_requests_per_second
    gateway = StripeGateway(
        settings.stripe_api_key,
        api_base or settings.stripe_api_base,
        limiter=TokenBucket.for_limit(limit, settings.stripe_rate_burst) if limit else None,
    )
    try:
        yield gateway
    finally:
        await gateway.aclose()


def ledger_applier(gateway: StripeGateway) -> ApplierFactory:
    """The real applier (`INBOX_APPLIER=ledger`), on the runtime's one gateway."""

    @asynccontextmanager
    async def factory(database: Database, settings: Settings) -> AsyncIterator[Applier]:
        yield EventApplier(database, gateway, settings)

    return factory


def paths_context(database: Database, gateway: StripeGateway, settings: Settings) -> ApplyContext:
    """How the user's paths apply what they read from Stripe: the webhooks' one way in."""
    return ApplyContext(
        db=database,
        stripe=gateway,
        fees=FeeSchedule(settings.platform_fee_percent, settings.platform_fee_fixed),
        detected_by="api",
    )


@dataclass(frozen=True)
class Runtime:
    """What a running service holds. `worker` is None on an ingest-only instance."""

    settings: Settings
    metrics: Metrics
    database: Database
    gateway: StripeGateway
    balances: BalanceRefresher
    onboarding: ConnectOnboarding
    checkout: Checkout
    payouts: PayoutRequests
    refunds: RefundRequests
    executor: Executor
    inbox_writer: InboxWriter
    worker: InboxWorker | None
    # Always built (the API lists its jobs); started only with `scheduler_enabled`.
    scheduler: JobScheduler
    # The events catch-up job: `await runtime.catch_up.run(now)`, on a schedule.
    catch_up: EventsCatchUp
    # Reconcile runs: `runtime.reconciler.start(run_id)` after `queue_run`, or `await run(...)`.
    reconciler: Reconciler


@asynccontextmanager
async def open_runtime(
    settings: Settings, *, applier: Applier | None = None
) -> AsyncIterator[Runtime]:
    """The service's resources, started; the database must be migrated (`SchemaNotCurrent`).

    `applier` is what the worker calls for each event; by default the one
    `settings.inbox_applier` names. With `inbox_worker_enabled` off there is no worker.
    """
    metrics = Metrics()
    async with AsyncExitStack() as resources:
        database = await resources.enter_async_context(open_database(settings))
        await require_current_schema(database)
        gateway = await resources.enter_async_context(open_gateway(settings))
        worker: InboxWorker | None = None
        if settings.inbox_worker_enabled:
            if applier is None:
                applier = await resources.enter_async_context(
                    open_applier(
                        settings.inbox_applier, database, settings, ledger=ledger_applier(gateway)
                    )
                )
            worker = InboxWorker(
                database,
                applier,
                policy=InboxPolicy.from_settings(settings),
                batch_size=settings.inbox_batch_size,
                metrics=metrics,
            )
            resources.push_async_callback(worker.stop)
        context = paths_context(database, gateway, settings)
        balances = BalanceRefresher(context)
        # Every instance executes the payouts its requests accept at once; the background
        # loop (what is left: Stripe was down, the process died) runs where the worker does.
        executor = Executor(
            context,
            gateway,
            retry_after=timedelta(seconds=settings.payout_retry_seconds),
            poll_interval=min(5.0, settings.payout_retry_seconds / 2),
        )
        background = settings.inbox_worker_enabled and settings.payout_executor_enabled
        if background:
            resources.push_async_callback(executor.stop)
        catch_up = EventsCatchUp(
            database,
            gateway,
            CatchUpPolicy.from_settings(settings),
            livemode=settings.livemode,
            wake=worker.wake if worker else None,
        )
        reconciler = Reconciler(
            database,
            gateway,
            context,
            stale_after=timedelta(seconds=settings.stale_after_seconds),
        )
        scheduler = JobScheduler(
            database,
            standard_jobs(
                settings,
                balances=balances,
                catch_up=catch_up,
                sweep=StaleSweep(
                    context,
                    gateway,
                    executor,
                    stale_after=timedelta(seconds=settings.stale_after_seconds),
                ),
                worker=worker,
                reconciler=reconciler,
            ),
            lease=timedelta(seconds=settings.job_lease_seconds),
            metrics=metrics,
        )
        # Runs this process started end `interrupted` (to be resumed) before anything they
        # use closes; the scheduler, stopped first, stops its own run the same way.
        resources.push_async_callback(reconciler.aclose)
        if settings.scheduler_enabled:
            # Stopped before the executor, the worker and the writer it calls into.
            resources.push_async_callback(scheduler.stop)
        writer = InboxWriter(database, on_commit=worker.wake if worker else None)
        # Left last, closed first: no row is taken once the worker starts finishing.
        resources.push_async_callback(writer.close)
        writer.start()
        if worker is not None:
            # Applying webhooks serves no one waiting: its reads yield to the users' calls.
            async with gateway.background():
                worker.start()
        if background:
            executor.start()
        if settings.scheduler_enabled:
            # Scheduled jobs serve no one waiting either (their ticks inherit this).
            async with gateway.background():
                scheduler.start()
        yield Runtime(
            settings=settings,
            metrics=metrics,
            database=database,
            gateway=gateway,
            balances=balances,
            onboarding=ConnectOnboarding(context, gateway, settings.dashboard_url),
            checkout=Checkout(context, gateway, settings.dashboard_url),
            payouts=PayoutRequests(
                context,
                balances,
                settings.dashboard_url,
                wake_executor=executor.wake,
            ),
            refunds=RefundRequests(context, balances, wake_executor=executor.wake),
            executor=executor,
            inbox_writer=writer,
            worker=worker,
            scheduler=scheduler,
            catch_up=catch_up,
            reconciler=reconciler,
        )
