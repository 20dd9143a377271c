"""The platform's Stripe balance below zero, and refunds Stripe holds for want of funds:
reported while they last, closed once they are over, whatever order Stripe's word arrives in."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from reconciler.apply import apply_object
from reconciler.apply.balance import apply_balance
from reconciler.apply.context import ApplyContext
from reconciler.db.engine import Database
from reconciler.db.tables import discrepancies
from reconciler.ledger.platform_balance import platform_balance
from reconciler.ledger.session import ledger_reader, ledger_session
from reconciler.money import FeeSchedule
from tests.factories import payable_merchant, settled_payment


class NoStripe:
    """Nothing here needs Stripe: every payment is already in the ledger."""


def context(db: Database, now: datetime) -> ApplyContext:
    return ApplyContext(db=db, stripe=NoStripe(), fees=FeeSchedule(), clock=lambda: now)  # type: ignore[arg-type]


def balance(available: int, pending: int = 0) -> dict[str, Any]:
    return {
        "object": "balance",
        "available": [{"amount": available, "currency": "usd"}],
        "pending": [{"amount": pending, "currency": "usd"}],
    }


def refund(status: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": "re_held",
        "object": "refund",
        "amount": 10000,
        "currency": "usd",
        "charge": None,
        "payment_intent": "pi_paid",
        "status": status,
        "metadata": {},
        **extra,
    }


async def found(db: Database) -> list[tuple[str, str, str]]:
    async with ledger_reader(db) as conn:
        rows = await conn.execute(
            select(discrepancies.c.kind, discrepancies.c.object_id, discrepancies.c.status)
        )
        return sorted(tuple(row) for row in rows)  # type: ignore[misc]


async def test_the_view_is_the_newest_snapshot_by_stripes_time(db: Database, now: datetime) -> None:
    ctx = context(db, now)
    await apply_balance(ctx, balance(-500, 900), as_of=now, source="fetched")
    # An older balance.available delivered late does not replace what Stripe said since.
    await apply_balance(ctx, balance(7000), as_of=now - timedelta(minutes=5), source="late")

    async with ledger_reader(db) as conn:
        view = await platform_balance(conn, "usd")
        assert await platform_balance(conn, "eur") is None
    assert view is not None
    assert (view.available, view.pending, view.as_of, view.source) == (-500, 900, now, "fetched")
    assert view.refunds_held


async def test_a_negative_balance_is_open_until_a_newer_one_is_not(
    db: Database, now: datetime
) -> None:
    ctx = context(db, now)
    await apply_balance(ctx, balance(-500), as_of=now, source="fetched")
    await apply_balance(ctx, balance(-200), as_of=now + timedelta(seconds=1), source="fetched")
    assert await found(db) == [("negative_platform_balance", "usd", "open")]

    await apply_balance(ctx, balance(-900), as_of=now - timedelta(seconds=1), source="late")
    await apply_balance(ctx, balance(300), as_of=now + timedelta(seconds=2), source="fetched")
    assert await found(db) == [("negative_platform_balance", "usd", "resolved")]

    await apply_balance(ctx, balance(-900), as_of=now - timedelta(seconds=3), source="late")
    assert await found(db) == [("negative_platform_balance", "usd", "resolved")]


@pytest.mark.parametrize("order", ["as it happened", "paid first"])
async def test_a_refund_waiting_for_funds_is_open_only_while_it_waits(
    db: Database, now: datetime, order: str
) -> None:
    async with ledger_session(db) as conn:
        merchant_id = await payable_merchant(conn, now)
        await settled_payment(conn, merchant_id, 10000, now, intent="pi_paid")
    ctx = context(db, now)
    waiting = refund("pending", pending_reason="insufficient_funds")
    paid = refund("succeeded")

    await apply_object(ctx, waiting if order == "as it happened" else paid)
    if order == "as it happened":
        assert await found(db) == [("refund_waiting_for_funds", "re_held", "open")]
        await apply_object(ctx, paid)
        assert await found(db) == [("refund_waiting_for_funds", "re_held", "resolved")]
    else:
        await apply_object(ctx, waiting)  # stale: the refund has been paid
        assert await found(db) == []


async def test_a_refund_pending_for_another_reason_is_not_reported(
    db: Database, now: datetime
) -> None:
    async with ledger_session(db) as conn:
        merchant_id = await payable_merchant(conn, now)
        await settled_payment(conn, merchant_id, 10000, now, intent="pi_paid")
    await apply_object(context(db, now), refund("pending", pending_reason="processing"))
    assert await found(db) == []
