"""Clearing: a run resolves as cleared only what it looked for and did not find again, never
what another run found while it ran, nor what a check cut at its limit did not list."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from reconciler.db.engine import Database
from reconciler.db.tables import discrepancies
from reconciler.reconcile.compare import Difference
from reconciler.reconcile.findings import (
    LEDGER_CHECK_KINDS,
    clear_unseen,
    finding_key,
    record_findings,
)
from reconciler.reconcile.ledger_checks import remember_seen
from reconciler.reconcile.runs import queue_run, take_run
from reconciler.reconcile.scope import Scope

AMOUNT = Difference("amount_mismatch", "payment_intent", "pi_X", "amount 100 vs 90")
STUCK = Difference("payout_stuck_pending", "payout", "7", "payout 7 still pending")


async def started(db: Database, at: datetime) -> int:
    async with db.write() as conn:
        run_id = await queue_run(conn, Scope(), dry_run=True, started_by="test", now=at)
        assert await take_run(conn, run_id, at)
    return run_id


async def finds(
    db: Database, run_id: int, seen: list[str], found: list[Difference], at: datetime
) -> None:
    async with db.write() as conn:
        await record_findings(conn, run_id, found=found, healed=[], now=at)
        await remember_seen(conn, run_id, seen + [finding_key(d) for d in found])


async def clears(
    db: Database, run_id: int, at: datetime, began: datetime, checked: set[str] | None = None
) -> int:
    async with db.write() as conn:
        return await clear_unseen(
            conn,
            run_id,
            Scope(),
            touched=set(),
            checked=set(LEDGER_CHECK_KINDS) if checked is None else checked,
            started_at=began,
            now=at,
        )


async def open_keys(db: Database) -> set[tuple[str, str]]:
    async with db.read() as conn:
        rows = await conn.execute(
            select(discrepancies.c.kind, discrepancies.c.object_id).where(
                discrepancies.c.status == "open"
            )
        )
        return {(kind, object_id) for kind, object_id in rows}


async def test_a_run_does_not_clear_what_another_found_while_it_ran(
    db: Database, now: datetime
) -> None:
    second = timedelta(seconds=1)
    nightly = await started(db, now)
    # The nightly run compares pi_X: no difference yet.
    await finds(db, nightly, ["pi_X"], [], now + second)
    # Then the ledger changes, and an operator's run finds it.
    operators = await started(db, now + 2 * second)
    await finds(db, operators, ["pi_X"], [AMOUNT], now + 3 * second)
    assert await clears(db, nightly, now + 4 * second, began=now) == 0
    assert await open_keys(db) == {("amount_mismatch", "pi_X")}

    # Nor does a later run that never saw the object; one that saw it and found nothing does.
    blind = await started(db, now + 5 * second)
    assert await clears(db, blind, now + 6 * second, began=now + 5 * second) == 0
    fixed = await started(db, now + 7 * second)
    await finds(db, fixed, ["pi_X"], [], now + 8 * second)
    assert await clears(db, fixed, now + 9 * second, began=now + 7 * second) == 1
    assert await open_keys(db) == set()


async def test_what_a_run_found_itself_stays_open_whoever_saw_it_last(
    db: Database, now: datetime
) -> None:
    second = timedelta(seconds=1)
    first = await started(db, now)
    await finds(db, first, ["pi_X"], [AMOUNT], now + second)
    other = await started(db, now + 2 * second)
    await finds(db, other, ["pi_X"], [AMOUNT], now + 3 * second)
    # The first run's own finding, since written by the other, is not "no longer seen".
    assert await clears(db, first, now + 4 * second, began=now) == 0
    assert await open_keys(db) == {("amount_mismatch", "pi_X")}


async def test_a_ledger_check_clears_only_when_it_ran_whole(db: Database, now: datetime) -> None:
    second = timedelta(seconds=1)
    earlier = await started(db, now)
    await finds(db, earlier, [], [STUCK], now + second)
    cut = await started(db, now + 2 * second)
    # Its stuck check hit its limit: payout 7 may be among those it did not list.
    assert await clears(db, cut, now + 3 * second, began=now + 2 * second, checked=set()) == 0
    whole = await started(db, now + 4 * second)
    assert await clears(db, whole, now + 5 * second, began=now + 4 * second) == 1
