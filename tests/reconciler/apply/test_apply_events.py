"""The scenarios, with the sandbox's real events fed straight to EventApplier: in order,
reversed, and each three times; one at a time, and all together as one batch (as the inbox
worker hands them over). The ledger must end the same every time."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime

import pytest

from reconciler.apply import EventApplier
from reconciler.config import Settings
from reconciler.db.engine import Database
from reconciler.db.tables import payments, refunds
from reconciler.ledger.session import ledger_session
from tests.factories import payable_merchant
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


@pytest.mark.parametrize("together", [False, True], ids=["alone", "batch"])
@pytest.mark.parametrize("order", list(ORDERS))
@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda scenario: scenario.__name__)
async def test_scenario_from_fed_events(
    db: Database,
    world: StripeWorld,
    now: datetime,
    order: str,
    together: bool,
    scenario: Callable[[Scene], Awaitable[None]],
) -> None:
    applier = EventApplier(db, world.gateway, Settings(platform_fee_percent=FEE_PERCENT))

    async def settle() -> None:
        # Every event so far, every time: applying an event again must change nothing.
        events = ORDERS[order](await world.events())
        if together:
            prepared = await applier.prepare(events)
            async with db.write() as conn:
                await prepared.apply(conn, events)
            return
        for event in events:
            await applier(event)

    await scenario(Scene(db=db, world=world, settle=settle, now=now))


async def test_a_refund_before_its_payment_succeeded_brings_the_payment_up_first(
    db: Database, world: StripeWorld, now: datetime
) -> None:
    async with ledger_session(db) as conn:
        merchant_id = await payable_merchant(conn, now)
    intent = await world.pay(merchant_id, 10000, "pm_card_bypassPending")
    await world.control_post("dashboard/refunds", {"payment_intent": intent.id, "amount": 2500})
    events = {json.loads(event.payload)["type"]: event for event in await world.events()}
    applier = EventApplier(db, world.gateway, Settings(platform_fee_percent=FEE_PERCENT))

    # Only these two arrive (payment_intent.succeeded is late): the payment is still pending.
    await applier(events["payment_intent.created"])
    await applier(events["refund.created"])

    scene = Scene(db=db, world=world, settle=world_settled, now=now)
    assert await scene.rows(payments, "status", "amount_refunded") == [("partially_refunded", 2500)]
    assert await scene.rows(refunds, "amount", "source") == [(2500, "dashboard")]
    await scene.assert_balances(merchant_id, 6500, available=9680 - 2500)


async def world_settled() -> None:
    """Nothing to settle: the test applies its events by hand."""
