"""What a run writes about the differences it found: each recorded (or brought up to date)
with the run that saw it, those it healed resolved at once, and, at the end of a run, those
earlier runs found that it no longer sees cleared.

An operator who resolves a difference accepts it as it stands (a transfer made outside ICPay
that is known, a fee Stripe corrected by hand): the next run seeing the very same values
does not open it again. If either value changes, it is news, and it opens again."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update

from reconciler.db.tables import discrepancies
from reconciler.reconcile.compare import Difference
from reconciler.reconcile.discrepancies import (
    CLEARED,
    HEALED,
    OPERATOR,
    record_discrepancy,
    resolve_discrepancy,
)
from reconciler.reconcile.scope import Scope
from reconciler.types import Queryable

# The kinds a run looks for, so the kinds it may clear when it no longer sees them.
RUN_KINDS = (
    "missing_in_ledger",
    "missing_at_stripe",
    "status_mismatch",
    "amount_mismatch",
    "fee_mismatch",
    "unattributed_object",
    "negative_merchant_balance",
    "merchant_balances_exceed_platform",
    "payout_stuck_pending",
    "refund_stuck_pending",
    "journal_invariant_broken",
)


async def record_findings(
    conn: Queryable,
    run_id: int,
    *,
    found: list[Difference],
    healed: list[Difference],
    now: datetime,
) -> int:
    """Record what was found and resolve what was healed; how many were recorded (those an
    operator accepted as they stand are not)."""
    recorded = 0
    for difference in found:
        if await _accepted_by_operator(conn, difference):
            continue
        recorded += 1
        await record_discrepancy(
            conn,
            kind=difference.kind,
            object_type=difference.object_type,
            object_id=difference.object_id,
            detail=difference.detail,
            detected_by=f"reconcile:{run_id}",
            now=now,
            merchant_id=difference.merchant_id,
            ledger_value=difference.ledger_value,
            stripe_value=difference.stripe_value,
            run_id=run_id,
        )
    for difference in healed:
        await resolve_discrepancy(
            conn,
            kind=difference.kind,
            object_type=difference.object_type,
            object_id=difference.object_id,
            resolution=f"healed by reconcile run {run_id}: Stripe's state applied",
            resolved_by=f"reconcile:{run_id}",
            now=now,
            how=HEALED,
            run_id=run_id,
        )
    return recorded


async def _accepted_by_operator(conn: Queryable, difference: Difference) -> bool:
    """Whether the newest discrepancy of this kind and object was resolved by an operator
    when it showed these same values."""
    newest = await conn.execute(
        select(
            discrepancies.c.resolved_how,
            discrepancies.c.ledger_value,
            discrepancies.c.stripe_value,
        )
        .where(
            discrepancies.c.kind == difference.kind,
            discrepancies.c.object_type == difference.object_type,
            discrepancies.c.object_id == difference.object_id,
        )
        .order_by(discrepancies.c.id.desc())
        .limit(1)
    )
    row = newest.first()
    return (
        row is not None
        and row.resolved_how == OPERATOR
        and (row.ledger_value, row.stripe_value)
        == (difference.ledger_value, difference.stripe_value)
    )


async def clear_unseen(
    conn: Queryable, run_id: int, scope: Scope, *, touched: set[str], now: datetime
) -> int:
    """Resolve, as cleared, the open discrepancies a run found before, in this run's scope,
    that this (completed) run did not see again. A time window is never cleared: it cannot
    say which objects it covered (a ledger row and its Stripe object may fall either side).
    `touched`: the ids a one-object run looked at. Returns how many."""
    if scope.since is not None or scope.until is not None:
        return 0
    conditions = [
        discrepancies.c.status == "open",
        discrepancies.c.kind.in_(RUN_KINDS),
        discrepancies.c.last_run_id.is_not(None),
        discrepancies.c.last_run_id != run_id,
    ]
    if scope.account_id is not None:
        conditions.append(discrepancies.c.merchant_id == scope.account_id)
    if scope.object_id is not None:
        conditions.append(discrepancies.c.object_id.in_(sorted(touched)))
    result = await conn.execute(
        update(discrepancies)
        .where(*conditions)
        .values(
            status="resolved",
            resolution=f"cleared by reconcile run {run_id}: no longer seen",
            resolved_by=f"reconcile:{run_id}",
            resolved_at=now,
            updated_at=now,
            resolved_how=CLEARED,
            resolved_run_id=run_id,
        )
    )
    return int(result.rowcount or 0)
