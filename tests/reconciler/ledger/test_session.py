"""The ledger's unit of work: rows read once, changes written together, decisions on current
data, and nothing written if the transaction fails."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import event, func, select, update
from sqlalchemy.exc import DBAPIError

from reconciler.db.dialect import is_postgres
from reconciler.db.engine import Database
from reconciler.db.tables import journal_entries, payments
from reconciler.ledger.payments import advance_payment, create_payment, release_funds
from reconciler.ledger.rows import Payment
from reconciler.ledger.session import (
    LedgerSession,
    UnlockedChange,
    ledger_reader,
    ledger_session,
)
from reconciler.money import FeeSchedule
from tests.factories import all_balances, payable_merchant


@contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    """Every statement SQLAlchemy sends while the block runs."""
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(args[2])

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)


async def pending_payment(tx: LedgerSession, now: datetime) -> int:
    """A merchant's payment of 5.00, pending."""
    merchant_id = await payable_merchant(tx, now)
    return await create_payment(
        tx, merchant_id=merchant_id, amount=500, currency="usd", fees=FeeSchedule(), now=now
    )


async def book_payments(db: Database, merchant_id: int, now: datetime, count: int) -> None:
    async with ledger_session(db) as tx:
        tx.expect_inserts(count)
        for n in range(count):
            payment_id = await create_payment(
                tx,
                merchant_id=merchant_id,
                amount=1000,
                currency="usd",
                fees=FeeSchedule(),
                now=now,
                payment_intent_id=f"pi_{count}_{n}",
            )
            await advance_payment(tx, payment_id, "succeeded", now=now, stripe_fee=59)
            await release_funds(tx, payment_id, now=now)


async def test_many_changes_cost_the_statements_of_one(db: Database, now: datetime) -> None:
    async with ledger_session(db) as tx:
        merchant_id = await payable_merchant(tx, now)
    with statements(db) as few:
        await book_payments(db, merchant_id, now, 3)
    with statements(db) as many:
        await book_payments(db, merchant_id, now, 60)
    assert len(many) == len(few)  # three payments, three entries each: no more statements
    async with ledger_reader(db) as tx:
        assert await tx.scalar(select(func.count()).select_from(journal_entries)) == 63 * 3
        share = 63 * 1000
        assert await all_balances(tx, merchant_id) == (share, share, share)


async def test_a_query_sees_what_the_session_holds(db: Database, now: datetime) -> None:
    async with ledger_session(db) as tx:
        await pending_payment(tx, now)
        assert await tx.scalar(select(func.count()).select_from(payments)) == 1


async def test_nothing_is_written_when_the_block_fails(db: Database, now: datetime) -> None:
    with pytest.raises(RuntimeError):
        async with ledger_session(db) as tx:
            await pending_payment(tx, now)
            raise RuntimeError("after the changes, before the commit")
    async with ledger_reader(db) as tx:
        assert await tx.scalar(select(func.count()).select_from(payments)) == 0


async def test_rows_are_found_by_what_they_became(db: Database, now: datetime) -> None:
    async with ledger_session(db) as tx:
        merchant_id = await payable_merchant(tx, now)
        payment_id = await create_payment(
            tx,
            merchant_id=merchant_id,
            amount=500,
            currency="usd",
            fees=FeeSchedule(),
            now=now,
            payment_intent_id="pi_1",
        )
        payment = await tx.get(Payment, payment_id)
        tx.update(payment, now=now, charge_id="ch_1")
        tx.update(payment, now=now, charge_id="ch_2")
        with statements(db) as seen:
            assert await tx.find(Payment, "payment_intent_id", "pi_1") is payment
            assert await tx.find(Payment, "charge_id", "ch_2") is payment
        assert seen == []  # held: no statement needed
        assert await tx.find(Payment, "charge_id", "ch_1") is None
    async with ledger_reader(db) as tx:
        stored = await tx.find(Payment, "charge_id", "ch_2")
        assert stored is not None and stored.payment_intent_id == "pi_1"


