"""Reversals booked as running totals (`payout:<id>:reversed_to:<total>`, before they were
booked one per reversal id) are not booked a second time when the next snapshot lists them."""

from __future__ import annotations

from datetime import datetime

import pytest

from reconciler.db.engine import Database
from reconciler.ledger import accounts, journal
from reconciler.ledger.balances import check_balance_invariant
from reconciler.ledger.payouts import advance_payout, record_reversals, reserve_payout
from reconciler.ledger.rows import Payout
from reconciler.ledger.session import ledger_reader, ledger_session
from tests.factories import all_balances, journal_history, payable_merchant, settled_payment


async def payout_reversed_the_old_way(db: Database, now: datetime) -> tuple[int, int]:
    """A 50.00 payout of a 100.00 merchant balance, 20.00 of it reversed and booked as the
    running total the ledger used to keep."""
    async with ledger_session(db) as tx:
        merchant_id = await payable_merchant(tx, now)
        await settled_payment(tx, merchant_id, 10000, now)
        payout_id = await reserve_payout(
            tx, merchant_id=merchant_id, amount=5000, currency="usd", now=now
        )
        await advance_payout(tx, payout_id, "processing", now=now, transfer_id="tr_1")
        await advance_payout(tx, payout_id, "completed", now=now)
    async with ledger_session(db) as tx:
        payout = await tx.lock(Payout, payout_id)
        tx.update(payout, now=now, status="amount_reversed", amount_reversed=2000)
        tx.post(
            f"payout:{payout_id}:reversed_to:2000",
            "payout_reversed_to",
            journal.two_legs(
                debit_account=accounts.PLATFORM_AVAILABLE,
                credit_account=accounts.merchant_payable(merchant_id),
                amount=2000,
                currency="usd",
            ),
            now=now,
            merchant_id=merchant_id,
        )
    return merchant_id, payout_id


@pytest.mark.parametrize(
    "listed",
    [[("trr_b", 1000), ("trr_a", 2000)], [("trr_a", 2000), ("trr_b", 1000)]],
    ids=["newest first", "oldest first"],
)
async def test_only_what_lies_beyond_the_old_total_is_booked(
    db: Database, now: datetime, listed: list[tuple[str, int]]
) -> None:
    merchant_id, payout_id = await payout_reversed_the_old_way(db, now)
    async with ledger_session(db) as tx:
        assert not await record_reversals(tx, payout_id, [("trr_a", 2000)], now=now)
        assert await record_reversals(tx, payout_id, listed, now=now)
        assert not await record_reversals(tx, payout_id, listed[::-1], now=now)
    async with ledger_reader(db) as tx:
        assert await check_balance_invariant(tx) == []
        # 100.00 less the 50.00 payout, plus the 30.00 reversed in all.
        assert await all_balances(tx, merchant_id) == (8000, 8000, 8000)
        reversal_entries = [
            (key, legs) for key, legs in await journal_history(tx) if "revers" in key
        ]
    assert [key for key, _ in reversal_entries] == [
        f"payout:{payout_id}:reversed_to:2000",
        f"payout:{payout_id}:reversal:trr_b",
    ]
