"""Payments in a currency the ledger does not hold: reported, and booked at what Stripe
settled them as when it converted them, never an event that dies retrying."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from reconciler.apply import apply_object
from reconciler.apply.context import ApplyContext
from reconciler.db.engine import Database
from reconciler.db.tables import discrepancies, payments, refunds
from reconciler.ledger.session import ledger_reader, ledger_session
from reconciler.money import FeeSchedule
from tests.factories import all_balances, journal_history, payable_merchant

# 100.00 EUR, settled as 110.00 USD (rate 1.1) less Stripe's fee of 3.49 USD.
SETTLED = {
    "id": "txn_1",
    "object": "balance_transaction",
    "amount": 11000,
    "currency": "usd",
    "exchange_rate": 1.1,
    "fee": 349,
    "net": 10651,
    "status": "available",
    "available_on": 1,
}


def intent(status: str, merchant_id: int) -> dict[str, Any]:
    return {
        "id": "pi_eur",
        "object": "payment_intent",
        "status": status,
        "amount": 10000,
        "amount_received": 10000 if status == "succeeded" else 0,
        "currency": "eur",
        "latest_charge": "ch_eur" if status == "succeeded" else None,
        "metadata": {"icpay_account_id": str(merchant_id)},
    }


def charge(transaction: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "ch_eur",
        "object": "charge",
        "payment_intent": "pi_eur",
        "status": "succeeded",
        "captured": True,
        "amount": 10000,
        "amount_captured": 10000,
        "amount_refunded": 0,
        "refunded": False,
        "currency": "eur",
        "balance_transaction": transaction,
        "refunds": {"object": "list", "has_more": False, "data": []},
    }


class Stripe:
    def __init__(self, merchant_id: int, transaction: dict[str, Any]) -> None:
        self.merchant_id, self.transaction = merchant_id, transaction

    async def payment_intent(self, intent_id: str) -> dict[str, Any]:
        return intent("succeeded", self.merchant_id)

    async def charge(self, charge_id: str) -> dict[str, Any]:
        return charge(self.transaction)


def context(db: Database, stripe: Stripe, now: datetime) -> ApplyContext:
    return ApplyContext(db=db, stripe=stripe, fees=FeeSchedule(), clock=lambda: now)  # type: ignore[arg-type]


async def kinds_found(db: Database) -> list[tuple[str, str]]:
    async with ledger_reader(db) as conn:
        found = await conn.execute(select(discrepancies.c.kind, discrepancies.c.object_id))
        return sorted((kind, object_id) for kind, object_id in found)


PAYABLE = "merchant:1:payable"
EUR_PAID = [
    (
        "payment:1:succeeded",
        [(PAYABLE, 0, 11000), ("platform:stripe_pending", 11000, 0)],
    ),
    (
        "payment:1:stripe_fee",
        [("platform:stripe_fees", 349, 0), ("platform:stripe_pending", 0, 349)],
    ),
    (
        "payment:1:funds_available",
        [("platform:stripe_available", 10651, 0), ("platform:stripe_pending", 0, 10651)],
    ),
]


@pytest.mark.parametrize("order", ["created first", "succeeded first"])
async def test_a_converted_payment_is_booked_at_its_settlement_and_reported(
    db: Database, now: datetime, order: str
) -> None:
    async with ledger_session(db) as conn:
        merchant_id = await payable_merchant(conn, now)
    ctx = ApplyContext(
        db=db, stripe=Stripe(merchant_id, SETTLED), fees=FeeSchedule(), clock=lambda: now
    )  # type: ignore[arg-type]
    snapshots = [
        intent("requires_payment_method", merchant_id),
        intent("succeeded", merchant_id),
        charge(SETTLED),
    ]
    for snapshot in snapshots if order == "created first" else snapshots[::-1]:
        await apply_object(ctx, snapshot)

    assert await kinds_found(db) == [("unsupported_currency", "pi_eur")]
    async with ledger_reader(db) as conn:
        row = (
            await conn.execute(
                select(
                    payments.c.amount,
                    payments.c.currency,
                    payments.c.presentment_amount,
                    payments.c.presentment_currency,
                    payments.c.status,
                )
            )
        ).one()
        assert tuple(row) == (11000, "usd", 10000, "eur", "succeeded")
        assert sorted(await journal_history(conn)) == sorted(EUR_PAID)
        assert await all_balances(conn, merchant_id) == (11000, 11000, 11000)


async def test_an_unconverted_payment_is_reported_not_booked(db: Database, now: datetime) -> None:
    async with ledger_session(db) as conn:
        merchant_id = await payable_merchant(conn, now)
    in_euros = {**SETTLED, "amount": 10000, "currency": "eur", "exchange_rate": None}
    ctx = ApplyContext(
        db=db, stripe=Stripe(merchant_id, in_euros), fees=FeeSchedule(), clock=lambda: now
    )  # type: ignore[arg-type]

    await apply_object(ctx, intent("succeeded", merchant_id))
    await apply_object(ctx, charge(in_euros))

    assert await kinds_found(db) == [("unsupported_currency", "pi_eur")]
    async with ledger_reader(db) as conn:
        assert await conn.scalar(select(func.count()).select_from(payments)) == 0
        assert await journal_history(conn) == []


async def test_a_refund_of_a_converted_payment_is_reported_not_booked(
    db: Database, now: datetime
) -> None:
    async with ledger_session(db) as conn:
        merchant_id = await payable_merchant(conn, now)
    ctx = ApplyContext(
        db=db, stripe=Stripe(merchant_id, SETTLED), fees=FeeSchedule(), clock=lambda: now
    )  # type: ignore[arg-type]
    await apply_object(ctx, intent("succeeded", merchant_id))
    refund = {
        "id": "re_eur",
        "object": "refund",
        "amount": 5000,
        "currency": "eur",
        "charge": "ch_eur",
        "payment_intent": "pi_eur",
        "status": "succeeded",
        "metadata": {},
    }

    await apply_object(ctx, refund)

    assert await kinds_found(db) == [
        ("unsupported_currency", "pi_eur"),
        ("unsupported_currency", "re_eur"),
    ]
    async with ledger_reader(db) as conn:
        assert await conn.scalar(select(func.count()).select_from(refunds)) == 0


async def test_a_converted_payment_captured_asynchronously_is_reported_once_settled(
    db: Database, now: datetime
) -> None:
    async with ledger_session(db) as conn:
        merchant_id = await payable_merchant(conn, now)
    stripe = Stripe(merchant_id, None)  # type: ignore[arg-type]
    ctx = ApplyContext(db=db, stripe=stripe, fees=FeeSchedule(), clock=lambda: now)  # type: ignore[arg-type]

    # The charge shows no balance transaction yet: nothing to book, nothing to report yet.
    await apply_object(ctx, intent("succeeded", merchant_id))
    assert await kinds_found(db) == []
    stripe.transaction = SETTLED  # charge.updated: now it does
    await apply_object(ctx, {**charge(SETTLED), "balance_transaction": "txn_1"})

    async with ledger_reader(db) as conn:
        found = await conn.execute(select(discrepancies.c.kind, discrepancies.c.ledger_value))
        assert [tuple(row) for row in found] == [
            ("unsupported_currency", {"amount": 11000, "currency": "usd"})
        ]
        assert sorted(await journal_history(conn)) == sorted(EUR_PAID)
