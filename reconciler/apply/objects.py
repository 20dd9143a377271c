"""The one way into the ledger for a Stripe object snapshot, whoever holds it (a webhook, the
poller, the sweeper, a reconcile run): find its kind, apply it and what it reveals, and where
the snapshot conflicts with the ledger in a way rank cannot decide, apply a fresh copy."""

from __future__ import annotations

from reconciler.apply.context import ApplyContext
from reconciler.apply.kinds import KINDS, ObjectKind
from reconciler.errors import IllegalTransition, RefundExceedsPayment
from reconciler.reconcile.discrepancies import record_discrepancy
from reconciler.types import StripeObject

# What a ledger refuses of a snapshot that may be stale rather than wrong: a move its
# lifecycle does not allow, a refund of more than is left.
CONFLICTS = (IllegalTransition, RefundExceedsPayment)


async def apply_object(ctx: ApplyContext, obj: StripeObject) -> None:
    """Apply any snapshot of a kind in `KINDS`. If the ledger refuses it, what its kind says
    to fetch fresh is applied instead; if even that conflicts, the conflict is recorded as a
    discrepancy rather than forced or retried forever."""
    kind = KINDS[obj["object"]]
    try:
        await _apply_with_revealed(ctx, kind, obj)
        return
    except CONFLICTS:
        if ctx.shared is not None:
            raise  # in a batch: give the batch up, this event is then applied alone
        fetched = await kind.fresh(ctx.stripe, obj)
    fresh = next((copy for copy in fetched if copy["id"] == obj["id"]), obj)
    try:
        for copy in fetched:
            await _apply_with_revealed(ctx, KINDS[copy["object"]], copy)
    except CONFLICTS as conflict:
        mismatch = "amount" if isinstance(conflict, RefundExceedsPayment) else "status"
        async with ctx.write() as tx:
            await record_discrepancy(
                tx,
                kind=f"{mismatch}_mismatch",
                object_type=obj["object"],
                object_id=obj["id"],
                detail=str(conflict),
                detected_by=ctx.detected_by,
                now=ctx.clock(),
                stripe_value={"status": fresh.get("status")},
            )


async def _apply_with_revealed(ctx: ApplyContext, kind: ObjectKind, obj: StripeObject) -> None:
    applied = await kind.apply(ctx, obj)
    if kind.reveals is not None and applied is not None:
        for revealed in await kind.reveals(ctx, applied):
            await _apply_with_revealed(ctx, KINDS[revealed["object"]], revealed)
