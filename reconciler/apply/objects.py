"""The one way into the ledger for a Stripe object snapshot, whoever holds it (a webhook, the
poller, the sweeper, a reconcile run): find its kind, apply it and what it reveals, and where
the snapshot conflicts with the ledger in a way rank cannot decide, apply a fresh copy."""

from __future__ import annotations

from reconciler.apply.context import ApplyContext
from reconciler.apply.kinds import KINDS, ObjectKind
from reconciler.errors import IllegalTransition
from reconciler.reconcile.discrepancies import record_discrepancy
from reconciler.types import StripeObject


async def apply_object(ctx: ApplyContext, obj: StripeObject) -> None:
    """Apply any snapshot of a kind in `KINDS`. If even a fresh copy conflicts, the conflict
    is recorded as a `status_mismatch` discrepancy rather than forced or retried forever."""
    kind = KINDS[obj["object"]]
    try:
        await _apply_with_revealed(ctx, kind, obj)
        return
    except IllegalTransition:
        if ctx.shared is not None:
            raise  # in a batch: give the batch up, this event is then applied alone
        fresh = await kind.fetch(ctx.stripe, obj["id"])
    try:
        await _apply_with_revealed(ctx, kind, fresh)
    except IllegalTransition as conflict:
        async with ctx.write() as tx:
            await record_discrepancy(
                tx,
                kind="status_mismatch",
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
