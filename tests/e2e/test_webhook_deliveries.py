"""The scenarios end to end: the sandbox delivers real signed webhooks to the running service,
which stores them in its inbox and applies them with its worker; with the delivery faults of
the issue switched on, the ledger must end exactly as without them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any

import pytest

from reconciler.db.engine import Database
from tests.e2e.service import (
    assert_faults_happened,
    failed_events,
    running_service,
    settle_deliveries,
)
from tests.scenarios import SCENARIOS, Scene
from tests.stripe_world import StripeWorld, stripe_world

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


@pytest.fixture
async def world() -> AsyncIterator[StripeWorld]:
    async with stripe_world(seed=11) as running:
        yield running


@pytest.fixture
async def service(database_url: str, world: StripeWorld) -> AsyncIterator[str]:
    async with running_service(database_url, world) as url:
        yield url


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
    assert await failed_events(db) == []
