"""Applying Transfer snapshots to payouts.

A transfer is a payout's only when it carries our `icpay_payout_id` (or we stored its id when
we created it). A transfer made outside ICPay is never booked as a payout, even to a
merchant's account: it becomes a discrepancy for an operator to attribute or dismiss.
Transfers have no status: their existence means the money left; `amount_reversed` (a running
total) says how much came back.
"""

from __future__ import annotations

from reconciler.apply import _find
from reconciler.apply._unattributed import report_unattributed
from reconciler.apply.context import ApplyContext, metadata_int, stripe_id
from reconciler.gateway import StripeObject
from reconciler.ledger.payouts import advance_payout, record_reversal


async def apply_transfer(ctx: ApplyContext, transfer: StripeObject) -> None:
    """Move the ledger to what this Transfer snapshot says."""
    now = ctx.clock()
    async with ctx.db.write() as conn:
        payout = await _find.payout_by_transfer(conn, transfer["id"])
        if payout is None:
            payout = await _find.payout_by_id(conn, metadata_int(transfer, "icpay_payout_id"))
        if payout is None:
            merchant = await _find.merchant_by_account(conn, stripe_id(transfer.get("destination")))
            await report_unattributed(
                ctx,
                conn,
                transfer,
                "transfer made outside ICPay (no icpay_payout_id): attribute or dismiss it",
                merchant_id=merchant.id if merchant is not None else None,
            )
            return
        for status in ("processing", "completed"):
            await advance_payout(
                conn, payout.id, status, now=now, transfer_id=transfer["id"], from_snapshot=True
            )
        await record_reversal(conn, payout.id, int(transfer.get("amount_reversed") or 0), now=now)
