"""Snapshots the ledger cannot follow: fetched fresh once, then reported, never forced."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from reconciler.apply import apply_object
from reconciler.apply.context import ApplyContext
from reconciler.db.engine import Database
from reconciler.db.tables import discrepancies
from reconciler.ledger.payouts import advance_payout, get_payout, reserve_payout
from reconciler.money import FeeSchedule
from tests.factories import all_balances, payable_merchant, settled_payment


class FakeStripe:
    """Answers retrieve() with a fixed object and counts the fetches."""

    def __init__(self, fresh: dict[str, Any]) -> None:
        self.fresh = fresh
        self.fetched: list[tuple[str, str]] = []

    async def retrieve(self, object_type: str, object_id: str) -> dict[str, Any]:
        self.fetched.append((object_type, object_id))
        return self.fresh


async def test_transfer_for_a_cancelled_payout_is_reported_not_booked(
    db: Database, now: datetime
) -> None:
    async with db.write() as conn:
        merchant_id = await payable_merchant(conn, now)
        await settled_payment(conn, merchant_id, 10000, now)
        payout_id = await reserve_payout(
            conn, merchant_id=merchant_id, amount=5000, currency="usd", now=now
        )
        await advance_payout(conn, payout_id, "cancelled", now=now)
    transfer = {
        "id": "tr_1",
        "object": "transfer",
        "amount": 5000,
        "currency": "usd",
        "amount_reversed": 0,
        "destination": "acct_acme",
        "metadata": {"icpay_payout_id": str(payout_id)},
    }
    stripe = FakeStripe(transfer)
    ctx = ApplyContext(db=db, stripe=stripe, fees=FeeSchedule(), clock=lambda: now)  # type: ignore[arg-type]

    await apply_object(ctx, transfer)
    await apply_object(ctx, transfer)  # seeing it again is not news

    assert stripe.fetched == [("transfer", "tr_1"), ("transfer", "tr_1")]
    async with db.read() as conn:
        assert (await get_payout(conn, payout_id)).status == "cancelled"
        assert await all_balances(conn, merchant_id) == (10000, 10000, 10000)
        found = (
            await conn.execute(
                select(discrepancies.c.kind, discrepancies.c.object_id, discrepancies.c.status)
            )
        ).all()
    assert [tuple(row) for row in found] == [("status_mismatch", "tr_1", "open")]
