"""The journal: immutable, balanced entries, and the running account totals kept beside it.

An entry is one business fact (a payment completed, a payout released...) identified by an
idempotency key, so posting the same fact twice is a no-op enforced by a unique constraint.
Each leg is a non-negative debit or credit on one account; per currency, debits equal credits.
Mistakes are corrected by posting another entry, never by changing one (the database refuses).
Each merchant's payable account also keeps a running total, updated with its legs.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from reconciler.db.dialect import insert_for
from reconciler.db.tables import account_balances, journal_entries, journal_legs
from reconciler.errors import UnbalancedEntry
from reconciler.ledger import accounts
from reconciler.money import check_currency, check_positive


@dataclass(frozen=True, slots=True)
class Leg:
    account: str
    currency: str
    debit: int = 0
    credit: int = 0


def debit(account: str, amount: int, currency: str) -> Leg:
    return Leg(account, currency, debit=amount)


def credit(account: str, amount: int, currency: str) -> Leg:
    return Leg(account, currency, credit=amount)


def two_legs(*, debit_account: str, credit_account: str, amount: int, currency: str) -> list[Leg]:
    """The common entry: one account debited, one credited, by the same amount."""
    return [debit(debit_account, amount, currency), credit(credit_account, amount, currency)]


def check_balanced(legs: list[Leg]) -> None:
    """Refuse an entry that is not two or more valid legs balancing in each currency."""
    if len(legs) < 2:
        raise UnbalancedEntry("a journal entry needs at least two legs")
    totals: dict[str, int] = defaultdict(int)
    for leg in legs:
        check_currency(leg.currency)
        if (leg.debit == 0) == (leg.credit == 0):
            raise UnbalancedEntry(f"leg on {leg.account} must be exactly one of debit or credit")
        check_positive(leg.debit or leg.credit, f"leg on {leg.account}")
        totals[leg.currency] += leg.debit - leg.credit
    unbalanced = {currency: total for currency, total in totals.items() if total}
    if unbalanced:
        raise UnbalancedEntry(f"debits and credits differ by {unbalanced}")


async def post(
    conn: AsyncConnection,
    key: str,
    kind: str,
    legs: list[Leg],
    *,
    now: datetime,
    merchant_id: int | None = None,
) -> bool:
    """Post an entry once. Returns False, changing nothing, if `key` was posted before."""
    legs = [leg for leg in legs if leg.debit or leg.credit]
    check_balanced(legs)
    inserted = await conn.execute(
        insert_for(conn, journal_entries)
        .values(idempotency_key=key, kind=kind, merchant_id=merchant_id, created_at=now)
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(journal_entries.c.id)
    )
    entry_id = inserted.scalar_one_or_none()
    if entry_id is None:
        return False
    await conn.execute(
        journal_legs.insert(),
        [
            {
                "entry_id": entry_id,
                "account": leg.account,
                "currency": leg.currency,
                "debit": leg.debit,
                "credit": leg.credit,
            }
            for leg in legs
        ],
    )
    await _add_to_running_totals(conn, legs)
    return True


async def _add_to_running_totals(conn: AsyncConnection, legs: list[Leg]) -> None:
    # Only merchants' accounts keep a running total: they are what payout and refund checks
    # read. Platform accounts are few, read rarely, and would be rows every transaction of
    # every merchant waits on (and deadlocks over); their balance is summed from the legs.
    totals: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for leg in legs:
        if not accounts.is_merchant_account(leg.account):
            continue
        pair = totals[(leg.account, leg.currency)]
        pair[0] += leg.debit
        pair[1] += leg.credit
    # A fixed order of row locks, so two entries touching the same accounts cannot deadlock.
    for (account, currency), (debits, credits) in sorted(totals.items()):
        statement = insert_for(conn, account_balances).values(
            account=account, currency=currency, debits=debits, credits=credits
        )
        await conn.execute(
            statement.on_conflict_do_update(
                index_elements=["account", "currency"],
                set_={
                    "debits": account_balances.c.debits + statement.excluded.debits,
                    "credits": account_balances.c.credits + statement.excluded.credits,
                },
            )
        )


async def entry_exists(conn: AsyncConnection, key: str) -> bool:
    query = select(journal_entries.c.id).where(journal_entries.c.idempotency_key == key)
    return (await conn.execute(query)).first() is not None
