"""Accepting a refund ICPay makes (an operator, or the payment's merchant, asking): checks and
the pending refund with its journal entry in one serialised transaction, as for payouts; the
Stripe refund itself is the executor's.

Allowed for a paid payment, up to what is left to refund, when the merchant's balance covers
it (ICPay keeps its fee: a full refund debits the merchant the whole amount) and the
platform's available Stripe balance, less what is accepted and not yet seen spent, covers it
too. A payment Stripe converted from another currency is refunded in that currency, at the
day's rate: not from here.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.exc import IntegrityError

from reconciler.apply.context import ApplyContext
from reconciler.db.dialect import lock_platform_spending
from reconciler.errors import (
    IdempotencyConflict,
    InsufficientBalance,
    InsufficientPlatformBalance,
    InvalidAmount,
    InvalidRequest,
    NotRefundable,
)
from reconciler.ledger.balances import merchant_balance
from reconciler.ledger.payments import capture_status
from reconciler.ledger.refunds import create_refund
from reconciler.ledger.requests import RequestKey, made_for
from reconciler.ledger.rows import Payment, Refund
from reconciler.ledger.session import LedgerSession, ledger_reader, ledger_session
from reconciler.money import check_positive
from reconciler.paths.payouts import committed
from reconciler.paths.platform_balance import BalanceRefresher

REASONS = ("duplicate", "fraudulent", "requested_by_customer")


class RefundRequests:
    def __init__(
        self,
        context: ApplyContext,
        balances: BalanceRefresher,
        wake_executor: Callable[[], None] = lambda: None,
    ) -> None:
        self._context = context
        self._balances = balances
        self.wake_executor = wake_executor

    async def request(
        self,
        *,
        payment_id: int,
        amount: int | None,
        reason: str | None,
        request: RequestKey,
    ) -> tuple[Refund, bool]:
        """Accept a refund (pending, its amount taken from the merchant's balance) or refuse
        it saying why. A repeat of an accepted request answers with its refund (and False)."""
        repeated = await self._repeated(request)
        if repeated is not None:
            return repeated, False
        try:
            refund, new = await self._accept(payment_id, amount, reason, request)
        except IntegrityError:
            repeated = await self._repeated(request)
            if repeated is None:
                raise
            return repeated, False
        if new:
            self.wake_executor()
        return refund, new

    async def _repeated(self, request: RequestKey) -> Refund | None:
        async with ledger_reader(self._context.db) as tx:
            return await self._made(tx, request)

    async def _made(self, tx: LedgerSession, request: RequestKey) -> Refund | None:
        refund = await made_for(tx, Refund, request)
        if refund is not None and refund.request_digest != request.digest:
            raise IdempotencyConflict(
                f"Idempotency-Key {request.key!r} was used for another request "
                f"(refund {refund.id}): use a new key for a new refund"
            )
        return refund

    async def _accept(
        self, payment_id: int, amount: int | None, reason: str | None, request: RequestKey
    ) -> tuple[Refund, bool]:
        if reason is not None and reason not in REASONS:
            raise InvalidRequest(f"reason must be one of {', '.join(REASONS)}", param="reason")
        async with ledger_reader(self._context.db) as tx:
            currency = (await tx.get(Payment, payment_id)).currency
        platform = await self._balances.refresh(currency)
        async with ledger_session(self._context.db) as tx:
            payment = await tx.lock(Payment, payment_id)
            made = await self._made(tx, request)  # the same key at the same moment
            if made is not None:
                return made, False
            _refundable(payment)
            left = payment.amount - payment.amount_refunded
            wanted = left if amount is None else amount
            check_positive(wanted, "refund amount")
            if wanted > left:
                raise InvalidAmount(
                    f"payment {payment.id} has {left} {payment.currency} left to refund, "
                    f"not {wanted}"
                )
            owed = await merchant_balance(tx, payment.merchant_id, payment.currency)
            if wanted > owed:
                raise InsufficientBalance(
                    f"merchant {payment.merchant_id} balance {owed} does not cover refund {wanted}"
                )
            await lock_platform_spending(tx)
            spendable = platform.available - await committed(tx, platform)
            if wanted > spendable:
                raise InsufficientPlatformBalance(
                    f"the platform's available Stripe balance covers {max(spendable, 0)} "
                    f"{payment.currency} after what is already accepted: not {wanted}"
                )
            refund_id = await create_refund(
                tx,
                payment_id=payment.id,
                amount=wanted,
                now=self._context.clock(),
                source="api",
                reason=reason,
                request=request,
            )
            return await tx.get(Refund, refund_id), True


def _refundable(payment: Payment) -> None:
    if capture_status(payment.status) != "succeeded":
        raise NotRefundable(f"payment {payment.id} is {payment.status}: nothing to refund")
    if payment.amount_refunded >= payment.amount:
        raise NotRefundable(f"payment {payment.id} is refunded in full already")
    if payment.presentment_currency is not None:
        raise NotRefundable(
            f"payment {payment.id} was paid in {payment.presentment_currency} and converted: "
            "refund it in the Stripe Dashboard (its refund is booked from Stripe's word)"
        )
