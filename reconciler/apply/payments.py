"""Applying PaymentIntent and Charge snapshots to payments.

A payment intent is ours when it carries `icpay_payment_id` (a payment we created first) or
`icpay_account_id` (a merchant's checkout we have not seen yet: the payment is recorded from
the snapshot). One with neither is an unattributed discrepancy: recorded, never guessed.
Stripe's fee and the date funds become available come from the charge's balance transaction.
"""

from __future__ import annotations

from reconciler.apply import _find
from reconciler.apply._find import RowWanted
from reconciler.apply._unattributed import report_unattributed
from reconciler.apply.context import ApplyContext, StripeRead, metadata_int, stripe_id
from reconciler.apply.merchant_balance import report_owed_if_deauthorized
from reconciler.ledger.payments import (
    advance_payment,
    create_payment,
    record_stripe_fee,
    release_funds,
)
from reconciler.ledger.rows import Merchant, Payment
from reconciler.ledger.session import LedgerSession
from reconciler.ledger.transitions import PAYMENT_CAPTURED, REFUND_RELEASED
from reconciler.money import is_booked
from reconciler.reconcile.discrepancies import record_discrepancy
from reconciler.types import StripeObject


def payment_status_of(intent: StripeObject) -> str:
    """Our payment status for a PaymentIntent status."""
    status = intent["status"]
    if status in ("succeeded", "canceled", "processing"):
        return str(status)
    if status == "requires_capture":
        return "processing"
    if status == "requires_payment_method" and intent.get("last_payment_error"):
        return "failed"
    return "pending"


def charge_to_settle(intent: StripeObject, payment: Payment | None) -> str | None:
    """The charge to fetch for a PaymentIntent snapshot: a succeeded one's payment needs its
    balance transaction (Stripe's fee, when funds are available) until both are booked."""
    if payment_status_of(intent) != "succeeded":
        return None
    if payment is not None and payment.stripe_fee is not None and payment.funds_available:
        return None
    return stripe_id(intent.get("latest_charge"))


def settles(charge: StripeObject) -> bool:
    """A captured charge whose snapshot lacks its balance transaction: fetch it expanded."""
    succeeded = charge.get("status") == "succeeded" and charge.get("captured", True)
    return bool(succeeded) and not isinstance(charge.get("balance_transaction"), dict)


# -- payment intents -------------------------------------------------------------------------


async def apply_payment_intent(ctx: ApplyContext, intent: StripeObject) -> None:
    """Move the ledger to what this PaymentIntent snapshot says."""
    status = payment_status_of(intent)
    async with ctx.read() as tx:
        charge_id = charge_to_settle(intent, await _find.payment_by_intent(tx, intent["id"]))
    charge = await ctx.stripe.charge(charge_id) if charge_id else None
    now = ctx.clock()
    async with ctx.write() as tx:
        payment = await _payment_for_intent(ctx, tx, intent, charge)
        if payment is None:
            return
        received = int(intent.get("amount_received") or 0)
        if status == "succeeded" and await _amount_differs(ctx, tx, payment, intent, received):
            return
        await advance_payment(
            tx,
            payment.id,
            status,
            now=now,
            charge_id=stripe_id(intent.get("latest_charge")),
            from_snapshot=True,
        )
        if charge is not None:
            await _settle(tx, payment.id, charge, ctx)
        await _owed_after(ctx, tx, payment)


def intent_rows(intent: StripeObject) -> list[RowWanted]:
    return [
        (Payment, "payment_intent_id", intent.get("id")),
        (Payment, "id", metadata_int(intent, "icpay_payment_id")),
        (Merchant, "id", metadata_int(intent, "icpay_account_id")),
    ]


async def intent_reads(tx: LedgerSession, intent: StripeObject) -> list[StripeRead]:
    charge_id = charge_to_settle(intent, await _find.payment_by_intent(tx, intent["id"]))
    return [("charge", charge_id)] if charge_id else []


# -- charges ---------------------------------------------------------------------------------


