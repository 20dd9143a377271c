"""Refunds against a payment, made through ICPay (`api`) or in the Stripe Dashboard.

A refund holds the merchant's money from the moment it exists (Stripe takes it from the
platform balance at once); if it fails or is canceled, the amount is given back.
"""

from __future__ import annotations

from datetime import datetime

from reconciler.errors import IllegalTransition, InsufficientBalance, RefundExceedsPayment
from reconciler.ledger import accounts, journal
from reconciler.ledger.balances import merchant_balance
from reconciler.ledger.payments import capture_status, refresh_amount_refunded
from reconciler.ledger.requests import NO_REQUEST, RequestKey
from reconciler.ledger.rows import Payment, Refund
from reconciler.ledger.session import LedgerSession
from reconciler.ledger.transitions import REFUND, REFUND_RELEASED, Decision
from reconciler.money import check_positive

SOURCES = ("api", "dashboard")


async def create_refund(
    tx: LedgerSession,
    *,
    payment_id: int,
    amount: int,
    now: datetime,
    source: str = "api",
    stripe_refund_id: str | None = None,
    reason: str | None = None,
    require_balance: bool = True,
    status: str = "pending",
    failure_reason: str | None = None,
    request: RequestKey | None = None,
) -> int:
    """Record a pending refund and take its amount from the merchant's balance.

    `require_balance=False` is for refunds Stripe already made (the Dashboard): they are facts
    to record even when they leave the merchant short; the reconciler reports that. A refund
    first seen already failed or canceled (`status`) is recorded as it is, with nothing to
    check, and both halves booked: Stripe took the amount and gave it back (a `refund` and a
    `refund_failure` balance transaction), so the journal says the same whatever order the
    events came in.
    """
    check_positive(amount, "refund amount")
    if source not in SOURCES:
        raise ValueError(f"refund source must be one of {SOURCES}, got {source!r}")
    REFUND.check_known(status)
    payment = await tx.lock(Payment, payment_id)
    if status in REFUND_RELEASED:
        refund = await _insert(
            tx, payment, amount, status, source, stripe_refund_id, reason, now, failure_reason
        )
        _book(tx, refund, now=now)
        await _give_back(tx, refund, now=now)
        return refund.id
    if capture_status(payment.status) != "succeeded":
        raise IllegalTransition(f"payment {payment_id} is {payment.status}: nothing to refund")
    refundable = payment.amount - payment.amount_refunded
    if amount > refundable:
        raise RefundExceedsPayment(
            f"refund of {amount} exceeds the {refundable} left to refund on payment {payment_id}"
        )
    if require_balance:
        balance = await merchant_balance(tx, payment.merchant_id, payment.currency)
        if amount > balance:
            raise InsufficientBalance(
                f"merchant {payment.merchant_id} balance {balance} does not cover refund {amount}"
            )
    refund = await _insert(
        tx, payment, amount, "pending", source, stripe_refund_id, reason, now, request=request
    )
    await refresh_amount_refunded(tx, payment_id, now=now)
    _book(tx, refund, now=now)
    return refund.id


def _book(tx: LedgerSession, refund: Refund, *, now: datetime) -> None:
    tx.post(
        f"refund:{refund.id}:booked",
        "refund_booked",
        journal.two_legs(
            debit_account=accounts.merchant_payable(refund.merchant_id),
            credit_account=accounts.PLATFORM_AVAILABLE,
            amount=refund.amount,
            currency=refund.currency,
        ),
        now=now,
        merchant_id=refund.merchant_id,
    )


async def _insert(
    tx: LedgerSession,
    payment: Payment,
    amount: int,
    status: str,
    source: str,
    stripe_refund_id: str | None,
    reason: str | None,
    now: datetime,
    failure_reason: str | None = None,
    request: RequestKey | None = None,
) -> Refund:
    return await tx.insert(
        Refund,
        failure_message=None,
        **(request.columns() if request else NO_REQUEST),
        payment_id=payment.id,
        merchant_id=payment.merchant_id,
        stripe_refund_id=stripe_refund_id,
        currency=payment.currency,
        amount=amount,
        status=status,
        source=source,
        reason=reason,
        failure_reason=failure_reason,
        created_at=now,
        updated_at=now,
    )


async def get_refund(tx: LedgerSession, refund_id: int) -> Refund:
    return await tx.get(Refund, refund_id)


async def advance_refund(
    tx: LedgerSession,
    refund_id: int,
    status: str,
    *,
    now: datetime,
    failure_reason: str | None = None,
    from_snapshot: bool = False,
) -> Decision:
    """Move a refund along Stripe's lifecycle; a failure or cancellation gives the money back."""
    refund = await tx.lock(Refund, refund_id)
    decision = REFUND.step(refund.status, status, from_snapshot=from_snapshot)
    if decision is not Decision.MOVE:
        return decision
    tx.update(
        refund, now=now, status=status, failure_reason=failure_reason or refund.failure_reason
    )
    if status in REFUND_RELEASED:
        await _give_back(tx, refund, now=now)
    return decision


async def _give_back(tx: LedgerSession, refund: Refund, *, now: datetime) -> None:
    await refresh_amount_refunded(tx, refund.payment_id, now=now)
    tx.post(
        f"refund:{refund.id}:returned",
        "refund_returned",
        journal.two_legs(
            debit_account=accounts.PLATFORM_AVAILABLE,
            credit_account=accounts.merchant_payable(refund.merchant_id),
            amount=refund.amount,
            currency=refund.currency,
        ),
        now=now,
        merchant_id=refund.merchant_id,
    )
