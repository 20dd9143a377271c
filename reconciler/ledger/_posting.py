"""Posting journal entries in bulk: the entries, their legs, and the merchants' running totals.

`LedgerSession.flush` hands over every entry its transaction posted. The unique idempotency key
decides which are new (ON CONFLICT DO NOTHING); only those get their legs, in one statement
(so PostgreSQL's per-statement balance check sees each entry whole), and their totals.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from reconciler.db.bulk import insert_new, insert_rows
from reconciler.db.dialect import insert_for, is_postgres
from reconciler.db.tables import account_balances, journal_entries, journal_legs
from reconciler.ledger import accounts
from reconciler.ledger.journal import Leg


@dataclass(frozen=True, slots=True)
class Entry:
    """An entry posted in a session, not yet written."""

    key: str
    kind: str
    legs: list[Leg]
    merchant_id: int | None
    created_at: datetime


async def write_entries(conn: AsyncConnection, entries: list[Entry]) -> None:
    """Post the entries not posted before, with their legs and the merchants' running totals."""
    # A fact posted by an earlier transaction is not posted again: the unique key decides
    # (ON CONFLICT DO NOTHING), and only entries it let in get their legs and totals.
    posted = await insert_new(
        conn,
        journal_entries,
        [
            {
                "idempotency_key": entry.key,
                "kind": entry.kind,
                "merchant_id": entry.merchant_id,
                "created_at": entry.created_at,
            }
            for entry in entries
        ],
        unique="idempotency_key",
    )
    booked = [(posted[entry.key], entry) for entry in entries if entry.key in posted]
    if not booked:
        return
    await insert_rows(
        conn,
        journal_legs,
        [
            {
                "entry_id": entry_id,
                "account": leg.account,
                "currency": leg.currency,
                "debit": leg.debit,
                "credit": leg.credit,
            }
            for entry_id, entry in booked
            for leg in entry.legs
        ],
    )
    await _add_to_running_totals(conn, [leg for _, entry in booked for leg in entry.legs])


async def _add_to_running_totals(conn: AsyncConnection, legs: list[Leg]) -> None:
    # Only merchants' accounts keep a running total: they are what payout and refund checks
    # read. Platform accounts are few, read rarely, and would be rows every transaction of
    # every merchant waits on (and deadlocks over); their balance is summed from the legs.
    totals: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for leg in legs:
        if accounts.is_merchant_account(leg.account):
            pair = totals[(leg.account, leg.currency)]
            pair[0] += leg.debit
            pair[1] += leg.credit
    if not totals:
        return
    # In a fixed order, so two transactions touching the same accounts cannot deadlock.
    ordered = sorted(totals.items())
    if is_postgres(conn):
        # One statement over arrays, taken in their order: a batch's hundreds of merchants
        # are not an execution each.
        await conn.execute(
            _POSTGRES_TOTALS,
            {
                "accounts": [account for (account, _), _ in ordered],
                "currencies": [currency for (_, currency), _ in ordered],
                "debits": [debits for _, (debits, _) in ordered],
                "credits": [credits for _, (_, credits) in ordered],
            },
        )
        return
    statement = insert_for(conn, account_balances)
    statement = statement.on_conflict_do_update(
        index_elements=["account", "currency"],
        set_={
            "debits": account_balances.c.debits + statement.excluded.debits,
            "credits": account_balances.c.credits + statement.excluded.credits,
        },
    )
    await conn.execute(
        statement,
        [
            {"account": account, "currency": currency, "debits": debits, "credits": credits}
            for (account, currency), (debits, credits) in ordered
        ],
    )


_POSTGRES_TOTALS = text(
    """\
INSERT INTO account_balances (account, currency, debits, credits)
SELECT * FROM unnest(
    CAST(:accounts AS VARCHAR[]), CAST(:currencies AS VARCHAR[]),
    CAST(:debits AS BIGINT[]), CAST(:credits AS BIGINT[])
)
ON CONFLICT (account, currency) DO UPDATE SET
    debits = account_balances.debits + excluded.debits,
    credits = account_balances.credits + excluded.credits"""
)
