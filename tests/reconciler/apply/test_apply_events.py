"""Real Stripe events from the sandbox, applied through EventApplier, in order, reversed and
repeated: the ledger must end the same every time.

Each payment is 100.00 USD with ICPay's fee at 10%: the merchant's share is 90.00, Stripe's
fee 2.9% + 30c = 3.20.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime
from decimal import Decimal

import pytest
from sqlalchemy import select

from reconciler.apply import EventApplier
from reconciler.config import Settings
from reconciler.db.engine import Database
from reconciler.db.tables import discrepancies, merchants, payments, payouts, refunds
from reconciler.ledger.balances import account_balance, check_balance_invariant
from reconciler.ledger.merchants import create_merchant
from reconciler.ledger.payouts import reserve_payout
from tests.factories import all_balances, payable_merchant
from tests.stripe_world import TWO_DAYS_AND_A_BIT, StoredEvent, StripeWorld, stripe_world

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


@pytest.fixture(params=list(ORDERS))
def order(request: pytest.FixtureRequest) -> Order:
    return ORDERS[request.param]


async def apply_events(db: Database, world: StripeWorld, order: Order) -> None:
    applier = EventApplier(db, world.gateway, Settings(platform_fee_percent=Decimal(10)))
    for event in order(await world.events()):
        await applier(event)


async def merchant(db: Database, now: datetime) -> int:
    async with db.write() as conn:
        return await payable_merchant(conn, now)


async def rows(db: Database, table: object, *columns: str) -> list[tuple[object, ...]]:
    async with db.read() as conn:
        query = select(*(table.c[column] for column in columns)).order_by(table.c.id)  # type: ignore[attr-defined]
        return [tuple(row) for row in await conn.execute(query)]


async def test_visa_payment_is_pending_then_available(
    db: Database, world: StripeWorld, order: Order, now: datetime
) -> None:
    merchant_id = await merchant(db, now)
    intent = await world.pay(merchant_id, 10000, "pm_card_visa")
    await apply_events(db, world, order)
    assert await rows(
        db, payments, "payment_intent_id", "status", "platform_fee", "stripe_fee", "funds_available"
    ) == [(intent.id, "succeeded", 1000, 320, False)]

    await world.control_post("clock/advance", {"seconds": TWO_DAYS_AND_A_BIT})
    await apply_events(db, world, order)

    async with db.read() as conn:
        assert await all_balances(conn, merchant_id) == (9000, 9000, 9000)
        assert await account_balance(conn, "platform:stripe_available", "usd") == 9680
        assert await account_balance(conn, "platform:stripe_pending", "usd") == 0
        assert await check_balance_invariant(conn) == []
    assert (await rows(db, payments, "funds_available")) == [(True,)]


async def test_bypass_pending_card_is_available_at_once(
    db: Database, world: StripeWorld, order: Order, now: datetime
) -> None:
    merchant_id = await merchant(db, now)
    await world.pay(merchant_id, 10000, "pm_card_bypassPending")
    await apply_events(db, world, order)
    assert await rows(db, payments, "status", "funds_available") == [("succeeded", True)]
    async with db.read() as conn:
        assert await account_balance(conn, "platform:stripe_available", "usd") == 9680
        assert await all_balances(conn, merchant_id) == (9000, 9000, 9000)


async def test_declined_card_books_nothing(
    db: Database, world: StripeWorld, order: Order, now: datetime
) -> None:
    merchant_id = await merchant(db, now)
    with pytest.raises(Exception, match="declined"):
        await world.pay(merchant_id, 10000, "pm_card_chargeDeclined")
    await apply_events(db, world, order)
    assert await rows(db, payments, "status") == [("failed",)]
    async with db.read() as conn:
        assert await all_balances(conn, merchant_id) == (0, 0, 0)


async def test_dashboard_refund_becomes_a_dashboard_refund_record(
    db: Database, world: StripeWorld, order: Order, now: datetime
) -> None:
    merchant_id = await merchant(db, now)
    intent = await world.pay(merchant_id, 10000, "pm_card_bypassPending")
    await world.control_post("dashboard/refunds", {"payment_intent": intent.id, "amount": 2500})
    await apply_events(db, world, order)

    assert await rows(db, refunds, "amount", "status", "source") == [
        (2500, "succeeded", "dashboard")
    ]
    assert await rows(db, payments, "status", "amount_refunded") == [("partially_refunded", 2500)]
    async with db.read() as conn:
        assert await all_balances(conn, merchant_id) == (6500, 6500, 6500)
        assert await account_balance(conn, "platform:stripe_available", "usd") == 9680 - 2500


async def test_refund_fail_card_refund_fails_and_gives_the_money_back(
    db: Database, world: StripeWorld, order: Order, now: datetime
) -> None:
    merchant_id = await merchant(db, now)
    intent = await world.pay(merchant_id, 10000, "pm_card_refundFail")
    await world.control_post("clock/advance", {"seconds": TWO_DAYS_AND_A_BIT})
    await world.client.v1.refunds.create_async(params={"payment_intent": intent.id, "amount": 4000})
    await world.control_post("clock/advance", {"seconds": 60})
    await apply_events(db, world, order)

    assert await rows(db, refunds, "amount", "status", "failure_reason", "source") == [
        (4000, "failed", "expired_or_canceled_card", "dashboard")
    ]
    assert await rows(db, payments, "status", "amount_refunded") == [("succeeded", 0)]
    async with db.read() as conn:
        assert await all_balances(conn, merchant_id) == (9000, 9000, 9000)
        assert await account_balance(conn, "platform:stripe_available", "usd") == 9680
        assert await check_balance_invariant(conn) == []


async def test_transfer_reversed_in_the_dashboard_gives_the_payout_back(
    db: Database, world: StripeWorld, order: Order, now: datetime
) -> None:
    account = await world.client.v1.accounts.create_async(
        params={"type": "express", "country": "US"}
    )
    await world.control_post(f"accounts/{account.id}/onboarding")
    async with db.write() as conn:
        merchant_id = await create_merchant(
            conn, name="Acme", now=now, stripe_account_id=account.id
        )
    await world.pay(merchant_id, 10000, "pm_card_bypassPending")
    await apply_events(db, world, ORDERS["in_order"])  # onboarding and payment booked
    async with db.write() as conn:
        payout_id = await reserve_payout(
            conn, merchant_id=merchant_id, amount=5000, currency="usd", now=now
        )
    transfer = await world.client.v1.transfers.create_async(
        params={
            "amount": 5000,
            "currency": "usd",
            "destination": account.id,
            "metadata": {"icpay_payout_id": str(payout_id)},
        }
    )
    await world.control_post(f"dashboard/transfers/{transfer.id}/reversals", {"amount": 2000})
    await apply_events(db, world, order)

    assert await rows(db, payouts, "status", "stripe_transfer_id", "amount_reversed") == [
        ("amount_reversed", transfer.id, 2000)
    ]
    async with db.read() as conn:
        assert await all_balances(conn, merchant_id) == (6000, 6000, 6000)
        assert await account_balance(conn, "platform:stripe_available", "usd") == 9680 - 3000


async def test_onboarding_completed_enables_the_merchant(
    db: Database, world: StripeWorld, order: Order, now: datetime
) -> None:
    async with db.write() as conn:
        merchant_id = await create_merchant(conn, name="Acme", now=now)
    account = await world.client.v1.accounts.create_async(
        params={
            "type": "express",
            "country": "US",
            "metadata": {"icpay_account_id": str(merchant_id)},
        }
    )
    await world.control_post(f"accounts/{account.id}/onboarding")
    await apply_events(db, world, order)
    assert await rows(
        db, merchants, "stripe_account_id", "connect_status", "payouts_enabled", "requirements_due"
    ) == [(account.id, "enabled", True, [])]


async def test_what_is_not_ours_becomes_a_discrepancy_never_a_booking(
    db: Database, world: StripeWorld, order: Order, now: datetime
) -> None:
    account = await world.client.v1.accounts.create_async(
        params={"type": "express", "country": "US"}
    )
    await world.control_post(f"accounts/{account.id}/onboarding")
    async with db.write() as conn:
        await create_merchant(conn, name="Acme", now=now, stripe_account_id=account.id)
    intent = await world.client.v1.payment_intents.create_async(
        params={
            "amount": 10000,
            "currency": "usd",
            "payment_method": "pm_card_bypassPending",
            "payment_method_types": ["card"],
            "confirm": True,
        }
    )
    foreign = await world.client.v1.transfers.create_async(
        params={"amount": 1000, "currency": "usd", "destination": account.id}
    )
    await apply_events(db, world, order)

    assert await rows(db, payments, "id") == []
    assert await rows(db, payouts, "id") == []
    found = await rows(db, discrepancies, "kind", "object_type", "object_id", "merchant_id")
    assert sorted(found, key=str) == sorted(
        [
            ("unattributed_object", "payment_intent", intent.id, None),
            # Sent to a merchant's account, yet never booked as their payout.
            ("unattributed_object", "transfer", foreign.id, 1),
        ],
        key=str,
    )
