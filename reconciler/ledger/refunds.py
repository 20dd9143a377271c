"""Refunds against a payment, made through ICPay (`api`) or in the Stripe Dashboard.

A refund holds the merchant's money from the moment it exists (Stripe takes it from the
platform balance at once); if it fails or is canceled, the amount is given back.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from reconciler.db.engine import lock_merchant
from reconciler.db.tables import refunds
from reconciler.errors import IllegalTransition, InsufficientBalance, RefundExceedsPayment
from reconciler.ledger import accounts, journal
from reconciler.ledger._rows import get_row, update_row
from reconciler.ledger.balances import merchant_balance
from reconciler.ledger.payments import capture_status, get_payment, set_amount_refunded
from reconciler.ledger.transitions import REFUND, REFUND_RELEASED, Decision
from reconciler.money import check_positive

SOURCES = ("api", "dashboard")


async def create_refund(
    conn: AsyncConnection,
    *,
    payment_id: int,
    amount: int,
    now: datetime,
    source: str = "api",
    stripe_refund_id: str | None = None,
    reason: str | None = None,
    require_balance: bool = True,
) -> int:
    """Record a pending refund and take its amount from the merchant's balance.

    `require_balance=False` is for refunds Stripe already made (the Dashboard): they are facts
    to record even when they leave the merchant short; the reconciler reports that.
    """
    check_positive(amount, "refund amount")
    if source not in SOURCES:
        raise ValueError(f"refund source must be one of {SOURCES}, got {source!r}")
    payment = await get_payment(conn, payment_id)
    await lock_merchant(conn, payment.merchant_id)
    payment = await get_payment(conn, payment_id)  # re-read under the lock
    if capture_status(payment.status) != "succeeded":
        raise IllegalTransition(f"payment {payment_id} is {payment.status}: nothing to refund")
    refundable = payment.amount - payment.amount_refunded
    if amount > refundable:
        raise RefundExceedsPayment(
            f"refund of {amount} exceeds the {refundable} left to refund on payment {payment_id}"
        )
    if require_balance:
        balance = await merchant_balance(conn, payment.merchant_id, payment.currency)
        if amount > balance:
            raise InsufficientBalance(
                f"merchant {payment.merchant_id} balance {balance} does not cover refund {amount}"
            )
    result = await conn.execute(
        refunds.insert()
        .values(
            payment_id=payment_id,
            merchant_id=payment.merchant_id,
            stripe_refund_id=stripe_refund_id,
            currency=payment.currency,
            amount=amount,
            status="pending",
            source=source,
            reason=reason,
            created_at=now,
            updated_at=now,
        )
        .returning(refunds.c.id)
    )
    refund_id = int(result.scalar_one())
    await set_amount_refunded(conn, payment, payment.amount_refunded + amount, now=now)
    await journal.post(
        conn,
        f"refund:{refund_id}:booked",
        "refund_booked",
        journal.two_legs(
            debit_account=accounts.merchant_payable(payment.merchant_id),
            credit_account=accounts.PLATFORM_AVAILABLE,
            amount=amount,
            currency=payment.currency,
        ),
        now=now,
        merchant_id=payment.merchant_id,
    )
    return refund_id


async def get_refund(conn: AsyncConnection, refund_id: int) -> Row[Any]:
    return await get_row(conn, refunds, refund_id)


async def advance_refund(
    conn: AsyncConnection,
    refund_id: int,
    status: str,
    *,
    now: datetime,
    failure_reason: str | None = None,
    from_snapshot: bool = False,
) -> Decision:
    """Move a refund along Stripe's lifecycle; a failure or cancellation gives the money back."""
    refund = await get_refund(conn, refund_id)
    decision = REFUND.decide(refund.status, status)
    if decision is Decision.STALE and not from_snapshot:
        REFUND.require(refund.status, status)
    if decision is not Decision.MOVE:
        return decision
    await update_row(
        conn,
        refunds,
        refund_id,
        now=now,
        status=status,
        failure_reason=failure_reason or refund.failure_reason,
    )
    if status in REFUND_RELEASED:
        await _give_back(conn, refund, now=now)
    return decision


async def _give_back(conn: AsyncConnection, refund: Row[Any], *, now: datetime) -> None:
    payment = await get_payment(conn, refund.payment_id)
    await set_amount_refunded(conn, payment, payment.amount_refunded - refund.amount, now=now)
    await journal.post(
        conn,
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
