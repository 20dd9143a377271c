"""The long-lived resources, built once: the database, the Stripe gateway, the inbox writer
and worker. The CLI (the composition root) and the HTTP app's lifespan use these; nothing
else builds a `Database` or a `StripeGateway` of its own.

`open_runtime` starts what runs in the background and, leaving, closes it in the one safe
order: stop taking rows (the writer commits what it holds), finish applying (the worker),
close the applier's gateway, dispose of the database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from reconciler.apply import EventApplier
from reconciler.config import Settings
from reconciler.db.engine import Database
from reconciler.db.schema import require_current_schema
from reconciler.gateway import StripeGateway
from reconciler.inbox.appliers import open_applier
from reconciler.inbox.events import InboxPolicy
from reconciler.inbox.worker import Applier, InboxWorker
from reconciler.inbox.writer import InboxWriter
from reconciler.metrics import Metrics


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
    else where the settings say; closed on the way out."""
    gateway = StripeGateway(settings.stripe_api_key, api_base or settings.stripe_api_base)
    try:
        yield gateway
    finally:
        await gateway.aclose()


@asynccontextmanager
async def ledger_applier(database: Database, settings: Settings) -> AsyncIterator[Applier]:
    """The real applier (`INBOX_APPLIER=ledger`), with a gateway of its own."""
    async with open_gateway(settings) as gateway:
        yield EventApplier(database, gateway, settings)


@dataclass(frozen=True)
class Runtime:
    """What a running service holds. `worker` is None on an ingest-only instance."""

    settings: Settings
    metrics: Metrics
    database: Database
    inbox_writer: InboxWriter
    worker: InboxWorker | None


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
        worker: InboxWorker | None = None
        if settings.inbox_worker_enabled:
            if applier is None:
                applier = await resources.enter_async_context(
                    open_applier(settings.inbox_applier, database, settings, ledger=ledger_applier)
                )
            worker = InboxWorker(
                database,
                applier,
                policy=InboxPolicy.from_settings(settings),
                batch_size=settings.inbox_batch_size,
                metrics=metrics,
            )
            resources.push_async_callback(worker.stop)
        writer = InboxWriter(database, on_commit=worker.wake if worker else None)
        # Left last, closed first: no row is taken once the worker starts finishing.
        resources.push_async_callback(writer.close)
        writer.start()
        if worker is not None:
            worker.start()
        yield Runtime(
            settings=settings,
            metrics=metrics,
            database=database,
            inbox_writer=writer,
            worker=worker,
        )
