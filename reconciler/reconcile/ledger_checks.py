"""What the ledger alone can show, and what Stripe never showed: rows whose Stripe object no
page of the run listed, payouts and refunds left waiting, the journal's invariants, merchants
below zero, and merchants owed more than the platform holds.

Each reads a bounded page at a time (rows after an id), so a run's memory does not grow with
the ledger; the ids a run has seen at Stripe are in `reconcile_seen`, not in memory.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Table, delete, exists, func, select

from reconciler.db.dialect import insert_for
from reconciler.db.tables import journal_legs, payments, payouts, reconcile_seen, refunds
from reconciler.ledger import accounts
from reconciler.ledger.balances import (
    account_balance,
    check_balance_invariant,
    running_balances,
)
from reconciler.reconcile.compare import Difference
from reconciler.reconcile.scope import Scope
from reconciler.types import Queryable, StripeObject

PAGE = 500
STUCK_PAYOUT_STATUSES = ("pending", "processing")
STUCK_REFUND_STATUSES = ("pending", "requires_action")


async def remember_seen(conn: Any, run_id: int, ids: list[str]) -> None:
    """Note the Stripe ids a page showed (a page read again after a resume: no harm). One
    insert that skips what is there: looking the ids up first walked the run's whole range
    of the key on PostgreSQL at every page."""
    if not ids:
        return
    rows = [{"run_id": run_id, "object_id": i} for i in dict.fromkeys(ids)]
    # The rows as parameters, not a VALUES list: the statement is compiled once and cached
    # (a multi-row VALUES is compiled anew for every page).
    await conn.execute(insert_for(conn, reconcile_seen).on_conflict_do_nothing(), rows)


async def forget_seen(conn: Any, run_id: int) -> None:
    await conn.execute(delete(reconcile_seen).where(reconcile_seen.c.run_id == run_id))


# (table, its Stripe id column, object type, what it is called)
MISSING_CHECKS: tuple[tuple[Table, str, str, str], ...] = (
    (payments, "payment_intent_id", "payment_intent", "payment"),
    (refunds, "stripe_refund_id", "refund", "refund"),
    (payouts, "stripe_transfer_id", "transfer", "payout"),
)


async def missing_at_stripe(
    conn: Queryable,
    run_id: int,
    scope: Scope,
    *,
    table: Table,
    column: str,
    object_type: str,
    noun: str,
    made_before: datetime,
    after_id: int,
) -> tuple[list[Difference], int | None]:
    """Rows (after `after_id`) holding a Stripe id no page of this run showed; and the last
    id read (None: no more). Only rows made before `made_before`: a row made while the run
    listed may have a Stripe object made after its first page."""
    stripe_column = table.c[column]
    seen = exists().where(
        reconcile_seen.c.run_id == run_id, reconcile_seen.c.object_id == stripe_column
    )
    statement = (
        select(table.c.id, table.c.merchant_id, stripe_column, table.c.status, table.c.amount)
        .where(
            table.c.id > after_id,
            stripe_column.is_not(None),
            table.c.created_at < made_before,
            ~seen,
        )
        .order_by(table.c.id)
        .limit(PAGE)
    )
    statement = _in_scope(statement, table, scope)
    rows = list(await conn.execute(statement))
    found = [
        Difference(
            "missing_at_stripe",
            object_type,
            row[2],
            f"{noun} {row.id} ({row.status}, {row.amount}) names {row[2]}, which Stripe did not "
            "list: look it up in the Dashboard",
            merchant_id=int(row.merchant_id),
            ledger_value={noun: int(row.id), "status": row.status, "amount": int(row.amount)},
        )
        for row in rows
    ]
    return found, (int(rows[-1].id) if len(rows) == PAGE else None)


def _in_scope(statement: Any, table: Table, scope: Scope) -> Any:
    if scope.account_id is not None:
        statement = statement.where(table.c.merchant_id == scope.account_id)
    if scope.since is not None:
        statement = statement.where(table.c.created_at >= scope.since)
    if scope.until is not None:
        statement = statement.where(table.c.created_at < scope.until)
    return statement


async def stuck(conn: Queryable, scope: Scope, *, made_before: datetime) -> list[Difference]:
    """Payouts and refunds still waiting for Stripe long after they were made (the stale
    sweep reads them again every few minutes; one a run still finds stuck needs a look)."""
    found = []
    for table, statuses, kind, noun in (
        (payouts, STUCK_PAYOUT_STATUSES, "payout_stuck_pending", "payout"),
        (refunds, STUCK_REFUND_STATUSES, "refund_stuck_pending", "refund"),
    ):
        statement = _in_scope(
            select(table).where(table.c.status.in_(statuses), table.c.created_at < made_before),
            table,
            scope,
        ).limit(PAGE)
        for row in await conn.execute(statement):
            found.append(
                Difference(
                    kind,
                    noun,
                    str(row.id),
                    f"{noun} {row.id} of {row.amount} {row.currency} is still {row.status}, "
                    f"made {row.created_at.isoformat()}",
                    merchant_id=int(row.merchant_id),
                    ledger_value={"status": row.status, "amount": int(row.amount)},
                )
            )
    return found


async def journal_checks(conn: Queryable, scope: Scope) -> list[Difference]:
    """Merchants whose three balances disagree, entries that do not balance, and merchants
    below zero (they owe ICPay: a refund after their money was paid out)."""
    found = [
        Difference(
            "journal_invariant_broken",
            "merchant",
            str(broken.merchant_id),
            f"merchant {broken.merchant_id}'s balance is {broken.by_formula} by its payments, "
            f"refunds and payouts, {broken.from_journal} by the journal and {broken.running} "
            "by its running total: something wrote the ledger behind the service's back",
            merchant_id=broken.merchant_id,
            ledger_value={
                "by_formula": broken.by_formula,
                "from_journal": broken.from_journal,
                "running": broken.running,
                "currency": broken.currency,
            },
        )
        for broken in await check_balance_invariant(conn, scope.account_id)
    ]
    if scope.account_id is None:
        unbalanced = await conn.execute(
            select(
                journal_legs.c.entry_id,
                journal_legs.c.currency,
                func.sum(journal_legs.c.debit),
                func.sum(journal_legs.c.credit),
            )
            .group_by(journal_legs.c.entry_id, journal_legs.c.currency)
            .having(func.sum(journal_legs.c.debit) != func.sum(journal_legs.c.credit))
            .limit(PAGE)
        )
        for entry_id, currency, debits, credits in unbalanced:
            found.append(
                Difference(
                    "journal_invariant_broken",
                    "journal_entry",
                    str(entry_id),
                    f"journal entry {entry_id} debits {debits} and credits {credits} {currency}",
                    ledger_value={"debits": int(debits), "credits": int(credits)},
                )
            )
    for (merchant_id, currency), balance in sorted(
        (await running_balances(conn, scope.account_id)).items()
    ):
        if balance < 0:
            found.append(
                Difference(
                    "negative_merchant_balance",
                    "merchant",
                    str(merchant_id),
                    f"merchant {merchant_id} owes ICPay {-balance} {currency}",
                    merchant_id=merchant_id,
                    ledger_value={"balance": balance, "currency": currency},
                )
            )
    return found


async def platform_check(conn: Queryable, balance: StripeObject) -> list[Difference]:
    """What ICPay owes its merchants (their balances, and payouts accepted and not yet
    transferred) beside what the platform holds at Stripe (available and pending): fees and
    refunds can leave it holding less, which a person must cover."""
    held: dict[str, int] = {}
    for part in ("available", "pending"):
        for amount in balance.get(part) or []:
            currency = str(amount["currency"]).lower()
            held[currency] = held.get(currency, 0) + int(amount["amount"])
    owed: dict[str, int] = {}
    for (_merchant, currency), total in (await running_balances(conn)).items():
        owed[currency] = owed.get(currency, 0) + max(0, total)
    for currency in list(owed):
        owed[currency] += await account_balance(conn, accounts.PAYOUTS_IN_FLIGHT, currency)
    return [
        Difference(
            "merchant_balances_exceed_platform",
            "platform",
            currency,
            f"merchants are owed {total} {currency} (with payouts on their way), the platform "
            f"holds {held.get(currency, 0)} at Stripe (available and pending)",
            ledger_value={"owed": total},
            stripe_value={"held": held.get(currency, 0)},
        )
        for currency, total in sorted(owed.items())
        if total > held.get(currency, 0)
    ]
