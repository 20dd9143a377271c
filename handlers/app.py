"""The Starlette application factory: routes, and the lifespan that owns the database, the
inbox writer and the inbox worker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from starlette.applications import Starlette
from starlette.routing import Route

from handlers.health import healthz, readyz
from handlers.metrics import metrics_endpoint
from handlers.webhooks import connect_webhook, platform_webhook
from reconciler.config import Settings
from reconciler.db.engine import Database
from reconciler.db.schema import require_current_schema
from reconciler.inbox.appliers import open_applier
from reconciler.inbox.events import InboxPolicy
from reconciler.inbox.worker import Applier, InboxWorker
from reconciler.inbox.writer import InboxWriter
from reconciler.metrics import Metrics


def create_app(settings: Settings | None = None, *, applier: Applier | None = None) -> Starlette:
    """Build the service. Settings default to the environment; the database must be migrated.

    `applier` is what the inbox worker calls for each event; by default the one
    `settings.inbox_applier` names (`ledger`: `reconciler.apply.EventApplier`). With
    `inbox_worker_enabled` off, events are stored and acknowledged but not applied here.
    """
    settings = settings or Settings.from_environ()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        database = Database(settings.database_url)
        worker: InboxWorker | None = None
        writer: InboxWriter | None = None
        try:
            async with AsyncExitStack() as resources:
                await require_current_schema(database)
                if settings.inbox_worker_enabled:
                    chosen = applier
                    if chosen is None:
                        chosen = await resources.enter_async_context(
                            open_applier(settings.inbox_applier, database, settings)
                        )
                    worker = InboxWorker(
                        database,
                        chosen,
                        policy=InboxPolicy.from_settings(settings),
                        batch_size=settings.inbox_batch_size,
                        metrics=metrics,
                    )
                writer = InboxWriter(database, on_commit=worker.wake if worker else None)
                writer.start()
                if worker is not None:
                    worker.start()
                app.state.database = database
                app.state.inbox_writer = writer
                app.state.worker = worker
                try:
                    yield
                finally:
                    # Stop taking rows, then finish applying, then close the applier's gateway.
                    await writer.close()
                    if worker is not None:
                        await worker.stop()
        finally:
            await database.dispose()

    app = Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
            Route("/webhooks/stripe", platform_webhook, methods=["POST"]),
            Route("/webhooks/stripe/connect", connect_webhook, methods=["POST"]),
        ],
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    return app
