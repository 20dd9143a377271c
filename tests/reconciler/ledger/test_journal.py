from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import delete, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from reconciler.db.dialect import is_postgres
from reconciler.db.engine import Database
from reconciler.db.tables import journal_entries, journal_legs
from reconciler.errors import InvalidAmount, UnbalancedEntry, UnknownCurrency
from reconciler.ledger import journal
from reconciler.ledger.balances import account_balance
from reconciler.ledger.merchants import create_merchant
from reconciler.ledger.session import ledger_reader, ledger_session
from tests.factories import journal_history

CASH = "platform:stripe_available"
REVENUE = "platform:fee_revenue"


@pytest.mark.parametrize(
    ("legs", "error"),
    [
        ([journal.debit(CASH, 100, "usd")], UnbalancedEntry),
        ([journal.debit(CASH, 100, "usd"), journal.credit(REVENUE, 99, "usd")], UnbalancedEntry),
        ([journal.debit(CASH, 100, "usd"), journal.credit(REVENUE, 100, "eur")], UnknownCurrency),
        ([journal.debit(CASH, -5, "usd"), journal.credit(REVENUE, -5, "usd")], InvalidAmount),
        ([journal.Leg(CASH, "usd", 5, 5), journal.Leg(REVENUE, "usd", 5, 5)], UnbalancedEntry),
    ],
)
def test_unbalanced_or_invalid_entries_are_refused(legs: list[journal.Leg], error: type) -> None:
    with pytest.raises(error):
        journal.check_balanced(legs)


async def test_posting_the_same_fact_twice_books_it_once(db: Database, now: datetime) -> None:
    legs = journal.two_legs(debit_account=CASH, credit_account=REVENUE, amount=250, currency="usd")
    async with ledger_session(db) as tx:
        tx.post("fee:1", "fee", legs, now=now)
        tx.post("fee:1", "fee", legs, now=now)
        assert await journal_history(tx) == [("fee:1", [(REVENUE, 0, 250), (CASH, 250, 0)])]
        assert await account_balance(tx, CASH, "usd") == 250
        assert await account_balance(tx, REVENUE, "usd") == 250


async def test_a_fact_posted_in_an_earlier_transaction_is_not_booked_again(
    db: Database, now: datetime
) -> None:
    merchant = "merchant:1:payable"
    legs = journal.two_legs(debit_account=CASH, credit_account=merchant, amount=250, currency="usd")
    for _ in range(2):  # the second session holds nothing of the first: the unique key decides
        async with ledger_session(db) as tx:
            await create_merchant(tx, name="Acme", now=now)
            tx.post("payment:1:succeeded", "payment_succeeded", legs, now=now, merchant_id=1)
    async with ledger_reader(db) as tx:
        assert await journal_history(tx) == [
            ("payment:1:succeeded", [(merchant, 0, 250), (CASH, 250, 0)])
        ]
        assert await account_balance(tx, merchant, "usd") == 250  # the running total, once


async def test_the_database_refuses_to_change_or_delete_the_journal(
    db: Database, now: datetime
) -> None:
    legs = journal.two_legs(debit_account=CASH, credit_account=REVENUE, amount=250, currency="usd")
    async with ledger_session(db) as conn:
        conn.post("fee:1", "fee", legs, now=now)
    for statement in (
        update(journal_legs).values(debit=1),
        delete(journal_legs),
        update(journal_entries).values(kind="edited"),
        delete(journal_entries),
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            async with ledger_session(db) as conn:
                await conn.execute(statement)
    async with ledger_reader(db) as conn:
        assert await journal_history(conn) == [("fee:1", [(REVENUE, 0, 250), (CASH, 250, 0)])]


async def test_a_leg_with_both_sides_is_refused_by_the_database(
    db: Database, now: datetime
) -> None:
    with pytest.raises(IntegrityError):
        async with ledger_session(db) as conn:
            entry = await conn.execute(
                journal_entries.insert()
                .values(idempotency_key="raw", kind="raw", created_at=now)
                .returning(journal_entries.c.id)
            )
            await conn.execute(
                journal_legs.insert().values(
                    entry_id=entry.scalar_one(), account=CASH, currency="usd", debit=5, credit=5
                )
            )


def _legs(entry_id: int, *amounts: tuple[int, int]) -> list[dict[str, object]]:
    return [
        {"entry_id": entry_id, "account": CASH, "currency": "usd", "debit": debit, "credit": credit}
        for debit, credit in amounts
    ]


async def _raw_entry(conn: AsyncConnection, key: str, now: datetime) -> int:
    entry = await conn.execute(
        journal_entries.insert()
        .values(idempotency_key=key, kind="raw", created_at=now)
        .returning(journal_entries.c.id)
    )
    return int(entry.scalar_one())


@pytest.mark.postgres
async def test_postgres_refuses_an_unbalanced_entry(db: Database, now: datetime) -> None:
    if not is_postgres(db):
        pytest.skip("SQLite has no statement triggers over new rows; the code's check guards it")
    with pytest.raises(DBAPIError, match="does not balance"):
        async with db.write() as conn:
            entry_id = await _raw_entry(conn, "raw", now)
            # One statement, as LedgerSession.flush writes an entry's legs.
            await conn.execute(journal_legs.insert().values(_legs(entry_id, (5, 0), (0, 4))))
    with pytest.raises(DBAPIError, match="fewer than two legs"):
        async with db.write() as conn:
            entry_id = await _raw_entry(conn, "lonely", now)
            await conn.execute(journal_legs.insert().values(_legs(entry_id, (5, 0))))
    async with db.read() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM journal_entries"))).scalar() == 0


@pytest.mark.postgres
async def test_postgres_refuses_a_leg_that_unbalances_an_old_entry(
    db: Database, now: datetime
) -> None:
    if not is_postgres(db):
        pytest.skip("SQLite has no statement triggers over new rows; the code's check guards it")
    async with db.write() as conn:
        entry_id = await _raw_entry(conn, "raw", now)
        await conn.execute(journal_legs.insert().values(_legs(entry_id, (5, 0), (0, 5))))
    with pytest.raises(DBAPIError, match="does not balance"):
        async with db.write() as conn:
            await conn.execute(journal_legs.insert().values(_legs(entry_id, (1, 0))))
    async with db.read() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM journal_legs"))).scalar() == 2
