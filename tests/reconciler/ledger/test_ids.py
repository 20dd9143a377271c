"""Ids for new ledger rows: taken before the INSERT, never the same twice."""

from __future__ import annotations

import asyncio
from datetime import datetime

from sqlalchemy import func, select

from reconciler.db.engine import Database
from reconciler.db.tables import payments
from reconciler.ledger.ids import MAX_BLOCK, IdAllocator
from reconciler.ledger.payments import create_payment
from reconciler.ledger.session import ledger_reader, ledger_session
from reconciler.money import FeeSchedule
from tests.factories import payable_merchant


async def test_new_rows_take_ids_no_other_transaction_takes(db: Database, now: datetime) -> None:
    async with ledger_session(db) as tx:
        merchant_id = await payable_merchant(tx, now)

    async def payment_ids(tag: str) -> list[int]:
        async with ledger_session(db) as tx:
            return [
                await create_payment(
                    tx,
                    merchant_id=merchant_id,
                    amount=100,
                    currency="usd",
                    fees=FeeSchedule(),
                    now=now,
                    payment_intent_id=f"pi_{tag}_{n}",
                )
                for n in range(5)
            ]

    first, second = await asyncio.gather(payment_ids("a"), payment_ids("b"))
    assert len(set(first) | set(second)) == 10
    async with ledger_reader(db) as tx:
        assert await tx.scalar(select(func.count()).select_from(payments)) == 10


async def test_ids_come_in_growing_blocks_up_to_a_cap(db: Database) -> None:
    async with db.write() as conn:
        ids = IdAllocator(conn)
        ids.expect(10**6)  # more than a block may hold
        taken = [await ids.next_id(payments) for _ in range(MAX_BLOCK + 3)]
    assert len(set(taken)) == len(taken)
    assert taken == sorted(taken)
