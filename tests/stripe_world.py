"""A running sandbox with an SDK client and our gateway pointed at it, for apply and e2e tests."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import stripe

from reconciler.config import Secret
from reconciler.gateway import RetryPolicy, StripeGateway
from stripe_sandbox import RunningSandbox, SandboxClock, run_sandbox

API_KEY = "sk_test_reconciler_tests"
START = 1_767_225_600  # 2026-01-01T00:00:00Z
TWO_DAYS_AND_A_BIT = 2 * 86_400 + 3_600
# For services the suite runs on the sandbox: the limiter stays in every call's path, at a rate
# a test never reaches (the service's default, 25 a second, would only slow the suite down).
TEST_RATE_LIMIT = 1000
TEST_RATE_BURST = 100


@dataclass
class StoredEvent:
    """What the inbox hands the applier: the raw JSON payload, and its row id (a batch knows
    its events by it)."""

    payload: str
    id: int = 0


@dataclass
class StripeWorld:
    url: str
    client: stripe.StripeClient
    gateway: StripeGateway
    control: httpx.AsyncClient
    sandbox: RunningSandbox

    async def control_post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        response = await self.control.post(f"/_sandbox/{path}", json=body or {})
        response.raise_for_status()
        return response.json()

    async def events(self) -> list[StoredEvent]:
        """Every event so far, the platform's and each connected account's (read as that
        account, as Stripe requires), oldest first, as the inbox would store them. An account
        the platform lost (deauthorized, deleted) can no longer be read as; its events were
        still delivered, so they are taken as the sandbox stored them."""
        collected = await self._events_of(None)
        accounts = await self.client.v1.accounts.list_async(params={"limit": 100})
        listed = {account.id for account in accounts.data}
        for account_id in sorted(listed):
            collected.extend(await self._events_of(account_id))
        stored = reversed(self.sandbox.sandbox.store.newest_first("event"))
        collected.extend(
            json.loads(json.dumps(event))
            for event in stored
            if event.get("account") and event["account"] not in listed
        )
        collected.sort(key=lambda event: event["created"])  # stable: each list keeps its order
        return [StoredEvent(json.dumps(e), id=n) for n, e in enumerate(collected, start=1)]

    async def _events_of(self, account: str | None) -> list[dict[str, Any]]:
        options: dict[str, Any] = {"stripe_account": account} if account else {}
        newest_first: list[dict[str, Any]] = []
        params: dict[str, Any] = {"limit": 100}
        while True:
            page = await self.client.v1.events.list_async(params=params, options=options)  # type: ignore[arg-type]
            newest_first.extend(event.to_dict() for event in page.data)
            if not page.has_more:
                return list(reversed(newest_first))
            params["starting_after"] = page.data[-1].id

    async def pay(self, merchant_id: int, amount: int, card: str, **extra: Any) -> Any:
        params = {
            "amount": amount,
            "currency": "usd",
            "payment_method": card,
            "payment_method_types": ["card"],
            "confirm": True,
            "metadata": {"icpay_account_id": str(merchant_id)},
            **extra,
        }
        return await self.client.v1.payment_intents.create_async(params=params)


@asynccontextmanager
async def stripe_world(seed: int = 7) -> AsyncIterator[StripeWorld]:
    clock = SandboxClock(START, frozen=True)
    async with run_sandbox(seed=seed, clock=clock) as sandbox:
        http = stripe.HTTPXClient()
        client = stripe.StripeClient(
            API_KEY, base_addresses={"api": sandbox.url}, http_client=http, max_network_retries=0
        )
        gateway = StripeGateway(Secret(API_KEY), sandbox.url, retry=RetryPolicy(base_delay=0.01))
        async with httpx.AsyncClient(base_url=sandbox.url) as control:
            try:
                yield StripeWorld(sandbox.url, client, gateway, control, sandbox)
            finally:
                await gateway.aclose()
                await http.close_async()  # type: ignore[no-untyped-call]
