"""The running service the e2e tests deliver to, and how they wait for it to catch up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import func, select

from handlers.app import create_app
from reconciler.config import Secret, Settings
from reconciler.db.engine import Database
from reconciler.db.tables import inbox_events
from stripe_sandbox.server import ServerThread
from tests.scenarios import FEE_PERCENT
from tests.stripe_world import API_KEY, TEST_RATE_BURST, TEST_RATE_LIMIT, StripeWorld

SETTLE_SECONDS = 20
PLATFORM_PATH, CONNECT_PATH = "/webhooks/stripe", "/webhooks/stripe/connect"


async def snapshot_endpoints(world: StripeWorld, base: str) -> tuple[Secret, Secret]:
    """The two v1 webhook endpoints: the platform's events, and Connect's."""
    secrets = []
    for path, connect in ((PLATFORM_PATH, False), (CONNECT_PATH, True)):
        endpoint = await world.client.v1.webhook_endpoints.create_async(
            params={"url": base + path, "enabled_events": ["*"], "connect": connect}
        )
        secrets.append(Secret(str(endpoint.secret)))
    return secrets[0], secrets[1]


async def thin_destinations(world: StripeWorld, base: str) -> tuple[Secret, Secret]:
    """The same two endpoints as v2 event destinations taking thin events: the platform's
    own (`events_from: self`), and its connected accounts' (`other_accounts`)."""
    secrets = []
    for path, scope in ((PLATFORM_PATH, "self"), (CONNECT_PATH, "other_accounts")):
        destination = await world.client.v2.core.event_destinations.create_async(
            params={
                "name": f"ICPay {scope}",
                "type": "webhook_endpoint",
                "event_payload": "thin",
                "enabled_events": ["*"],
                "events_from": [scope],
                "webhook_endpoint": {"url": base + path},
                "include": ["webhook_endpoint.signing_secret"],
            }
        )
        assert destination.webhook_endpoint is not None
        secrets.append(Secret(str(destination.webhook_endpoint.signing_secret)))
    return secrets[0], secrets[1]


@asynccontextmanager
async def running_service(
    database_url: str, world: StripeWorld, *, thin: bool = False
) -> AsyncIterator[str]:
    """The service on a real port, its two endpoints registered at the sandbox."""
    server = ServerThread()
    register = thin_destinations if thin else snapshot_endpoints
    platform, connect = await register(world, server.url)
    settings = Settings(
        database_url=database_url,
        stripe_api_key=Secret(API_KEY),
        stripe_api_base=world.url,
        stripe_rate_limit=TEST_RATE_LIMIT,
        stripe_rate_burst=TEST_RATE_BURST,
        webhook_secrets=(platform,),
        connect_webhook_secrets=(connect,),
        platform_fee_percent=FEE_PERCENT,
        inbox_backoff_base_seconds=1,
        # The stories make their payouts' transfers themselves, as the Dashboard would.
        payout_executor_enabled=False,
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


async def failed_events(db: Database) -> list[tuple[str, str | None]]:
    async with db.read() as conn:
        query = select(inbox_events.c.event_type, inbox_events.c.last_error).where(
            inbox_events.c.status.in_(("failed", "dead"))
        )
        return [(row[0], row[1]) for row in await conn.execute(query)]
