"""Two workers applying snapshots of the same objects at once (several service instances on
PostgreSQL): each change must be decided on what the other committed, not on a stale read."""

from __future__ import annotations

import asyncio
from datetime import datetime

from reconciler.db.engine import Database
from reconciler.errors import IllegalTransition
from reconciler.ledger.balances import check_balance_invariant
from reconciler.ledger.payments import get_payment
from reconciler.ledger.payouts import advance_payout, get_payout, record_reversals, reserve_payout
from reconciler.ledger.refunds import advance_refund, create_refund
from reconciler.ledger.session import ledger_reader, ledger_session
from tests.factories import all_balances, funded_merchant, payable_merchant, settled_payment


async def test_racing_partial_reversals_credit_the_merchant_once(
    db: Database, now: datetime
) -> None:
    merchant_id = await funded_merchant(db, now, amount=10000)
    async with ledger_session(db) as conn:
        payout_id = await reserve_payout(
            conn, merchant_id=merchant_id, amount=1000, currency="usd", now=now
        )
        await advance_payout(conn, payout_id, "processing", now=now, transfer_id="tr_1")
        await advance_payout(conn, payout_id, "completed", now=now)

    first, both = [("trr_1", 300)], [("trr_2", 300), ("trr_1", 300)]

    async def reversed_as(listed: list[tuple[str, int]]) -> None:
        async with ledger_session(db) as conn:
            await record_reversals(conn, payout_id, listed, now=now)

    for _ in range(5):
        await asyncio.gather(reversed_as(first), reversed_as(both))

    async with ledger_reader(db) as conn:
        assert (await get_payout(conn, payout_id)).amount_reversed == 600
        assert await all_balances(conn, merchant_id) == (9600, 9600, 9600)
        assert await check_balance_invariant(conn) == []


async def test_racing_completed_and_failed_settle_on_one(db: Database, now: datetime) -> None:
    merchant_id = await funded_merchant(db, now, amount=100000)
    async with ledger_session(db) as conn:
        payout_ids = [
            await reserve_payout(
                conn, merchant_id=merchant_id, amount=1000, currency="usd", now=now
            )
            for _ in range(20)
        ]
        for payout_id in payout_ids:
            await advance_payout(conn, payout_id, "processing", now=now)

    async def snapshot(payout_id: int, status: str) -> str:
        try:
            async with ledger_session(db) as conn:
                await advance_payout(conn, payout_id, status, now=now, from_snapshot=True)
        except IllegalTransition:  # the loser is refused, never booked
            return "refused"
        return status

    outcomes = await asyncio.gather(
        *(
            snapshot(payout_id, status)
            for payout_id in payout_ids
            for status in ("completed", "failed")
        )
    )
    assert outcomes.count("refused") == 20
    async with ledger_reader(db) as conn:
        statuses = [(await get_payout(conn, payout_id)).status for payout_id in payout_ids]
        expected = 100000 - 1000 * statuses.count("completed")
        assert await all_balances(conn, merchant_id) == (expected, expected, expected)
        assert await check_balance_invariant(conn) == []


async def test_racing_refund_failures_give_back_once_and_refunded_stays_true(
    db: Database, now: datetime
) -> None:
    async with ledger_session(db) as conn:
        merchant_id = await payable_merchant(conn, now)
        payment_id = await settled_payment(conn, merchant_id, 10000, now)
        kept = await create_refund(conn, payment_id=payment_id, amount=3000, now=now)
        failing = await create_refund(conn, payment_id=payment_id, amount=2000, now=now)
        await advance_refund(conn, kept, "succeeded", now=now)
        await advance_refund(conn, failing, "succeeded", now=now)

    async def failed() -> None:
        async with ledger_session(db) as conn:
            await advance_refund(conn, failing, "failed", now=now, from_snapshot=True)

    await asyncio.gather(failed(), failed(), failed())
    async with ledger_reader(db) as conn:
        payment = await get_payment(conn, payment_id)
        assert (payment.status, payment.amount_refunded) == ("partially_refunded", 3000)
        assert await all_balances(conn, merchant_id) == (7000, 7000, 7000)
        assert await check_balance_invariant(conn) == []
