"""The Starlette application factory: routes, and a lifespan that holds the service's
runtime (`reconciler.runtime`) for as long as the app runs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.routing import Route

from handlers._runtime import set_runtime
from handlers.api.errors import method_not_allowed, not_found
from handlers.api.routes import api_routes
from handlers.health import healthz, readyz
from handlers.metrics import metrics_endpoint
from handlers.webhooks import connect_webhook, platform_webhook
from reconciler.config import Settings
from reconciler.inbox.worker import Applier
from reconciler.runtime import open_runtime


def create_app(settings: Settings | None = None, *, applier: Applier | None = None) -> Starlette:
    """Build the service. Settings default to the environment; the database must be migrated.

    `applier` is what the inbox worker calls for each event; by default the one
    `settings.inbox_applier` names (`ledger`: `reconciler.apply.EventApplier`). With
    `inbox_worker_enabled` off, events are stored and acknowledged but not applied here.
    """
    chosen = settings or Settings.from_environ()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with open_runtime(chosen, applier=applier) as runtime:
            set_runtime(app, runtime)
            try:
                yield
            finally:
                set_runtime(app, None)

    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
            Route("/webhooks/stripe", platform_webhook, methods=["POST"]),
            Route("/webhooks/stripe/connect", connect_webhook, methods=["POST"]),
            *api_routes(),
        ],
        exception_handlers={404: not_found, 405: method_not_allowed},
        lifespan=lifespan,
    )