async def apply_charge(ctx: ApplyContext, charge: StripeObject) -> StripeObject | None:
    """A charge moves its payment: success, Stripe's fee, availability. Returns the charge
    as applied (the fresh copy, when it fetched one) for the dispatcher to apply the refunds
    it shows (`charge_refunds`), or None when it was not applied (not ours, or for another
    amount than the payment's): then its refunds are not applied either."""
    intent_id = stripe_id(charge.get("payment_intent"))
    async with ctx.read() as tx:
        payment = await _charge_payment(tx, charge)
    if payment is None:
        if intent_id is None:
            async with ctx.write() as tx:
                await report_unattributed(ctx, tx, charge, "charge has no payment intent")
            return None
        # The intent carries the attribution; apply it first, then look again.
        await apply_payment_intent(ctx, await ctx.stripe.payment_intent(intent_id))
        async with ctx.read() as tx:
            payment = await _find.payment_by_intent(tx, intent_id)
        if payment is None:
            return None
    if charge.get("status") == "succeeded" and charge.get("captured", True):
        if settles(charge):
            charge = await ctx.stripe.charge(charge["id"])
        async with ctx.write() as tx:
            captured = int(charge.get("amount_captured", charge.get("amount")) or 0)
            if await _amount_differs(ctx, tx, payment, charge, captured):
                return None
            await advance_payment(
                tx,
                payment.id,
                "succeeded",
                now=ctx.clock(),
                charge_id=charge["id"],
                from_snapshot=True,
            )
            await _settle(tx, payment.id, charge, ctx)
            await _owed_after(ctx, tx, payment)
    return charge


async def charge_refunds(ctx: ApplyContext, charge: StripeObject) -> list[StripeObject]:
    """The refunds a charge as applied shows, when they may differ from what the ledger holds
    for its payment."""
    async with ctx.read() as tx:
        payment = await _charge_payment(tx, charge)
    if payment is None:
        return []
    refunded = int(charge.get("amount_refunded") or 0)
    if refunded == payment.amount_refunded and not charge.get("refunded"):
        return []
    listed: list[StripeObject] | None = (charge.get("refunds") or {}).get("data")
    if listed is None or (charge.get("refunds") or {}).get("has_more"):
        listed = await ctx.stripe.refunds_for_charge(charge["id"])
    return released_first(listed)


def released_first(refunds: list[StripeObject]) -> list[StripeObject]:
    """Refunds that gave their amount back first: a later one may need what they freed."""
    return sorted(refunds, key=lambda refund: refund.get("status") not in REFUND_RELEASED)


def charge_rows(charge: StripeObject) -> list[RowWanted]:
    return [
        (Payment, "charge_id", charge.get("id")),
        (Payment, "payment_intent_id", stripe_id(charge.get("payment_intent"))),
    ]


async def charge_reads(tx: LedgerSession, charge: StripeObject) -> list[StripeRead]:
    reads: list[StripeRead] = []
    intent_id = stripe_id(charge.get("payment_intent"))
    if intent_id and await _charge_payment(tx, charge) is None:
        reads.append(("payment_intent", intent_id))  # it carries the charge's attribution
    if settles(charge):
        reads.append(("charge", charge["id"]))
    return reads


async def _charge_payment(tx: LedgerSession, charge: StripeObject) -> Payment | None:
    return await _find.payment_by_charge(tx, charge["id"]) or (
        await _find.payment_by_intent(tx, stripe_id(charge.get("payment_intent")))
    )


# -- shared ----------------------------------------------------------------------------------


async def _amount_differs(
    ctx: ApplyContext, tx: LedgerSession, payment: Payment, obj: StripeObject, received: int
) -> bool:
    """A success for another amount or currency than the payment's is reported, never
    booked: the two are compared together, as money always is (with what the customer was
    charged, when Stripe converted it)."""
    currency = str(obj.get("currency") or payment.currency).lower()
    if (received, currency) == charged(payment):
        return False
    await record_discrepancy(
        tx,
        kind="amount_mismatch",
        object_type=str(obj["object"]),
        object_id=obj["id"],
        merchant_id=payment.merchant_id,
        detail=(
            f"Stripe received {received} {currency}, "
            f"the payment is for {payment.amount} {payment.currency}"
        ),
        detected_by=ctx.detected_by,
        now=ctx.clock(),
        ledger_value={"amount": payment.amount, "currency": payment.currency},
        stripe_value={"amount_received": received, "currency": currency},
    )
    return True


