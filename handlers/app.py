"""The Starlette application factory: routes, and a lifespan that holds the service's
runtime (`reconciler.runtime`) for as long as the app runs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from handlers._delivery_log import DeliveryLog
from handlers._runtime import set_runtime
from handlers.access_log import AccessLog
from handlers.api.errors import method_not_allowed, not_found
from handlers.api.routes import api_routes
from handlers.health import healthz, readyz
from handlers.metrics import metrics_endpoint
from handlers.webhooks import webhook_endpoints
from reconciler.config import Settings
from reconciler.inbox.worker import Applier
from reconciler.runtime import open_runtime


class ServiceApp(Starlette):
    """Starlette, with a webhook delivery (`POST` to one of `webhooks`' paths) handed straight
    to its plain ASGI endpoint: Stripe's deliveries are most of the requests, and the error
    middleware, the router's matching and the access line cost them more than their own work.
    The same endpoints are also routes, so anything else about those paths (another method, a
    mounted prefix) behaves as any route does."""

    def __init__(self, *, webhooks: Mapping[str, ASGIApp], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._webhooks = dict(webhooks)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            endpoint = self._webhooks.get(scope["path"])
            if endpoint is not None:
                scope["app"] = self
                await endpoint(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings | None = None, *, applier: Applier | None = None) -> Starlette:
    """Build the service. Settings default to the environment; the database must be migrated.

    `applier` is what the inbox worker calls for each event; by default the one
    `settings.inbox_applier` names (`ledger`: `reconciler.apply.EventApplier`). With
    `inbox_worker_enabled` off, events are stored and acknowledged but not applied here.
    """
    chosen = settings or Settings.from_environ()
    deliveries = DeliveryLog()
    webhooks = webhook_endpoints(deliveries)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with open_runtime(chosen, applier=applier) as runtime:
            set_runtime(app, runtime)
            try:
                yield
            finally:
                set_runtime(app, None)
                deliveries.flush()

    return ServiceApp(
        webhooks=webhooks,
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
            *(Route(path, endpoint, methods=["POST"]) for path, endpoint in webhooks.items()),
            *api_routes(),
        ],
        middleware=[Middleware(AccessLog)],
        exception_handlers={404: not_found, 405: method_not_allowed},
        lifespan=lifespan,
    )
