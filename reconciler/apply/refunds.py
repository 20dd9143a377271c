"""Applying Refund snapshots, including refunds made in the Stripe Dashboard.

A refund we know (by Stripe id, or by `icpay_refund_id` for one we created first) follows the
snapshot's status. One we do not know was made outside ICPay: it becomes a refund record with
source `dashboard` on its payment, booked even if it leaves the merchant short (Stripe already
paid it; the reconciler reports the shortfall).
"""

from __future__ import annotations

from reconciler.apply import _find
from reconciler.apply._find import RowWanted
from reconciler.apply._unattributed import report_unattributed
from reconciler.apply.context import (
    ApplyContext,
    StripeRead,
    StripeReader,
    metadata_int,
    stripe_id,
)
from reconciler.apply.merchant_balance import follow_merchant_balance
from reconciler.apply.payments import apply_payment_intent, released_first
from reconciler.ledger.refunds import advance_refund, create_refund
from reconciler.ledger.rows import Payment, Refund
from reconciler.ledger.session import LedgerSession
from reconciler.ledger.transitions import PAYMENT_CAPTURED, REFUND_RELEASED
from reconciler.reconcile.discrepancies import record_discrepancy, resolve_discrepancy
from reconciler.types import StripeObject


async def apply_refund(ctx: ApplyContext, refund: StripeObject) -> None:
    """Move the ledger to what this Refund snapshot says."""
    intent_id = stripe_id(refund.get("payment_intent"))
    if intent_id and not await _payment_captured(ctx, refund):
        # The intent's own events may be late: bring the payment up to date first.
        await apply_payment_intent(ctx, await ctx.stripe.payment_intent(intent_id))
    now = ctx.clock()
    async with ctx.write() as tx:
        row = await _refund_row(ctx, tx, refund)
        if row is None:
            return
        await advance_refund(
            tx,
            row.id,
            refund["status"],
            now=now,
            failure_reason=refund.get("failure_reason"),
            from_snapshot=True,
        )
        await _follow_waiting_for_funds(ctx, tx, row, refund)
        # A refund Stripe made is booked even when it takes the merchant below zero; one that
        # failed or was canceled gives the money back: either way a person may need to know.
        await follow_merchant_balance(ctx, tx, row.merchant_id, cause=f"refund {refund['id']}")


async def _follow_waiting_for_funds(
    ctx: ApplyContext, tx: LedgerSession, row: Refund, refund: StripeObject
) -> None:
    """A refund Stripe holds because the platform's balance is short has left the balance
    already, but the customer has not been paid: open while it waits (a person tops the
    balance up), closed once it has moved on. Judged on the ledger's status after applying,
    so a stale pending snapshot arriving late opens nothing."""
    waiting = row.status == "pending" and refund.get("pending_reason") == "insufficient_funds"
    if not waiting:
        if row.status != "pending":
            await resolve_discrepancy(
                tx,
                kind="refund_waiting_for_funds",
                object_type="refund",
                object_id=refund["id"],
                resolution=f"the refund is {row.status}",
                resolved_by=ctx.detected_by,
                now=ctx.clock(),
            )
        return
    await record_discrepancy(
        tx,
        kind="refund_waiting_for_funds",
        object_type="refund",
        object_id=refund["id"],
        merchant_id=row.merchant_id,
        detail=(
            f"refund {refund['id']} of {row.amount} {row.currency} waits for the platform's "
            "Stripe balance to cover it: the customer is not paid until funds are added"
        ),
        detected_by=ctx.detected_by,
        now=ctx.clock(),
        ledger_value={"refund": row.id, "status": row.status},
        stripe_value={"status": refund["status"], "pending_reason": "insufficient_funds"},
    )


def refund_rows(refund: StripeObject) -> list[RowWanted]:
    return [
        (Payment, "charge_id", stripe_id(refund.get("charge"))),
        (Payment, "payment_intent_id", stripe_id(refund.get("payment_intent"))),
        (Refund, "stripe_refund_id", refund.get("id")),
        (Refund, "id", metadata_int(refund, "icpay_refund_id")),
    ]


async def refund_reads(tx: LedgerSession, refund: StripeObject) -> list[StripeRead]:
    intent_id = stripe_id(refund.get("payment_intent"))
    payment = await _payment_of(tx, refund)
    if intent_id and (payment is None or payment.status not in PAYMENT_CAPTURED):
        return [("payment_intent", intent_id)]  # brings the refund's payment up to date
    return []


async def refund_in_context(stripe: StripeReader, refund: StripeObject) -> list[StripeObject]:
    """What to apply when a refund snapshot conflicts with the ledger (more than is left to
    refund, say): every refund of its charge as Stripe has them now, those that failed or
    were canceled meanwhile first, so the amount they gave back is there for the others."""
    charge_id = stripe_id(refund.get("charge"))
    listed = await stripe.refunds_for_charge(charge_id) if charge_id else []
    if all(other["id"] != refund["id"] for other in listed):
        listed.append(await stripe.refund(refund["id"]))
    return released_first(listed)


async def _payment_captured(ctx: ApplyContext, refund: StripeObject) -> bool:
    async with ctx.read() as tx:
        payment = await _payment_of(tx, refund)
    return payment is not None and payment.status in PAYMENT_CAPTURED


async def _payment_of(tx: LedgerSession, refund: StripeObject) -> Payment | None:
    return await _find.payment_by_intent(tx, stripe_id(refund.get("payment_intent"))) or (
        await _find.payment_by_charge(tx, stripe_id(refund.get("charge")))
    )


async def _refund_row(ctx: ApplyContext, tx: LedgerSession, refund: StripeObject) -> Refund | None:
    row = await _find.ours(
        tx, Refund, "stripe_refund_id", refund, "icpay_refund_id", now=ctx.clock()
    )
    if row is not None:
        return row
    payment = await _payment_of(tx, refund)
    if payment is None:
        await report_unattributed(ctx, tx, refund, "refund of a payment the ledger does not hold")
        return None
    if str(refund.get("currency") or payment.currency).lower() != payment.currency:
        await _report_converted(ctx, tx, payment, refund)
        return None
    refund_id = await create_refund(
        tx,
        payment_id=payment.id,
        amount=int(refund["amount"]),
        now=ctx.clock(),
        source="dashboard",
        stripe_refund_id=refund["id"],
        reason=refund.get("reason"),
        require_balance=False,
        status=refund["status"] if refund["status"] in REFUND_RELEASED else "pending",
        failure_reason=refund.get("failure_reason"),
    )
    return await tx.get(Refund, refund_id)


async def _report_converted(
    ctx: ApplyContext, tx: LedgerSession, payment: Payment, refund: StripeObject
) -> None:
    """A refund of a payment Stripe converted is in the currency the customer paid, not the
    one the ledger booked: it is reported for a person, never booked at a guessed rate."""
    await record_discrepancy(
        tx,
        kind="unsupported_currency",
        object_type="refund",
        object_id=refund["id"],
        merchant_id=payment.merchant_id,
        detail=(
            f"refund of {refund.get('amount')} {refund.get('currency')} on payment "
            f"{payment.id}, booked in {payment.currency}: not booked"
        ),
        detected_by=ctx.detected_by,
        now=ctx.clock(),
        ledger_value={"payment": payment.id, "currency": payment.currency},
        stripe_value={"amount": refund.get("amount"), "currency": refund.get("currency")},
    )
