"""What a run writes about the differences it found: each recorded (or brought up to date)
with the run that saw it, those it healed resolved at once, and, at the end of a run, those
earlier runs found that it no longer sees cleared."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update

from reconciler.db.tables import discrepancies
from reconciler.reconcile.compare import Difference
from reconciler.reconcile.discrepancies import (
    CLEARED,
    HEALED,
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
) -> None:
    for difference in found:
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
