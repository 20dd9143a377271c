"""How long reading a merchant's balance takes with 1k and with 1M rows of history.

Each history row is a succeeded payment with its journal entry and legs, bulk-loaded with
INSERT ... SELECT over a recursive sequence; the running totals are then rebuilt from the legs
and the three balance computations are checked to agree before anything is timed.

    python -m bench.balance                      # SQLite (temporary file)
    python -m bench.balance --database-url postgresql+asyncpg://postgres@127.0.0.1/bench

Prints the median read time at each size and the ratio 1M / 1k (the goal: under 2). For
contrast it also times the same number computed by aggregating the history (the formula).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Integer, String, cast, delete, func, insert, literal, select, union_all
from sqlalchemy.ext.asyncio import AsyncConnection

from reconciler.db.engine import Database
from reconciler.db.schema import migrate
from reconciler.db.tables import account_balances, journal_entries, journal_legs, payments
from reconciler.ledger import accounts
from reconciler.ledger.balances import (
    balances_by_formula,
    check_balance_invariant,
    merchant_balance,
)
from reconciler.ledger.merchants import create_merchant
from reconciler.ledger.session import ledger_session

NOW = datetime(2026, 11, 26, tzinfo=UTC)


async def load_history(db: Database, rows: int) -> int:
    """A merchant with `rows` succeeded payments, each booked in the journal."""
    async with ledger_session(db) as conn:
        merchant_id = await create_merchant(conn, name=f"bench-{rows}", now=NOW)
        seq = select(literal(1).label("n")).cte("seq", recursive=True)
        seq = seq.union_all(select(seq.c.n + 1).where(seq.c.n < rows))
        amount = 1000 + seq.c.n % 500
        await conn.execute(
            insert(payments).from_select(
                [
                    "merchant_id",
                    "ledger",
                    "currency",
                    "amount",
                    "platform_fee",
                    "amount_refunded",
                    "status",
                    "funds_available",
                    "created_at",
                    "updated_at",
                ],
                select(
                    literal(merchant_id),
                    literal("stripe_usd"),
                    literal("usd"),
                    amount,
                    literal(0),
                    literal(0),
                    literal("succeeded"),
                    literal(False),
                    literal(NOW, payments.c.created_at.type),
                    literal(NOW, payments.c.updated_at.type),
                ),
            )
        )
        key = "payment:" + cast(payments.c.id, String) + ":succeeded"
        mine = payments.c.merchant_id == merchant_id
        await conn.execute(
            insert(journal_entries).from_select(
                ["idempotency_key", "kind", "merchant_id", "created_at"],
                select(
                    key, literal("payment_succeeded"), payments.c.merchant_id, payments.c.created_at
                ).where(mine),
            )
        )
        entries = (
            select(journal_entries.c.id, payments.c.amount)
            .join(payments, journal_entries.c.idempotency_key == key)
            .where(mine)
        )
        sides = [
            entries.with_only_columns(
                journal_entries.c.id,
                literal(account),
                literal("usd"),
                payments.c.amount if debit_side else literal(0, Integer),
                literal(0, Integer) if debit_side else payments.c.amount,
            )
            for account, debit_side in (
                (accounts.PLATFORM_PENDING, True),
                (accounts.merchant_payable(merchant_id), False),
            )
        ]
        # Both legs of every entry in one statement, as PostgreSQL's balance check requires.
        await conn.execute(
            insert(journal_legs).from_select(
                ["entry_id", "account", "currency", "debit", "credit"], union_all(*sides)
            )
        )
        await rebuild_running_totals(conn)
    return merchant_id


async def rebuild_running_totals(conn: AsyncConnection) -> None:
    await conn.execute(delete(account_balances))
    await conn.execute(
        insert(account_balances).from_select(
            ["account", "currency", "debits", "credits"],
            select(
                journal_legs.c.account,
                journal_legs.c.currency,
                func.sum(journal_legs.c.debit),
                func.sum(journal_legs.c.credit),
            )
            .where(journal_legs.c.account.like("merchant:%"))
            .group_by(journal_legs.c.account, journal_legs.c.currency),
        )
    )


async def median_seconds(db: Database, merchant_id: int, reads: int, formula: bool) -> float:
    timings = []
    for _ in range(reads):
        started = time.perf_counter()
        async with db.read() as conn:
            if formula:
                await balances_by_formula(conn, merchant_id)
            else:
                await merchant_balance(conn, merchant_id, "usd")
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


async def measure(url: str, sizes: list[int], reads: int) -> None:
    results: dict[int, tuple[float, float]] = {}
    for size in sizes:
        db = Database(url.format(size=size))
        try:
            await migrate(db)
            started = time.perf_counter()
            merchant_id = await load_history(db, size)
            loaded = time.perf_counter() - started
            async with db.read() as conn:
                assert await check_balance_invariant(conn, merchant_id) == []
            await median_seconds(db, merchant_id, 100, formula=False)  # warm the pool and caches
            running = await median_seconds(db, merchant_id, reads, formula=False)
            by_formula = await median_seconds(db, merchant_id, max(3, reads // 200), formula=True)
            results[size] = (running, by_formula)
            print(
                f"{size:>9,} rows: loaded in {loaded:6.1f}s; balance read median "
                f"{running * 1e6:8.1f} us (by formula {by_formula * 1e3:9.2f} ms)"
            )
        finally:
            await db.dispose()
    small, large = min(sizes), max(sizes)
    read_ratio = results[large][0] / results[small][0]
    formula_ratio = results[large][1] / results[small][1]
    print(
        f"ratio {large:,} / {small:,} rows: balance read {read_ratio:.2f}x (goal < 2); "
        f"by formula {formula_ratio:.0f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="an empty database; {size} is filled in if present")
    parser.add_argument("--reads", type=int, default=2000)
    parser.add_argument("--sizes", default="1000,1000000")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as folder:
        url = args.database_url or f"sqlite+aiosqlite:///{Path(folder) / 'bench-{size}.db'}"
        asyncio.run(measure(url, sizes, args.reads))


if __name__ == "__main__":
    main()
