"""The scenarios end to end with every webhook delivery lost: the sandbox drops them all, and
only the events catch-up (listing `/v1/events` for the platform and each connected account)
brings Stripe's events into the running service's inbox. The ledger and journal must end
exactly as with webhooks: each scenario asserts them whole, the same assertions for both."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from reconciler.db.engine import Database
from reconciler.db.tables import inbox_events
from reconciler.inbox.catchup import CatchUpPolicy, EventsCatchUp
from tests.e2e.service import SETTLE_SECONDS, failed_events, running_service, unsettled_events
from tests.scenarios import SCENARIOS, Scene, deauthorization_with_money_owed_is_reported
from tests.stripe_world import StripeWorld, stripe_world

# Every story but one: Stripe lists a connected account's events only to a platform it still
# lets in, so a deauthorization is never listed (the catch-up reports the account as
# "access revoked"); the account's own 403 tells the reconcile of it.
CAUGHT_UP = [
    scenario
    for scenario in SCENARIOS
    if scenario is not deauthorization_with_money_owed_is_reported
]


@pytest.fixture
async def world() -> AsyncIterator[StripeWorld]:
    async with stripe_world(seed=11) as running:
        yield running


@pytest.fixture
async def service(database_url: str, world: StripeWorld) -> AsyncIterator[str]:
    async with running_service(database_url, world) as url:
        yield url


async def settle_by_catching_up(world: StripeWorld, db: Database, job: EventsCatchUp) -> None:
    """Let the sandbox try (and lose) every delivery, run the catch-up at the sandbox's now,
    then wait for the service's worker to apply what it stored."""
    await world.control_post("deliveries/flush", {"all": True})
    await job.run(datetime.fromtimestamp(world.sandbox.sandbox.clock.now(), UTC))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_SECONDS
    while await unsettled_events(db):
        if loop.time() > deadline:
            raise AssertionError(f"the inbox is not applied after {SETTLE_SECONDS}s")
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("scenario", CAUGHT_UP, ids=lambda scenario: scenario.__name__)
async def test_scenario_through_the_events_catch_up_alone(
    db: Database,
    world: StripeWorld,
    service: str,
    now: datetime,
    scenario: Callable[[Scene], Awaitable[None]],
) -> None:
    await world.control_post("faults/deliveries", {"kind": "drop", "probability": 1.0})
    policy = CatchUpPolicy(
        overlap_seconds=300,
        retention_margin_seconds=3 * 86_400,
        first_lookback_seconds=7 * 86_400,  # the stories begin days before they settle
        page_size=3,  # small pages: the stories' events span several
    )
    # Its own gateway and the service's database: as another instance's scheduler would.
    job = EventsCatchUp(db, world.gateway, policy, livemode=False)

    async def settle() -> None:
        await settle_by_catching_up(world, db, job)

    await scenario(Scene(db=db, world=world, settle=settle, now=now))

    await settle()  # what the story made after its last look, for the count below
    deliveries = (await world.control.get("/_sandbox/deliveries")).json()["data"]
    assert deliveries and {delivery["status"] for delivery in deliveries} == {"dropped"}
    async with db.read() as conn:
        stored = await conn.scalar(select(func.count()).select_from(inbox_events))
    assert stored == len(await world.events())  # every event, and each once
    assert await failed_events(db) == []
