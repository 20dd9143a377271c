"""Every route of the JSON API, and the document that describes them."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from handlers.api import (
    accounts,
    balances,
    connect,
    discrepancies,
    events,
    jobs,
    payments,
    payouts,
    reconcile,
    refunds,
)
from handlers.api.endpoints import Endpoint
from handlers.api.openapi import openapi_document

PREFIX = "/api/v1"
ENDPOINTS: list[Endpoint] = [
    *accounts.ENDPOINTS,
    *connect.ENDPOINTS,
    *payments.ENDPOINTS,
    *payouts.ENDPOINTS,
    *refunds.ENDPOINTS,
    *balances.ENDPOINTS,
    *jobs.ENDPOINTS,
    *reconcile.ENDPOINTS,
    *discrepancies.ENDPOINTS,
    *events.ENDPOINTS,
]
DOCUMENT = openapi_document(ENDPOINTS, prefix=PREFIX)


async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(DOCUMENT)


def api_routes() -> list[BaseRoute]:
    return [
        Route(PREFIX + "/openapi.json", openapi, methods=["GET"]),
        *(endpoint.route(PREFIX) for endpoint in ENDPOINTS),
    ]
