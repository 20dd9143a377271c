"""Shared builders for ledger tests: merchants, paid payments, and readable journal histories."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from reconciler.db.engine import Database
from reconciler.db.tables import journal_entries, journal_legs
from reconciler.ledger import balances
from reconciler.ledger.merchants import ConnectState, create_merchant, set_connect_state
from reconciler.ledger.payments import advance_payment, create_payment, release_funds
from reconciler.ledger.rows import Requirements
from reconciler.ledger.session import ledger_session
from reconciler.money import FeeSchedule

NO_FEES = FeeSchedule()
# An Express account Stripe has everything for.
ONBOARDED = ConnectState(
    charges_enabled=True,
    payouts_enabled=True,
    details_submitted=True,
    capabilities={"card_payments": "active", "transfers": "active"},
    requirements=Requirements(currently_due=[], eventually_due=[], past_due=[]),
)
TEN_PERCENT = FeeSchedule(percent=Decimal(10))


async def payable_merchant(conn: AsyncConnection, now: datetime, name: str = "Acme") -> int:
    """A merchant whose Express account is onboarded: transfers active, payouts enabled."""
    merchant_id = await create_merchant(
        conn, name=name, now=now, stripe_account_id=f"acct_{name.lower()}"
    )
    await set_connect_state(conn, merchant_id, ONBOARDED, now=now)
    return merchant_id


async def settled_payment(
    conn: AsyncConnection,
    merchant_id: int,
    amount: int,
    now: datetime,
    *,
    fees: FeeSchedule = NO_FEES,
    stripe_fee: int = 0,
    intent: str | None = None,
) -> int:
    """A payment that succeeded and whose funds are available at Stripe."""
    payment_id = await create_payment(
        conn,
        merchant_id=merchant_id,
        amount=amount,
        currency="usd",
        fees=fees,
        now=now,
        payment_intent_id=intent,
    )
    await advance_payment(conn, payment_id, "succeeded", now=now, stripe_fee=stripe_fee)
    await release_funds(conn, payment_id, now=now)
    return payment_id


async def funded_merchant(db: Database, now: datetime, amount: int) -> int:
    async with ledger_session(db) as conn:
        merchant_id = await payable_merchant(conn, now)
        await settled_payment(conn, merchant_id, amount, now)
    return merchant_id


Legs = list[tuple[str, int, int]]


async def journal_history(conn: AsyncConnection) -> list[tuple[str, Legs]]:
    """Every entry in order as (key, [(account, debit, credit), ...]) with legs sorted."""
    rows = await conn.execute(
        select(
            journal_entries.c.idempotency_key,
            journal_legs.c.account,
            journal_legs.c.debit,
            journal_legs.c.credit,
        )
        .join(journal_legs, journal_legs.c.entry_id == journal_entries.c.id)
        .order_by(journal_entries.c.id, journal_legs.c.account)
    )
    history: list[tuple[str, Legs]] = []
    for key, account, debit, credit in rows:
        if not history or history[-1][0] != key:
            history.append((key, []))
        history[-1][1].append((account, int(debit), int(credit)))
    return history


async def all_balances(conn: AsyncConnection, merchant_id: int) -> tuple[int, int, int]:
    """The merchant's balance by the formula, from the journal, and the running total."""
    key = (merchant_id, "usd")
    return (
        (await balances.balances_by_formula(conn, merchant_id)).get(key, 0),
        (await balances.balances_from_journal(conn, merchant_id)).get(key, 0),
        await balances.merchant_balance(conn, merchant_id, "usd"),
    )
