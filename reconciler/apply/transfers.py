"""Applying Transfer snapshots to payouts.

A transfer is a payout's only when it carries our `icpay_payout_id` (or we stored its id when
we created it). A transfer made outside ICPay is never booked as a payout, even to a
merchant's account: it becomes a discrepancy for an operator to attribute or dismiss.
Transfers have no status: their existence means the money left; `amount_reversed` (a running
total) says how much came back.
"""

from __future__ import annotations

from reconciler.apply import _find
from reconciler.apply._find import RowWanted
from reconciler.apply._unattributed import report_unattributed
from reconciler.apply.context import ApplyContext, metadata_int, stripe_id
from reconciler.apply.merchant_balance import follow_merchant_balance
from reconciler.ledger.payouts import Reversal, advance_payout, record_reversals
from reconciler.ledger.rows import Merchant, Payout
from reconciler.reconcile.discrepancies import record_discrepancy
from reconciler.types import StripeObject


async def apply_transfer(ctx: ApplyContext, transfer: StripeObject) -> None:
    """Move the ledger to what this Transfer snapshot says."""
    reversals = await _reversals(ctx, transfer)  # before the transaction: it may read Stripe
    now = ctx.clock()
    async with ctx.write() as tx:
        payout = await _find.payout_by_transfer(tx, transfer["id"])
        if payout is None:
            payout = await _find.payout_by_id(tx, metadata_int(transfer, "icpay_payout_id"))
        if payout is None:
            merchant = await _find.merchant_by_account(tx, stripe_id(transfer.get("destination")))
            await report_unattributed(
                ctx,
                tx,
                transfer,
                "transfer made outside ICPay (no icpay_payout_id): attribute or dismiss it",
                merchant_id=merchant.id if merchant is not None else None,
            )
            return
        mismatch = _mismatch(payout, transfer, await _find.merchant_by_id(tx, payout.merchant_id))
        if mismatch:
            await record_discrepancy(
                tx,
                kind="amount_mismatch" if "amount" in mismatch else "unattributed_object",
                object_type="transfer",
                object_id=transfer["id"],
                merchant_id=payout.merchant_id,
                detail=f"transfer does not match payout {payout.id}: {mismatch}",
                detected_by=ctx.detected_by,
                now=now,
                ledger_value={
                    "payout": payout.id,
                    "amount": payout.amount,
                    "transfer": payout.stripe_transfer_id,
                },
                stripe_value={
                    key: transfer.get(key) for key in ("amount", "currency", "destination")
                },
            )
            return
        for status in ("processing", "completed"):
            await advance_payout(
                tx, payout.id, status, now=now, transfer_id=transfer["id"], from_snapshot=True
            )
        if await record_reversals(tx, payout.id, reversals, now=now):
            cause = f"reversals of transfer {transfer['id']}"
            await follow_merchant_balance(ctx, tx, payout.merchant_id, cause=cause)


async def _reversals(ctx: ApplyContext, transfer: StripeObject) -> list[Reversal]:
    """Every reversal of the transfer: from the snapshot when it lists them all, else read."""
    listed = transfer.get("reversals") or {}
    data: list[StripeObject] | None = listed.get("data")
    if data is None or listed.get("has_more"):
        if not int(transfer.get("amount_reversed") or 0):
            return []
        data = await ctx.stripe.transfer_reversals(transfer["id"])
    return [(str(reversal["id"]), int(reversal["amount"])) for reversal in data]


def transfer_rows(transfer: StripeObject) -> list[RowWanted]:
    return [
        (Payout, "stripe_transfer_id", transfer.get("id")),
        (Payout, "id", metadata_int(transfer, "icpay_payout_id")),
        (Merchant, "stripe_account_id", stripe_id(transfer.get("destination"))),
    ]


def _mismatch(payout: Payout, transfer: StripeObject, merchant: Merchant | None) -> str:
    """Why this transfer cannot be the payout's (empty when it can). A second transfer for
    one payout, or one to another account or of another amount, is never booked."""
    if payout.stripe_transfer_id not in (None, transfer["id"]):
        return f"the payout was already paid by {payout.stripe_transfer_id}"
    if int(transfer["amount"]) != payout.amount or transfer["currency"] != payout.currency:
        return f"amount {transfer['amount']} {transfer['currency']} is not {payout.amount}"
    destination = stripe_id(transfer.get("destination"))
    expected = payout.destination or (merchant.stripe_account_id if merchant else None)
    if destination is None or destination != expected:
        return f"destination {destination} is not the account the payout is for ({expected})"
    return ""
