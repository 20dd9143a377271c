"""Payments: card payments collected on the platform account for a merchant.

When a payment succeeds the gross lands in the platform's pending Stripe balance and is split
between the merchant (their share) and ICPay (the platform fee). Stripe's processing fee is the
platform's cost, booked when the charge's balance transaction tells us what it was.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from reconciler.db.tables import refunds
from reconciler.errors import IllegalTransition, InvalidAmount
from reconciler.ledger import accounts, journal
from reconciler.ledger.requests import NO_REQUEST, RequestKey
from reconciler.ledger.rows import Merchant, Payment
from reconciler.ledger.session import LedgerSession
from reconciler.ledger.transitions import PAYMENT, PAYMENT_CAPTURED, REFUND_RELEASED, Decision
from reconciler.money import LEDGER_FOR_CURRENCY, FeeSchedule, check_currency, check_positive


def status_after_refunds(amount: int, amount_refunded: int) -> str:
    if amount_refunded == 0:
        return "succeeded"
    return "refunded" if amount_refunded >= amount else "partially_refunded"


def capture_status(status: str) -> str:
    """The lifecycle status behind a refund reading (see transitions.PAYMENT)."""
    return "succeeded" if status in PAYMENT_CAPTURED else status


async def create_payment(
    tx: LedgerSession,
    *,
    merchant_id: int,
    amount: int,
    currency: str,
    fees: FeeSchedule,
    now: datetime,
    payment_intent_id: str | None = None,
    presentment: tuple[int, str] | None = None,
    request: RequestKey | None = None,
) -> int:
    """A pending payment of `amount` `currency` (a currency the ledger books). `presentment`
    is what the customer was charged when Stripe converted it into `currency`; `request`,
    the API request that asked for it (see `ledger.requests`)."""
    check_positive(amount)
    currency = check_currency(currency)
    await tx.get(Merchant, merchant_id)
    payment = await tx.insert(
        Payment,
        merchant_id=merchant_id,
        payment_intent_id=payment_intent_id,
        charge_id=None,
        ledger=LEDGER_FOR_CURRENCY[currency],
        currency=currency,
        amount=amount,
        platform_fee=fees.fee_for(amount),
        stripe_fee=None,
        amount_refunded=0,
        status="pending",
        funds_available=False,
        available_on=None,
        presentment_amount=presentment[0] if presentment else None,
        presentment_currency=presentment[1].lower() if presentment else None,
        created_at=now,
        updated_at=now,
        **(request.columns() if request else NO_REQUEST),
    )
    return payment.id


async def get_payment(tx: LedgerSession, payment_id: int) -> Payment:
    return await tx.get(Payment, payment_id)


async def advance_payment(
    tx: LedgerSession,
    payment_id: int,
    status: str,
    *,
    now: datetime,
    charge_id: str | None = None,
    stripe_fee: int | None = None,
    from_snapshot: bool = False,
) -> Decision:
    """Move a payment along its lifecycle; on success, book the merchant's share.

    With `from_snapshot`, a status behind ours is ignored (STALE) instead of refused.
    """
    payment = await tx.lock(Payment, payment_id)
    decision = PAYMENT.step(capture_status(payment.status), status, from_snapshot=from_snapshot)
    if decision is Decision.MOVE:
        values: dict[str, Any] = {"status": status}
        if charge_id is not None:
            values["charge_id"] = charge_id
        tx.update(payment, now=now, **values)
        if status == "succeeded":
            _book_success(tx, payment, now=now)
    if stripe_fee is not None:
        await record_stripe_fee(tx, payment_id, stripe_fee, now=now)
    return decision


def _book_success(tx: LedgerSession, payment: Payment, *, now: datetime) -> None:
    currency = payment.currency
    share = payment.amount - payment.platform_fee
    tx.post(
        f"payment:{payment.id}:succeeded",
        "payment_succeeded",
        [
            journal.debit(accounts.PLATFORM_PENDING, payment.amount, currency),
            journal.credit(accounts.merchant_payable(payment.merchant_id), share, currency),
            journal.credit(accounts.FEE_REVENUE, payment.platform_fee, currency),
        ],
        now=now,
        merchant_id=payment.merchant_id,
    )


async def record_stripe_fee(
    tx: LedgerSession, payment_id: int, stripe_fee: int, *, now: datetime
) -> None:
    """Book Stripe's processing fee once, as read from the charge's balance transaction."""
    payment = await tx.lock(Payment, payment_id)
    if stripe_fee < 0 or stripe_fee > payment.amount:
        raise InvalidAmount(f"stripe fee {stripe_fee} is outside 0..{payment.amount}")
    if payment.stripe_fee is not None:
        if payment.stripe_fee != stripe_fee:
            raise IllegalTransition(
                f"payment {payment_id} already has stripe fee {payment.stripe_fee}, "
                f"not {stripe_fee}: correct it with an adjusting entry"
            )
        return
    tx.update(payment, now=now, stripe_fee=stripe_fee)
    if stripe_fee:
        tx.post(
            f"payment:{payment_id}:stripe_fee",
            "stripe_fee",
            journal.two_legs(
                debit_account=accounts.STRIPE_FEES,
                credit_account=accounts.PLATFORM_PENDING,
                amount=stripe_fee,
                currency=payment.currency,
            ),
            now=now,
        )


async def release_funds(tx: LedgerSession, payment_id: int, *, now: datetime) -> bool:
    """The payment's net moved from Stripe's pending balance to available. False if it had
    already (nothing is booked twice)."""
    payment = await tx.lock(Payment, payment_id)
    if capture_status(payment.status) != "succeeded":
        raise IllegalTransition(f"payment {payment_id} is {payment.status}, not succeeded")
    if payment.stripe_fee is None:
        raise IllegalTransition(
            f"payment {payment_id} has no stripe fee yet: record its balance transaction first"
        )
    if payment.funds_available:
        return False
    tx.update(payment, now=now, funds_available=True)
    net = payment.amount - payment.stripe_fee
    tx.post(
        f"payment:{payment_id}:funds_available",
        "funds_available",
        journal.two_legs(
            debit_account=accounts.PLATFORM_AVAILABLE,
            credit_account=accounts.PLATFORM_PENDING,
            amount=net,
            currency=payment.currency,
        ),
        now=now,
    )
    return True


async def refresh_amount_refunded(tx: LedgerSession, payment_id: int, *, now: datetime) -> None:
    """Set what is refunded on the payment from its refunds that still hold money, so the
    number cannot drift whatever order refunds are created, fail or are canceled in."""
    payment = await get_payment(tx, payment_id)
    held = await tx.execute(
        select(func.coalesce(func.sum(refunds.c.amount), 0)).where(
            refunds.c.payment_id == payment_id, refunds.c.status.not_in(REFUND_RELEASED)
        )
    )
    amount_refunded = int(held.scalar_one())
    status = payment.status
    if capture_status(status) == "succeeded":  # refunds are a reading of captured payments
        status = status_after_refunds(payment.amount, amount_refunded)
    tx.update(payment, now=now, amount_refunded=amount_refunded, status=status)