@pytest.mark.postgres
async def test_a_row_read_before_its_merchant_was_locked_is_read_again(
    db: Database, now: datetime
) -> None:
    if not is_postgres(db):
        pytest.skip("SQLite: the transaction holds the write lock from its first statement")
    async with ledger_session(db) as tx:
        payment_id = await pending_payment(tx, now)
    async with ledger_session(db) as tx:
        seen = await tx.get(Payment, payment_id)  # read, not locked
        assert seen.status == "pending"
        # Meanwhile another instance books the payment (it commits).
        async with db.write() as other:
            await other.execute(
                update(payments).where(payments.c.id == payment_id).values(status="canceled")
            )
        locked = await tx.lock(Payment, payment_id)
        assert locked is seen and locked.status == "canceled"


@pytest.mark.postgres
async def test_a_held_row_cannot_change_before_its_merchant_is_locked(
    db: Database, now: datetime
) -> None:
    if not is_postgres(db):
        pytest.skip("SQLite: the transaction holds the write lock from its first statement")
    async with ledger_session(db) as tx:
        payment_id = await pending_payment(tx, now)
    with pytest.raises(UnlockedChange):
        async with ledger_session(db) as tx:
            seen = await tx.get(Payment, payment_id)
            tx.update(seen, now=now, charge_id="ch_1")  # decided on a read nobody locked
    async with ledger_session(db) as tx:
        locked = await tx.lock(Payment, payment_id)
        tx.update(locked, now=now, charge_id="ch_1")
    async with ledger_reader(db) as tx:
        assert (await tx.get(Payment, payment_id)).charge_id == "ch_1"


async def test_only_the_columns_changed_are_written_back(db: Database, now: datetime) -> None:
    async with ledger_session(db) as tx:
        payment_id = await pending_payment(tx, now)
    async with ledger_session(db) as tx:
        mine = await tx.lock(Payment, payment_id)
        tx.update(mine, now=now, charge_id="ch_1")
        # A column this transaction did not change, changed underneath it (a raw statement
        # in the same transaction, standing in for anything outside the session):
        await tx.execute(
            update(payments).where(payments.c.id == payment_id).values(amount_refunded=7)
        )
        tx.update(mine, now=now, charge_id="ch_2")
    async with ledger_reader(db) as tx:
        stored = await tx.get(Payment, payment_id)
        assert (stored.charge_id, stored.amount_refunded) == ("ch_2", 7)


@pytest.mark.postgres
async def test_a_row_found_missing_before_a_lock_is_looked_for_again(
    db: Database, now: datetime
) -> None:
    if not is_postgres(db):
        pytest.skip("SQLite: the transaction holds the write lock from its first statement")
    async with ledger_session(db) as tx:
        merchant_id = await payable_merchant(tx, now)
    async with ledger_session(db) as tx:
        assert await tx.find(Payment, "payment_intent_id", "pi_late") is None
        async with ledger_session(db) as other:  # another instance records it meanwhile
            await create_payment(
                other,
                merchant_id=merchant_id,
                amount=500,
                currency="usd",
                fees=FeeSchedule(),
                now=now,
                payment_intent_id="pi_late",
            )
        await tx.lock_merchant(merchant_id)
        found = await tx.find(Payment, "payment_intent_id", "pi_late")
        assert found is not None and found.amount == 500


async def test_locks_taken_out_of_order_do_not_wait_into_a_deadlock(
    db: Database, now: datetime
) -> None:
    """A batch locks the merchants it foresaw, then those of rows found since (`nowait`):
    two batches that each find the other's merchant would deadlock if the second round
    waited. It fails at once instead (the batch's events are then applied one by one)."""
    if not is_postgres(db.dialect):
        pytest.skip("SQLite's transaction holds the one write lock: there are no row locks")
    async with ledger_session(db) as tx:
        first = await payable_merchant(tx, now, "One")
        second = await payable_merchant(tx, now, "Two")
    both_hold_one = asyncio.Barrier(2)

    async def batch(foreseen: int, found: int) -> None:
        async with db.write() as conn:
            tx = LedgerSession(conn)
            await tx.lock_merchants({foreseen})
            await both_hold_one.wait()
            await tx.lock_merchants({foreseen, found}, nowait=True)

    outcomes = await asyncio.wait_for(
        asyncio.gather(batch(first, second), batch(second, first), return_exceptions=True),
        timeout=5,
    )
    refused = [outcome for outcome in outcomes if isinstance(outcome, DBAPIError)]
    assert refused and all("lock" in str(outcome).lower() for outcome in refused), outcomes
    assert not any("deadlock" in str(outcome) for outcome in outcomes)
    assert all(outcome is None or outcome in refused for outcome in outcomes), outcomes