async def _settle(
    tx: LedgerSession, payment_id: int, charge: StripeObject, ctx: ApplyContext
) -> None:
    """Book Stripe's fee, when funds become available, and release them if they are."""
    transaction = charge.get("balance_transaction")
    if not isinstance(transaction, dict):
        return
    now = ctx.clock()
    payment = await tx.get(Payment, payment_id)
    if payment.status not in PAYMENT_CAPTURED:
        return
    await record_stripe_fee(tx, payment_id, int(transaction["fee"]), now=now)
    tx.update(payment, now=now, available_on=transaction.get("available_on"))
    if transaction.get("status") == "available":
        await release_funds(tx, payment_id, now=now)


async def _owed_after(ctx: ApplyContext, tx: LedgerSession, payment: Payment) -> None:
    if payment.status in PAYMENT_CAPTURED:  # the merchant's share is now owed to them
        await report_owed_if_deauthorized(ctx, tx, await tx.get(Merchant, payment.merchant_id))


def charged(payment: Payment) -> tuple[int, str]:
    """What the customer was charged for the payment: amount and currency."""
    if payment.presentment_amount is not None and payment.presentment_currency is not None:
        return payment.presentment_amount, payment.presentment_currency
    return payment.amount, payment.currency


async def _payment_for_intent(
    ctx: ApplyContext, tx: LedgerSession, intent: StripeObject, charge: StripeObject | None
) -> Payment | None:
    payment = await _find.ours(
        tx, Payment, "payment_intent_id", intent, "icpay_payment_id", now=ctx.clock()
    )
    if payment is not None:
        return payment
    merchant = await _find.merchant_by_id(tx, metadata_int(intent, "icpay_account_id"))
    if merchant is None:
        await report_unattributed(
            ctx, tx, intent, "payment intent carries no icpay_account_id of a known merchant"
        )
        return None
    amount, currency = int(intent["amount"]), str(intent["currency"]).lower()
    presentment = None
    if not is_booked(currency):
        settled = await _converted(ctx, tx, intent, charge, merchant.id)
        if settled is None:
            return None
        presentment, (amount, currency) = (amount, currency), settled
    payment_id = await create_payment(
        tx,
        merchant_id=merchant.id,
        amount=amount,
        currency=currency,
        fees=ctx.fees,
        now=ctx.clock(),
        payment_intent_id=intent["id"],
        presentment=presentment,
    )
    return await tx.get(Payment, payment_id)


async def _converted(
    ctx: ApplyContext,
    tx: LedgerSession,
    intent: StripeObject,
    charge: StripeObject | None,
    merchant_id: int,
) -> tuple[int, str] | None:
    """A payment in a currency the ledger does not hold: reported, with its amounts, once
    Stripe says what it settled as (the charge's balance transaction); booked at that, if it
    is in a currency the ledger holds. None: nothing to book (yet)."""
    if payment_status_of(intent) != "succeeded":
        return None  # no money has moved; a success will say what it settled as
    transaction = (charge or {}).get("balance_transaction")
    if not isinstance(transaction, dict):
        # Captured asynchronously: the charge shows its balance transaction a moment later
        # (charge.updated). Reporting now would leave "not booked" open once it is booked.
        return None
    settled = None
    if is_booked(str(transaction.get("currency") or "")):
        settled = int(transaction["amount"]), str(transaction["currency"]).lower()
    await record_discrepancy(
        tx,
        kind="unsupported_currency",
        object_type="payment_intent",
        object_id=intent["id"],
        merchant_id=merchant_id,
        detail=(
            f"a payment of {intent['amount']} {intent['currency']}, a currency the ledger "
            + (
                f"does not hold: booked as the {settled[0]} {settled[1]} Stripe settled it as"
                if settled
                else f"does not hold, settled in {transaction.get('currency')}, which it does "
                "not hold either: not booked"
            )
        ),
        detected_by=ctx.detected_by,
        now=ctx.clock(),
        ledger_value={"amount": settled[0], "currency": settled[1]} if settled else None,
        stripe_value={
            "amount": intent["amount"],
            "currency": intent["currency"],
            "exchange_rate": transaction.get("exchange_rate"),
        },
    )
    return settled
