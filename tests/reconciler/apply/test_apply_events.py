"""The scenarios, with the sandbox's real events fed straight to EventApplier: in order,
reversed, and each three times. The ledger must end the same every time."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime

import pytest

from reconciler.apply import EventApplier
from reconciler.config import Settings
from reconciler.db.engine import Database
from tests.scenarios import FEE_PERCENT, SCENARIOS, Scene
from tests.stripe_world import StoredEvent, StripeWorld, stripe_world

Order = Callable[[list[StoredEvent]], list[StoredEvent]]
ORDERS: dict[str, Order] = {
    "in_order": lambda events: events,
    "reversed": lambda events: list(reversed(events)),
    "each_three_times": lambda events: [event for event in events for _ in range(3)],
}


@pytest.fixture
async def world() -> AsyncIterator[StripeWorld]:
    async with stripe_world() as running:
        yield running


@pytest.mark.parametrize("order", list(ORDERS))
@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda scenario: scenario.__name__)
async def test_scenario_from_fed_events(
    db: Database,
    world: StripeWorld,
    now: datetime,
    order: str,
    scenario: Callable[[Scene], Awaitable[None]],
) -> None:
    applier = EventApplier(db, world.gateway, Settings(platform_fee_percent=FEE_PERCENT))

    async def settle() -> None:
        # Every event so far, every time: applying an event again must change nothing.
        for event in ORDERS[order](await world.events()):
            await applier(event)

    await scenario(Scene(db=db, world=world, settle=settle, now=now))
