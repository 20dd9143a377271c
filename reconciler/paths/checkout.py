"""Checkout: a payment for a merchant, and the PaymentIntent its customer confirms.

Our row first, then Stripe. The pending payment (its merchant locked, its platform fee fixed
as `create_payment` computes it) is committed before the PaymentIntent is made, with the
idempotency key `payment:<id>` and `icpay_payment_id` / `icpay_account_id` in its metadata;
the intent is then applied as its webhook would be, which stores its id on the payment. A
crash between Stripe's answer and that store loses nothing: a retry for the same payment gets
the same intent (same key), and the intent's own events claim the payment by its metadata.

A request Stripe does not answer (503) leaves its payment pending with no intent. Without an
Idempotency-Key, asking again makes a new payment: acceptable, because no money moved: the
customer never got the first one's client secret, so nothing can confirm it (and if Stripe
made that intent after all, its events attribute it to the first payment, which stays
pending). With a key, the repeat reuses the payment and so its Stripe idempotency key.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError

from reconciler.apply.context import ApplyContext
from reconciler.apply.payments import apply_payment_intent
from reconciler.errors import (
    ConnectNotReady,
    IdempotencyConflict,
    IllegalTransition,
    InvalidRequest,
)
from reconciler.gateway import GatewayError, StripeGateway
from reconciler.ledger.payments import create_payment
from reconciler.ledger.requests import RequestKey, made_for
from reconciler.ledger.rows import Payment
from reconciler.ledger.session import ledger_reader, ledger_session
from reconciler.money import CURRENCY_EXPONENTS, is_booked
from reconciler.types import StripeObject

# Stripe's limits on one charge, in minor units: refused here, with a clear reason, before a
# payment is recorded, rather than by Stripe after.
MINIMUM_CHARGE = {"usd": 50}
MAXIMUM_CHARGE = 99_999_999


@dataclass(frozen=True, slots=True)
class StartedCheckout:
    payment: Payment
    client_secret: str
    created: bool  # False: a repeat of a request already made (its Idempotency-Key)


class Checkout:
    def __init__(self, context: ApplyContext, gateway: StripeGateway, dashboard_url: str) -> None:
        self._context = context
        self._gateway = gateway
        self._settings_url = f"{dashboard_url}/settings"

    async def start(
        self,
        *,
        merchant_id: int,
        amount: int,
        currency: str,
        request: RequestKey | None = None,
    ) -> StartedCheckout:
        """A pending payment of `amount` `currency` for the merchant and its PaymentIntent.
        With `request`, a repeat of a request already made answers with its payment and
        intent; the same key for another request is `IdempotencyConflict`."""
        currency = _currency(currency)
        _check_amount(amount, currency)
        payment = await self._repeated(request) if request is not None else None
        created = payment is None
        if payment is None:
            try:
                payment = await self._record(merchant_id, amount, currency, request)
            except IntegrityError:
                # The same key, at the same moment, by the same caller: one request won.
                payment = await self._repeated(request) if request is not None else None
                if payment is None:
                    raise
                created = False
        intent = await self._intent(payment)
        return StartedCheckout(
            await self._attach(payment, intent), intent["client_secret"], created
        )

    async def _repeated(self, request: RequestKey) -> Payment | None:
        async with ledger_reader(self._context.db) as tx:
            payment = await made_for(tx, Payment, request)
        if payment is not None and payment.request_digest != request.digest:
            raise IdempotencyConflict(
                f"Idempotency-Key {request.key!r} was used for another request "
                f"(payment {payment.id}): use a new key for a new payment"
            )
        return payment

    async def _record(
        self, merchant_id: int, amount: int, currency: str, request: RequestKey | None
    ) -> Payment:
        async with ledger_session(self._context.db) as tx:
            merchant = await tx.lock_merchant(merchant_id)
            if merchant.connect_status == "deauthorized":
                # Its share could never be paid out: it would only be owed (and reported).
                raise ConnectNotReady(
                    f"merchant {merchant_id} disconnected {merchant.stripe_account_id} from "
                    f"ICPay at Stripe: connect a new account in Settings ({self._settings_url}) "
                    "before taking payments"
                )
            payment_id = await create_payment(
                tx,
                merchant_id=merchant_id,
                amount=amount,
                currency=currency,
                fees=self._context.fees,
                now=self._context.clock(),
                request=request,
            )
            return await tx.get(Payment, payment_id)

    async def _intent(self, payment: Payment) -> StripeObject:
        try:
            if payment.payment_intent_id is not None:
                return await self._gateway.payment_intent(payment.payment_intent_id)
            # Stripe keeps an idempotency key 24 hours: a repeat later than that of a request
            # it never answered may make a second intent, never confirmable (no secret was
            # given out for the first) and reported by its events as the first's.
            return await self._gateway.create_payment_intent(
                amount=payment.amount,
                currency=payment.currency,
                metadata={
                    "icpay_payment_id": str(payment.id),
                    "icpay_account_id": str(payment.merchant_id),
                },
                idempotency_key=f"payment:{payment.id}",
            )
        except GatewayError as error:
            if error.refused_input:
                message = error.stripe_message or str(error)
                raise InvalidRequest(f"Stripe refused it: {message}", param=error.param) from error
            raise

    async def _attach(self, payment: Payment, intent: StripeObject) -> Payment:
        """Apply the intent as its webhook would: that stores its id on the payment."""
        await apply_payment_intent(self._context, intent)
        async with ledger_reader(self._context.db) as tx:
            payment = await tx.get(Payment, payment.id)
        if payment.payment_intent_id != intent["id"]:
            raise IllegalTransition(
                f"payment {payment.id} holds PaymentIntent {payment.payment_intent_id}, "
                f"not {intent['id']}"
            )
        return payment


def _currency(currency: str) -> str:
    if not is_booked(currency):
        booked = ", ".join(CURRENCY_EXPONENTS)
        raise InvalidRequest(
            f"currency {currency!r} is not one the ledger holds: use {booked}", param="currency"
        )
    return currency.lower()


def _check_amount(amount: int, currency: str) -> None:
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise InvalidRequest("amount must be a whole number of minor units", param="amount")
    minimum = MINIMUM_CHARGE.get(currency, 1)
    if amount < minimum:
        raise InvalidRequest(
            f"amount must be at least {minimum} {currency} minor units, Stripe's minimum "
            f"charge: not {amount}",
            param="amount",
        )
    if amount > MAXIMUM_CHARGE:
        raise InvalidRequest(
            f"amount must be at most {MAXIMUM_CHARGE} {currency} minor units, Stripe's "
            f"maximum charge: not {amount}",
            param="amount",
        )
