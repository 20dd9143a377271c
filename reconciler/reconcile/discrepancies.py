"""Discrepancies: differences between the ledger and Stripe, kept for a person to resolve.

At most one is open per kind and object (a partial unique index): recording one that is
already open updates it, so every path that notices a difference may simply record it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, text, update

from reconciler.db.dialect import insert_for
from reconciler.db.tables import discrepancies
from reconciler.types import Queryable

KINDS = (
    "missing_in_ledger",
    "missing_at_stripe",
    "status_mismatch",
    "amount_mismatch",
    "unattributed_object",
    "negative_merchant_balance",
    "merchant_balances_exceed_platform",
    "payout_stuck_pending",
    "events_past_retention",
    "deauthorized_merchant_owed",
    "unsupported_currency",
    "negative_platform_balance",
    "refund_waiting_for_funds",
    # Found by reconcile runs (reconciler/reconcile/compare.py says what each means).
    "fee_mismatch",
    "journal_invariant_broken",
    "refund_stuck_pending",
)
# How a discrepancy ended (`resolved_how`): a run applied Stripe's truth (healed), a person
# resolved it (operator), a run looked and no longer saw it (cleared), the path that opened
# it saw it end (ended).
HEALED, OPERATOR, CLEARED, ENDED = "healed", "operator", "cleared", "ended"


async def record_discrepancy(
    conn: Queryable,
    *,
    kind: str,
    object_type: str,
    object_id: str,
    detail: str,
    detected_by: str,
    now: datetime,
    merchant_id: int | None = None,
    ledger_value: Any = None,
    stripe_value: Any = None,
    run_id: int | None = None,
) -> None:
    """Open a discrepancy, or, if the same one is open, bring it up to date: what it says and
    the values it compares are the latest seen (a merchant owed more since, a payment booked
    since it was first reported), `created_at` stays when it was first seen, `last_seen_at`
    is now. `run_id`: the reconcile run that saw it (its first, and now its last)."""
    if kind not in KINDS:
        raise ValueError(f"unknown discrepancy kind {kind!r}")
    statement = insert_for(conn, discrepancies).values(
        kind=kind,
        object_type=object_type,
        object_id=object_id,
        merchant_id=merchant_id,
        ledger_value=ledger_value,
        stripe_value=stripe_value,
        detail=detail,
        status="open",
        detected_by=detected_by,
        created_at=now,
        updated_at=now,
        last_seen_at=now,
        first_run_id=run_id,
        last_run_id=run_id,
    )
    seen = statement.excluded
    await conn.execute(
        statement.on_conflict_do_update(
            index_elements=["kind", "object_type", "object_id"],
            index_where=text("status = 'open'"),
            set_={
                "detail": seen.detail,
                "ledger_value": seen.ledger_value,
                "stripe_value": seen.stripe_value,
                "detected_by": seen.detected_by,
                "updated_at": seen.updated_at,
                "last_seen_at": seen.last_seen_at,
                # Seen by a path outside a run: the run that last saw it stays named.
                "last_run_id": func.coalesce(seen.last_run_id, discrepancies.c.last_run_id),
                "first_run_id": func.coalesce(discrepancies.c.first_run_id, seen.first_run_id),
            },
        )
    )


async def resolve_discrepancy(
    conn: Queryable,
    *,
    kind: str,
    object_type: str,
    object_id: str,
    resolution: str,
    resolved_by: str,
    now: datetime,
    how: str = ENDED,
    run_id: int | None = None,
) -> bool:
    """Close the open discrepancy of this kind and object, if there is one, saying what ended
    it. Returns whether one was open. For differences that end by themselves (a refund that
    was waiting for funds has been paid), so only what still needs a person stays open."""
    if kind not in KINDS:
        raise ValueError(f"unknown discrepancy kind {kind!r}")
    result = await conn.execute(
        update(discrepancies)
        .where(
            discrepancies.c.kind == kind,
            discrepancies.c.object_type == object_type,
            discrepancies.c.object_id == object_id,
            discrepancies.c.status == "open",
        )
        .values(
            status="resolved",
            resolution=resolution,
            resolved_by=resolved_by,
            resolved_at=now,
            updated_at=now,
            resolved_how=how,
            resolved_run_id=run_id,
        )
    )
    return bool(result.rowcount)
