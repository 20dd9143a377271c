"""The sandbox as the reconcile benchmark runs it: its own process (so its memory is not the
engine's), every Stripe call counted by route, and a way to seed it fast.

Seeding through HTTP costs a few milliseconds a call; 100k objects would take many minutes
before the run begins. So `POST /_bench/seed/...` makes the objects inside this process with
the sandbox's own handlers (`create_intent`, `confirm_intent`, `refund_charge`,
`create_transfer`, `reverse_transfer`), called with the parameters the service's gateway
sends, decoded as the API decodes them: the same objects, balance transactions and events an
API call makes, without the HTTP. `GET /_bench/objects` hands them back in creation order,
expanded as the gateway reads them, for the ledger to be booked from.

    GET  /_bench/counts                  {"counts": {"GET /v1/charges": 12, ...},
                                          "lists": {"/v1/charges": "limit=100&expand..."}}
    POST /_bench/counts/reset
    POST /_bench/seed/payments           {"payments": [[payment_id, merchant_id, amount, card]]}
    POST /_bench/seed/settle             every pending charge's funds made available
    POST /_bench/seed/refunds            {"refunds": [[payment_intent, amount, metadata]]}
    POST /_bench/seed/transfers          {"transfers": [[destination, amount, metadata]]}
    POST /_bench/seed/reversals          {"reversals": [[transfer, amount]]}
    GET  /_bench/objects?kind=&offset=&limit=
    GET  /_bench/store                   objects held, by kind
"""

from __future__ import annotations

import argparse
import gc
import json
from collections import Counter
from typing import Any
from urllib.parse import parse_qsl, urlencode

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from stripe_sandbox import create_app
from stripe_sandbox.api import Call
from stripe_sandbox.errors import StripeError
from stripe_sandbox.forms import decode
from stripe_sandbox.payment_intents import confirm_intent, create_intent
from stripe_sandbox.refunds import refund_charge
from stripe_sandbox.state import Sandbox
from stripe_sandbox.store import expand
from stripe_sandbox.transfers import create_transfer, reverse_transfer

Scope = dict[str, Any]
Obj = dict[str, Any]
API_KEY = "sk_test_bench_reconcile"
# What the gateway expands when it reads each kind (`StripeGateway.charge`, `.refund`).
EXPANDED = {"charge": ["balance_transaction"], "refund": ["balance_transaction"]}
CURSORS = ("starting_after", "ending_before")


def route_of(path: str) -> str:
    """`/v1/charges/ch_1` -> `/v1/charges/{id}`: calls counted by route, not by object."""
    parts = path.split("/")
    return "/".join(
        "{id}" if index >= 3 and "_" in part else part for index, part in enumerate(parts)
    )


class Counting:
    """ASGI middleware: count each Stripe API call as "METHOD /route", and keep the query of
    each list walked (its cursor left out), so the list rate can be measured on the very
    lists, with the very expansions, a run read."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.counts: Counter[str] = Counter()
        self.lists: dict[str, str] = {}

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith(("/v1/", "/v2/")):
            route = route_of(scope["path"])
            self.counts[f"{scope['method']} {route}"] += 1
            pairs = parse_qsl(scope["query_string"].decode())
            if scope["method"] == "GET" and any(name == "limit" for name, _ in pairs):
                query = urlencode([(k, v) for k, v in pairs if k not in CURSORS])
                self.lists.setdefault(scope["path"], query)
        await self.app(scope, receive, send)

    def clear(self) -> None:
        self.counts.clear()
        self.lists.clear()


def form(values: dict[str, Any]) -> dict[str, Any]:
    """Parameters as the API would decode them from the gateway's form body."""
    flat: dict[str, str] = {}
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, dict):
            flat.update({f"{name}[{key}]": str(item) for key, item in value.items()})
        elif isinstance(value, list):
            flat.update({f"{name}[{index}]": str(item) for index, item in enumerate(value)})
        else:
            flat[name] = str(value)
    return decode(urlencode(flat))


def call(params: dict[str, Any], path: dict[str, str] | None = None) -> Call:
    return Call(form(params), path or {}, "POST", "http://sandbox/", API_KEY)


def seed_payment(sb: Sandbox, payment_id: int, merchant_id: int, amount: int, card: str) -> None:
    """Checkout as ICPay makes it (`StripeGateway.create_payment_intent`), then the
    customer's browser confirming it with `card`. A declined card leaves its failed charge."""
    intent = create_intent(
        sb,
        call(
            {
                "amount": amount,
                "currency": "usd",
                "automatic_payment_methods": {"enabled": "true", "allow_redirects": "never"},
                "metadata": {
                    "icpay_payment_id": payment_id,
                    "icpay_account_id": merchant_id,
                },
            }
        ),
    )
    try:
        confirm_intent(sb, call({"payment_method": card}, {"id": intent["id"]}))
    except StripeError as declined:
        if declined.status != 402:
            raise


