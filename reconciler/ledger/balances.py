"""A merchant's internal Stripe balance, three ways, and the invariant that they agree.

1. `merchant_balance`: the running total kept beside the journal; one row, whatever the
   history. This is the number that decides whether a payout or refund is allowed.
2. `balances_by_formula`: DESIGN.md's definition, from the payment, refund and payout rows:
   completed inflows (merchant share) minus refunds and payouts not failed/cancelled, with
   transfer reversals given back.
3. `balances_from_journal`: the sum of the legs on each merchant's payable account.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import func, select

from reconciler.db.tables import account_balances, journal_legs, payments, payouts, refunds
from reconciler.ledger import accounts
from reconciler.ledger.transitions import PAYMENT_CAPTURED, PAYOUT_RELEASED, REFUND_RELEASED
from reconciler.types import Queryable

BalanceKey = tuple[int, str]  # (merchant id, currency)


async def account_balance(conn: Queryable, account: str, currency: str) -> int:
    """An account's balance on its normal side (credits less debits for a liability).

    A merchant's account reads its running total; a platform account sums its legs.
    """
    table = account_balances if accounts.is_merchant_account(account) else None
    if table is not None:
        query = select(table.c.debits, table.c.credits).where(
            table.c.account == account, table.c.currency == currency
        )
    else:
        query = select(
            func.coalesce(func.sum(journal_legs.c.debit), 0).label("debits"),
            func.coalesce(func.sum(journal_legs.c.credit), 0).label("credits"),
        ).where(journal_legs.c.account == account, journal_legs.c.currency == currency)
    row = (await conn.execute(query)).first()
    if row is None:
        return 0
    difference = int(row.credits) - int(row.debits)
    return difference if accounts.is_credit_normal(account) else -difference


async def merchant_balance(conn: Queryable, merchant_id: int, currency: str) -> int:
    """What ICPay owes the merchant now: the number every payout and refund check uses."""
    return await account_balance(conn, accounts.merchant_payable(merchant_id), currency)


async def balances_by_formula(
    conn: Queryable, merchant_id: int | None = None
) -> dict[BalanceKey, int]:
    totals: dict[BalanceKey, int] = defaultdict(int)
    queries = [
        (
            payments,
            func.sum(payments.c.amount - payments.c.platform_fee),
            payments.c.status.in_(PAYMENT_CAPTURED),
            1,
        ),
        (refunds, func.sum(refunds.c.amount), refunds.c.status.not_in(REFUND_RELEASED), -1),
        (
            payouts,
            func.sum(payouts.c.amount - payouts.c.amount_reversed),
            payouts.c.status.not_in(PAYOUT_RELEASED),
            -1,
        ),
    ]
    for table, total, counts, sign in queries:
        query = (
            select(table.c.merchant_id, table.c.currency, total)
            .where(counts)
            .group_by(table.c.merchant_id, table.c.currency)
        )
        if merchant_id is not None:
            query = query.where(table.c.merchant_id == merchant_id)
        for merchant, currency, amount in await conn.execute(query):
            totals[(int(merchant), currency)] += sign * int(amount)
    return dict(totals)


def _merchant_of(account: str) -> int:
    return int(account.split(":")[1])


async def balances_from_journal(
    conn: Queryable, merchant_id: int | None = None
) -> dict[BalanceKey, int]:
    pattern = accounts.merchant_payable(merchant_id) if merchant_id else "merchant:%:payable"
    query = (
        select(
            journal_legs.c.account,
            journal_legs.c.currency,
            func.sum(journal_legs.c.credit - journal_legs.c.debit),
        )
        .where(journal_legs.c.account.like(pattern))
        .group_by(journal_legs.c.account, journal_legs.c.currency)
    )
    return {
        (_merchant_of(account), currency): int(total)
        for account, currency, total in await conn.execute(query)
    }


async def running_balances(
    conn: Queryable, merchant_id: int | None = None
) -> dict[BalanceKey, int]:
    pattern = accounts.merchant_payable(merchant_id) if merchant_id else "merchant:%:payable"
    query = select(
        account_balances.c.account,
        account_balances.c.currency,
        account_balances.c.credits - account_balances.c.debits,
    ).where(account_balances.c.account.like(pattern))
    return {
        (_merchant_of(account), currency): int(total)
        for account, currency, total in await conn.execute(query)
    }


@dataclass(frozen=True)
class BalanceMismatch:
    merchant_id: int
    currency: str
    by_formula: int
    from_journal: int
    running: int


async def check_balance_invariant(
    conn: Queryable, merchant_id: int | None = None
) -> list[BalanceMismatch]:
    """Every merchant whose three balance computations disagree (empty when all is well)."""
    formula = await balances_by_formula(conn, merchant_id)
    from_journal = await balances_from_journal(conn, merchant_id)
    running = await running_balances(conn, merchant_id)
    mismatches = []
    for key in sorted(formula.keys() | from_journal.keys() | running.keys()):
        values = (formula.get(key, 0), from_journal.get(key, 0), running.get(key, 0))
        if len(set(values)) > 1:
            mismatches.append(BalanceMismatch(key[0], key[1], *values))
    return mismatches
