"""Migrations on databases that hold money, not just empty ones: SQLite's table rebuilds with
rows pointing at the table, and what a migration leaves merchants able to do."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from reconciler.db.engine import Database
from reconciler.db.schema import code_head, database_revision, downgrade, migrate
from reconciler.ledger.balances import check_balance_invariant
from reconciler.ledger.merchants import can_receive_transfers, get_merchant
from reconciler.ledger.payments import advance_payment, create_payment
from reconciler.ledger.refunds import create_refund
from reconciler.ledger.session import ledger_reader, ledger_session
from reconciler.money import FeeSchedule
from tests.factories import payable_merchant

# A merchant enabled under schema 0004 (before capabilities were kept), and its payment.
MERCHANT_0004 = (
    "INSERT INTO merchants (id, name, stripe_account_id, connect_status, charges_enabled,"
    " payouts_enabled, details_submitted, requirements_due, created_at, updated_at) VALUES"
    " (1, 'm', 'acct_1', 'enabled', :yes, :yes, :yes, '[]', :at, :at)"
)
PAYMENT_0004 = (
    "INSERT INTO payments (id, merchant_id, ledger, amount, currency, platform_fee,"
    " amount_refunded, status, funds_available, created_at, updated_at) VALUES"
    " (1, 1, 'stripe_usd', 1000, 'usd', 0, 0, 'succeeded', :yes, :at, :at)"
)


@pytest.fixture
async def blank(database_url: str, tmp_path: Path) -> Database:
    """An empty database: a new SQLite file, or the PostgreSQL test database emptied."""
    if database_url.startswith("sqlite"):
        return Database(f"sqlite+aiosqlite:///{tmp_path / 'old.db'}")
    db = Database(database_url)
    await downgrade(db, "base")
    return db


async def test_upgrading_a_database_holding_payments(blank: Database, now: datetime) -> None:
    db = blank
    try:
        await migrate(db, "0004")
        async with db.write() as conn:
            values = {"yes": True, "at": now}
            await conn.execute(text(MERCHANT_0004), values)
            await conn.execute(text(PAYMENT_0004), values)
        await migrate(db)
        assert await database_revision(db) == code_head()
        # Enabled before capabilities were kept: it can still be paid.
        async with ledger_reader(db) as tx:
            merchant = await get_merchant(tx, 1)
        assert merchant.capabilities == {"transfers": "active"}
        assert can_receive_transfers(merchant)
    finally:
        await db.dispose()


async def test_downgrading_and_upgrading_again_keeps_the_rows(
    blank: Database, now: datetime
) -> None:
    db = blank
    try:
        await migrate(db)
        async with ledger_session(db) as tx:
            merchant_id = await payable_merchant(tx, now)
            payment_id = await create_payment(
                tx,
                merchant_id=merchant_id,
                amount=1000,
                currency="usd",
                fees=FeeSchedule(),
                now=now,
            )
            await advance_payment(tx, payment_id, "succeeded", now=now)
            await create_refund(tx, payment_id=payment_id, amount=100, now=now)
        await downgrade(db, "0004")
        await migrate(db)
        async with ledger_reader(db) as tx:
            assert await check_balance_invariant(tx) == []
            refunded = (await tx.execute(text("SELECT amount FROM refunds"))).scalar_one()
        assert refunded == 100
    finally:
        await db.dispose()
