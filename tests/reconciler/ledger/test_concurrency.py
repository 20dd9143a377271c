"""Two requests racing for the last dollar: exactly one wins, on both databases."""

from __future__ import annotations

import asyncio
from datetime import datetime

from reconciler.db.engine import Database
from reconciler.errors import InsufficientBalance
from reconciler.ledger.balances import check_balance_invariant
from reconciler.ledger.payouts import reserve_payout
from reconciler.ledger.session import ledger_reader, ledger_session
from tests.factories import all_balances, funded_merchant


async def test_fifty_racing_reservations_of_ten_dollars_from_a_hundred(
    db: Database, now: datetime
) -> None:
    merchant_id = await funded_merchant(db, now, amount=10000)

    async def reserve() -> bool:
        try:
            async with ledger_session(db) as conn:
                await reserve_payout(
                    conn, merchant_id=merchant_id, amount=1000, currency="usd", now=now
                )
        except InsufficientBalance:
            return False
        return True

    outcomes = await asyncio.gather(*(reserve() for _ in range(50)))

    assert outcomes.count(True) == 10
    assert outcomes.count(False) == 40
    async with ledger_reader(db) as conn:
        assert await all_balances(conn, merchant_id) == (0, 0, 0)
        assert await check_balance_invariant(conn) == []
