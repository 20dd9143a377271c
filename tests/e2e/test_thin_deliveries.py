"""The scenarios end to end on thin events alone: the service's two endpoints are registered
as v2 event destinations taking thin events (the platform's own, and its connected
accounts'), so every delivery names an object and the service fetches it. With delivery
faults, the ledger must end exactly as with snapshot webhooks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime

import pytest

from reconciler.db.engine import Database
from tests.e2e.service import (
    assert_faults_happened,
    failed_events,
    running_service,
    settle_deliveries,
)
from tests.e2e.test_webhook_deliveries import FAULTS
from tests.scenarios import SCENARIOS, Scene
from tests.stripe_world import StripeWorld, stripe_world

# Order and loss are what a thin event's fetch must survive; duplicates cost only fetches
# (the snapshot tests cover them), so they are left out to keep the run short.
THIN_FAULTS = ("order_reversed", "thirty_percent_dropped_then_redelivered")


@pytest.fixture
async def world() -> AsyncIterator[StripeWorld]:
    async with stripe_world(seed=11) as running:
        yield running


@pytest.fixture
async def service(database_url: str, world: StripeWorld) -> AsyncIterator[str]:
    async with running_service(database_url, world, thin=True) as url:
        yield url


@pytest.mark.parametrize("faults", THIN_FAULTS)
@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda scenario: scenario.__name__)
async def test_scenario_through_thin_deliveries_only(
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
    deliveries = (await world.control.get("/_sandbox/deliveries")).json()["data"]
    assert deliveries and {delivery["payload"] for delivery in deliveries} == {"thin"}
    assert await failed_events(db) == []
