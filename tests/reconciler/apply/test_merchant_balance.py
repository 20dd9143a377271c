"""What a merchant's balance needs a person to see says how things stand now: the amounts
follow every change, whatever order the events came in, and a condition that is over closes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import select

from reconciler.apply import apply_object
from reconciler.apply.context import ApplyContext
from reconciler.apply.events import apply_event
from reconciler.db.engine import Database
from reconciler.db.tables import discrepancies
from reconciler.ledger.payouts import advance_payout, reserve_payout
from reconciler.ledger.session import ledger_reader, ledger_session
from reconciler.money import FeeSchedule
from tests.factories import all_balances, payable_merchant, settled_payment
from tests.reconciler.apply.test_accounts import AccessRevoked, deauthorized


async def rows(db: Database, status: str = "open") -> list[tuple[Any, ...]]:
    async with ledger_reader(db) as conn:
        found = await conn.execute(
            select(discrepancies.c.kind, discrepancies.c.ledger_value)
            .where(discrepancies.c.status == status)
            .order_by(discrepancies.c.id)
        )
        return [tuple(row) for row in found]


def refund(status: str, amount: int = 9000, refund_id: str = "re_1") -> dict[str, Any]:
    return {
        "id": refund_id,
        "object": "refund",
        "amount": amount,
        "currency": "usd",
        "payment_intent": "pi_1",
        "charge": "ch_1",
        "status": status,
        "metadata": {},
    }


def intent(intent_id: str, amount: int, merchant_id: int) -> dict[str, Any]:
    return {
        "id": intent_id,
        "object": "payment_intent",
        "amount": amount,
        "amount_received": amount,
        "currency": "usd",
        "status": "succeeded",
        "latest_charge": None,
        "metadata": {"icpay_account_id": str(merchant_id)},
    }


async def merchant_with(db: Database, now: datetime, *payments: str) -> tuple[int, ApplyContext]:
    async with ledger_session(db) as tx:
        merchant_id = await payable_merchant(tx, now)
        for intent_id in payments:
            await settled_payment(tx, merchant_id, 9000, now, intent=intent_id)
    ctx = ApplyContext(db=db, stripe=AccessRevoked(), fees=FeeSchedule(), clock=lambda: now)  # type: ignore[arg-type]
    return merchant_id, ctx


@pytest.mark.parametrize("deauthorized_first", [True, False], ids=["left first", "left last"])
async def test_money_owed_after_a_refund_is_canceled_is_reported_in_either_order(
    db: Database, now: datetime, deauthorized_first: bool
) -> None:
    merchant_id, ctx = await merchant_with(db, now, "pi_1")
    await apply_object(ctx, refund("succeeded"))  # a Dashboard refund of it all: owed nothing
    if deauthorized_first:
        await apply_event(ctx, deauthorized())
    await apply_object(ctx, refund("canceled"))  # given back: 90.00 owed again
    if not deauthorized_first:
        await apply_event(ctx, deauthorized())
    async with ledger_reader(db) as tx:
        assert await all_balances(tx, merchant_id) == (9000, 9000, 9000)
    assert await rows(db) == [("deauthorized_merchant_owed", {"owed": {"usd": 9000}})]


async def test_money_owed_follows_what_arrives_after(db: Database, now: datetime) -> None:
    merchant_id, ctx = await merchant_with(db, now, "pi_1")
    await apply_event(ctx, deauthorized())
    await apply_object(ctx, intent("pi_2", 5000, merchant_id))
    assert await rows(db) == [("deauthorized_merchant_owed", {"owed": {"usd": 14000}})]
    await apply_object(ctx, refund("succeeded", 9000))
    assert await rows(db) == [("deauthorized_merchant_owed", {"owed": {"usd": 5000}})]


async def test_a_negative_balance_follows_each_refund_and_closes_when_made_good(
    db: Database, now: datetime
) -> None:
    merchant_id, ctx = await merchant_with(db, now, "pi_1", "pi_9")
    async with ledger_session(db) as tx:
        payout = await reserve_payout(
            tx, merchant_id=merchant_id, amount=17000, currency="usd", now=now
        )
        await advance_payout(tx, payout, "processing", now=now, transfer_id="tr_1")
        await advance_payout(tx, payout, "completed", now=now)
    await apply_object(ctx, refund("succeeded", 2000, "re_1"))  # 10.00 -> -10.00
    await apply_object(ctx, refund("succeeded", 7000, "re_2"))  # -10.00 -> -80.00
    assert await rows(db) == [("negative_merchant_balance", {"balances": {"usd": -8000}})]
    await apply_object(ctx, refund("canceled", 7000, "re_2"))  # -80.00 -> -10.00
    assert await rows(db) == [("negative_merchant_balance", {"balances": {"usd": -1000}})]
    await apply_object(ctx, refund("canceled", 2000, "re_1"))  # back to 10.00: over
    assert await rows(db) == []
    assert await rows(db, "resolved") == [
        ("negative_merchant_balance", {"balances": {"usd": -1000}})
    ]
