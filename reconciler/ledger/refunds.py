"""Refunds against a payment, made through ICPay (`api`) or in the Stripe Dashboard.

A refund holds the merchant's money from the moment it exists (Stripe takes it from the
platform balance at once); if it fails or is canceled, the amount is given back.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from reconciler.db.tables import payments, refunds
from reconciler.errors import IllegalTransition, InsufficientBalance, RefundExceedsPayment
from reconciler.ledger import accounts, journal
from reconciler.ledger._rows import get_row, lock_row, update_row
from reconciler.ledger.balances import merchant_balance
from reconciler.ledger.payments import capture_status, refresh_amount_refunded
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
    status: str = "pending",
    failure_reason: str | None = None,
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
    payment = await lock_row(conn, payments, payment_id)
    if status in REFUND_RELEASED:
        refund_id = await _insert(
            conn, payment, amount, status, source, stripe_refund_id, reason, now, failure_reason
        )
        await _book(conn, refund_id, payment, amount, now=now)
        await _give_back(conn, await get_refund(conn, refund_id), now=now)
        return refund_id
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
    refund_id = await _insert(
        conn, payment, amount, "pending", source, stripe_refund_id, reason, now
    )
    await refresh_amount_refunded(conn, payment_id, now=now)
    await _book(conn, refund_id, payment, amount, now=now)
    return refund_id


async def _book(
    conn: AsyncConnection, refund_id: int, payment: Row[Any], amount: int, *, now: datetime
) -> None:
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


async def _insert(
    conn: AsyncConnection,
    payment: Row[Any],
    amount: int,
    status: str,
    source: str,
    stripe_refund_id: str | None,
    reason: str | None,
    now: datetime,
    failure_reason: str | None = None,
) -> int:
    result = await conn.execute(
        refunds.insert()
        .values(
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
        .returning(refunds.c.id)
    )
    return int(result.scalar_one())


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
    refund = await lock_row(conn, refunds, refund_id)
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
    await refresh_amount_refunded(conn, refund.payment_id, now=now)
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
