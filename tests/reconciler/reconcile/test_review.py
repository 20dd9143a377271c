"""What operators do with discrepancies and runs, in the core: resolving by hand (once, even
when two try at once), a run's summary, and a run queued once per Idempotency-Key."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest
from sqlalchemy import update

from reconciler.db.engine import Database
from reconciler.db.tables import discrepancies
from reconciler.errors import IdempotencyConflict, IllegalTransition, NotFound
from reconciler.ledger.requests import RequestKey
from reconciler.reconcile.discrepancies import record_discrepancy
from reconciler.reconcile.review import (
    get_discrepancy,
    list_discrepancies,
    resolve_by_operator,
    summarise_run,
)
from reconciler.reconcile.runs import list_runs, queue_requested_run, queue_run
from reconciler.reconcile.scope import Scope


async def plant(db: Database, now: datetime, kind: str, object_id: str) -> int:
    async with db.write() as conn:
        await record_discrepancy(
            conn,
            kind=kind,
            object_type="payment_intent",
            object_id=object_id,
            detail="seen",
            detected_by="reconcile",
            now=now,
        )
    async with db.read() as conn:
        [found], _ = await list_discrepancies(conn, limit=1)
    return found.id


async def test_an_operator_resolves_an_open_discrepancy_once(db: Database, now: datetime) -> None:
    found_id = await plant(db, now, "amount_mismatch", "pi_1")
    later = now + timedelta(hours=1)
    async with db.write() as conn:
        resolved = await resolve_by_operator(
            conn, found_id, "refunded by hand", "operator:ann", later
        )
    assert (resolved.status, resolved.resolved_how, resolved.resolved_by) == (
        "resolved",
        "operator",
        "operator:ann",
    )
    assert (resolved.resolution, resolved.resolved_at) == ("refunded by hand", later)
    # Resolving is not seeing it again.
    assert (resolved.first_seen_at, resolved.last_seen_at) == (now, now)
    async with db.write() as conn:
        with pytest.raises(IllegalTransition, match="resolved already"):
            await resolve_by_operator(conn, found_id, "again", "operator:bob", later)
        with pytest.raises(NotFound):
            await resolve_by_operator(conn, 999, "none", "operator:bob", later)
    async with db.read() as conn:
        kept = await get_discrepancy(conn, found_id)
    assert kept is not None and kept.resolved_by == "operator:ann"


async def test_two_operators_resolving_at_once_one_wins(db: Database, now: datetime) -> None:
    found_id = await plant(db, now, "amount_mismatch", "pi_1")

    async def resolve(who: str) -> str:
        try:
            async with db.write() as conn:
                await resolve_by_operator(conn, found_id, f"by {who}", who, now)
        except IllegalTransition:
            return "refused"
        return "resolved"

    outcomes = await asyncio.gather(resolve("operator:ann"), resolve("operator:bob"))
    assert sorted(outcomes) == ["refused", "resolved"]


async def test_a_runs_summary_counts_what_it_saw_that_is_open(db: Database, now: datetime) -> None:
    async with db.write() as conn:
        run_id = await queue_run(conn, Scope(), dry_run=True, started_by="cli", now=now)
        other = await queue_run(conn, Scope(), dry_run=True, started_by="cli", now=now)
    seen = [
        await plant(db, now, "amount_mismatch", "pi_1"),
        await plant(db, now, "amount_mismatch", "pi_2"),
        await plant(db, now, "status_mismatch", "pi_3"),
        await plant(db, now, "status_mismatch", "pi_4"),
    ]
    await plant(db, now, "missing_in_ledger", "pi_5")  # seen by no run
    async with db.write() as conn:
        await conn.execute(
            update(discrepancies).where(discrepancies.c.id.in_(seen)).values(last_run_id=run_id)
        )
        await conn.execute(
            update(discrepancies).where(discrepancies.c.id == seen[3]).values(last_run_id=other)
        )
        await resolve_by_operator(conn, seen[1], "fine", "operator:ann", now)
    async with db.read() as conn:
        summary = await summarise_run(conn, run_id)
        with pytest.raises(NotFound):
            await summarise_run(conn, 999)
    assert summary.run.id == run_id
    assert summary.open_by_kind == {"amount_mismatch": 1, "status_mismatch": 1}
    assert summary.open_total == 2


async def test_a_requested_run_is_queued_once_per_key(db: Database, now: datetime) -> None:
    request = RequestKey(scope="token:1", key="nightly", digest="a" * 64)

    async def queue(key: RequestKey) -> tuple[int, bool]:
        async with db.write() as conn:
            return await queue_requested_run(
                conn, Scope(), dry_run=True, started_by="operator:ann", now=now, request=key
            )

    # Two at once (a client retrying before the first answer came): one run.
    first, second = await asyncio.gather(queue(request), queue(request))
    assert first[0] == second[0] and sorted([first[1], second[1]]) == [False, True]
    with pytest.raises(IdempotencyConflict, match="nightly"):
        await queue(RequestKey(scope="token:1", key="nightly", digest="b" * 64))
    other, new = await queue(RequestKey(scope="token:2", key="nightly", digest="a" * 64))
    assert new and other != first[0]
    async with db.read() as conn:
        runs, _ = await list_runs(conn, limit=10)
    assert len(runs) == 2
