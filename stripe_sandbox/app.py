"""The sandbox's Starlette application."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import (
    accounts,
    balance,
    charges,
    control,
    destinations,
    events,
    onboarding,
    payment_intents,
    refunds,
    thin,
    transfers,
    webhooks,
)
from .api import api_endpoint, json_bytes
from .clock import SandboxClock
from .errors import invalid_request
from .settings import SandboxSettings
from .state import Sandbox

RESOURCE_ROUTES = [
    *payment_intents.ROUTES,
    *charges.ROUTES,
    *refunds.ROUTES,
    *transfers.ROUTES,
    *balance.ROUTES,
    *accounts.ROUTES,
    *onboarding.ROUTES,
    *events.ROUTES,
    *webhooks.ROUTES,
    *destinations.ROUTES,
    *thin.ROUTES,
]


def create_app(
    seed: int | None = None,
    clock: SandboxClock | None = None,
    settings: SandboxSettings | None = None,
) -> Starlette:
    """A fresh sandbox with empty state.

    `seed` makes ids, secrets and random choices repeatable; pass a frozen `clock` as well for
    repeatable timestamps. The state is reachable as `app.state.sandbox`.
    """
    sb = Sandbox(seed=seed, clock=clock, settings=settings)
    sb.tick_hooks.append(refunds.process_queue)
    routes = [
        Route(path, api_endpoint(sb, handler, kind), methods=[method])
        for method, path, handler, kind in RESOURCE_ROUTES
    ]
    for prefix in ("/v1", "/v2"):
        routes.append(Route(prefix + "/{rest:path}", _unknown, methods=["GET", "POST", "DELETE"]))
    routes.extend(control.routes(sb))
    page = onboarding.onboarding_endpoint(sb)
    routes.append(Route("/_sandbox/onboarding/{token}", page, methods=["GET", "POST"]))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await sb.deliveries.start()
        try:
            yield
        finally:
            await sb.deliveries.stop()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.sandbox = sb
    return app


async def _unknown(request: Request) -> Response:
    """Stripe's answer to a path it does not serve."""
    error = invalid_request(
        f"Unrecognized request URL ({request.method}: {request.url.path}). Please see "
        "https://stripe.com/docs or we can help at https://support.stripe.com/.",
        status=404,
    )
    return Response(json_bytes(error.body()), status_code=404, media_type="application/json")
