"""Reporting a Stripe object that is not attributable to anything of ours."""

from __future__ import annotations

from reconciler.apply.context import ApplyContext
from reconciler.ledger.session import LedgerSession
from reconciler.reconcile.discrepancies import record_discrepancy
from reconciler.types import StripeObject

SHOWN_FIELDS = ("amount", "currency", "status", "destination", "metadata")


async def report_unattributed(
    ctx: ApplyContext,
    tx: LedgerSession,
    obj: StripeObject,
    detail: str,
    *,
    merchant_id: int | None = None,
) -> None:
    await record_discrepancy(
        tx,
        kind="unattributed_object",
        object_type=str(obj.get("object", "unknown")),
        object_id=obj["id"],
        detail=detail,
        detected_by=ctx.detected_by,
        now=ctx.clock(),
        merchant_id=merchant_id,
        stripe_value={key: obj[key] for key in SHOWN_FIELDS if key in obj},
    )
