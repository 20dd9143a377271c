"""The scenarios end to end: the sandbox delivers real signed webhooks to the running service,
which stores them in its inbox and applies them with its worker; with the delivery faults of
the issue switched on, the ledger must end exactly as without them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from handlers.app import create_app
from reconciler.config import Secret, Settings
from reconciler.db.engine import Database
from reconciler.db.tables import inbox_events
from stripe_sandbox.server import ServerThread
from tests.scenarios import FEE_PERCENT, SCENARIOS, Scene
from tests.stripe_world import API_KEY, StripeWorld, stripe_world

FAULTS: dict[str, list[dict[str, Any]]] = {
    "no_faults": [],
    "each_delivered_three_times": [{"kind": "duplicate", "probability": 1.0, "copies": 3}],
    "order_reversed": [{"kind": "reorder", "probability": 1.0}],
    # The first delivery always, then 30% of the rest: even a three-event story loses one.
    "thirty_percent_dropped_then_redelivered": [
        {"kind": "drop", "count": 1, "redeliver": True},
        {"kind": "drop", "probability": 0.3, "redeliver": True},
    ],
}
SETTLE_SECONDS = 20


@pytest.fixture
async def world() -> AsyncIterator[StripeWorld]:
    async with stripe_world(seed=11) as running:
        yield running


@pytest.fixture
async def service(database_url: str, world: StripeWorld) -> AsyncIterator[str]:
    """The service on a real port, its two endpoints registered at the sandbox."""
    server = ServerThread()
    secrets = []
    for path, connect in (("/webhooks/stripe", False), ("/webhooks/stripe/connect", True)):
        endpoint = await world.client.v1.webhook_endpoints.create_async(
            params={"url": server.url + path, "enabled_events": ["*"], "connect": connect}
        )
        secrets.append(Secret(str(endpoint.secret)))
    settings = Settings(
        database_url=database_url,
        stripe_api_key=Secret(API_KEY),
        stripe_api_base=world.url,
        webhook_secrets=(secrets[0],),
        connect_webhook_secrets=(secrets[1],),
        platform_fee_percent=FEE_PERCENT,
        inbox_backoff_base_seconds=1,
    )
    await asyncio.to_thread(server.start, create_app(settings))
    try:
        yield server.url
    finally:
        await asyncio.to_thread(server.stop)


async def unsettled_events(db: Database) -> int:
    async with db.read() as conn:
        query = select(func.count()).where(inbox_events.c.status.not_in(("done", "ignored")))
        return int((await conn.execute(query)).scalar_one())


async def settle_deliveries(world: StripeWorld, db: Database) -> None:
    """Deliver everything (retries included) until Stripe owes nothing and the inbox is
    applied; fail loudly if that does not happen."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_SECONDS
    while loop.time() < deadline:
        flushed = await world.control_post("deliveries/flush", {"all": True})
        if flushed["pending"] == 0 and await unsettled_events(db) == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not settled after {SETTLE_SECONDS}s: {flushed}")


async def assert_faults_happened(world: StripeWorld, faults: str) -> None:
    """A fault variant proves nothing unless its faults really hit deliveries."""
    deliveries = (await world.control.get("/_sandbox/deliveries")).json()["data"]
    sent = [delivery["sent"] for delivery in deliveries]
    if faults == "each_delivered_three_times":
        assert sent and all(count == 3 for count in sent)
    elif faults == "thirty_percent_dropped_then_redelivered":
        assert any(delivery["attempts"] >= 2 for delivery in deliveries)
    elif faults == "order_reversed":
        fired = (await world.control.get("/_sandbox/faults")).json()["deliveries"]
        assert fired[0]["fired"] == len(deliveries)


@pytest.mark.parametrize("faults", list(FAULTS))
@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda scenario: scenario.__name__)
async def test_scenario_through_real_deliveries(
    db: Database,
    world: StripeWorld,
    service: str,
    now: datetime,
    faults: str,
    scenario: Callable[[Scene], Awaitable[None]],
) -> None:
    for fault in FAULTS[faults]:
        await world.control_post("faults/deliveries", fault)

    async def settle() -> None:
        await settle_deliveries(world, db)

    await scenario(Scene(db=db, world=world, settle=settle, now=now))
    await assert_faults_happened(world, faults)
    async with db.read() as conn:
        failed = (
            await conn.execute(
                select(inbox_events.c.event_type, inbox_events.c.last_error).where(
                    inbox_events.c.status.in_(("failed", "dead"))
                )
            )
        ).all()
    assert failed == []