def settle(sb: Sandbox) -> None:
    """Move the clock past every pending charge's `available_on`, once, so the run starts
    with funds available (and no pending transactions for each request's tick to walk)."""
    due = max(
        (sb.store.get("balance_transaction", t)["available_on"] for t in sb.pending_transactions),
        default=None,
    )
    if due is not None:
        sb.clock.advance_to(due + 1)
    sb.tick()


def exported(sb: Sandbox, kind: str, offset: int, limit: int) -> list[Obj]:
    oldest_first = sb.store.newest_first(kind)[::-1]
    params = {"expand": EXPANDED.get(kind, [])}
    return [expand(sb.store, obj, params) for obj in oldest_first[offset : offset + limit]]


def kept() -> None:
    """What seeding made lives as long as the process: out of the cyclic collector's way, as
    `reconciler serve` sets aside its start-up objects (`gc.freeze`). Otherwise each full
    collection walks every object seeded so far, and seeding 100k objects is quadratic."""
    gc.freeze()


def bench_routes(sb: Sandbox, counting: Counting) -> list[Route]:
    async def counts(request: Request) -> Response:
        return JSONResponse({"counts": counting.counts, "lists": counting.lists})

    async def reset(request: Request) -> Response:
        counting.clear()
        return JSONResponse({})

    async def payments(request: Request) -> Response:
        body = await request.json()
        async with sb.lock:
            for payment_id, merchant_id, amount, card in body["payments"]:
                seed_payment(sb, payment_id, merchant_id, amount, card)
            kept()
        return JSONResponse({"made": len(body["payments"])})

    async def settled(request: Request) -> Response:
        async with sb.lock:
            settle(sb)
        return JSONResponse({"pending": len(sb.pending_transactions)})

    async def refunds(request: Request) -> Response:
        body = await request.json()
        made = []
        async with sb.lock:
            for intent, amount, metadata in body["refunds"]:
                values = {"payment_intent": intent, "amount": amount, "metadata": metadata}
                made.append(refund_charge(sb, form(values))["id"])
            kept()
        return JSONResponse({"made": made})

    async def transfers(request: Request) -> Response:
        body = await request.json()
        made = []
        async with sb.lock:
            for destination, amount, metadata in body["transfers"]:
                values = {
                    "amount": amount,
                    "currency": "usd",
                    "destination": destination,
                    "metadata": metadata,
                }
                made.append(create_transfer(sb, call(values))["id"])
            kept()
        return JSONResponse({"made": made})

    async def reversals(request: Request) -> Response:
        body = await request.json()
        async with sb.lock:
            for transfer, amount in body["reversals"]:
                reverse_transfer(sb, transfer, form({"amount": amount}))
        return JSONResponse({"made": len(body["reversals"])})

    async def objects(request: Request) -> Response:
        kind = request.query_params["kind"]
        offset = int(request.query_params.get("offset", 0))
        limit = int(request.query_params.get("limit", 1000))
        async with sb.lock:
            body = json.dumps(exported(sb, kind, offset, limit))
        return Response(body, media_type="application/json")

    async def store(request: Request) -> Response:
        return JSONResponse({kind: sb.store.count(kind) for kind in sb.store.kinds()})

    return [
        Route("/counts", counts, methods=["GET"]),
        Route("/counts/reset", reset, methods=["POST"]),
        Route("/seed/payments", payments, methods=["POST"]),
        Route("/seed/settle", settled, methods=["POST"]),
        Route("/seed/refunds", refunds, methods=["POST"]),
        Route("/seed/transfers", transfers, methods=["POST"]),
        Route("/seed/reversals", reversals, methods=["POST"]),
        Route("/objects", objects, methods=["GET"]),
        Route("/store", store, methods=["GET"]),
    ]


def create_bench_app(seed: int) -> Counting:
    sandbox = create_app(seed=seed)
    counting = Counting(sandbox)
    bench = Starlette(routes=bench_routes(sandbox.state.sandbox, counting))
    # The bench's routes first; everything else is the sandbox, its lifespan included.
    sandbox.router.routes.insert(0, Mount("/_bench", app=bench))
    return counting


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    uvicorn.run(
        create_bench_app(args.seed),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
    )
