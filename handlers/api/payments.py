"""Payments: checkout (a PaymentIntent for a merchant, for its customer to confirm with the
client secret), one payment with its refunds, and the list.

`POST /payments` takes an optional `Idempotency-Key`: the same key with the same body answers
with the payment and PaymentIntent it made (`200`, not `201`); with another body it is
`idempotency_conflict`. Without one, each request is a new payment.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Literal

from pydantic import Field
from sqlalchemy import select

from handlers.api.accounts import visible_merchant
from handlers.api.endpoints import Call, Endpoint
from handlers.api.idempotency import optional_idempotency_key
from handlers.api.models import Answer, Body, Id, Page, PageQuery
from handlers.api.rows import page_of, visible_row
from reconciler.db.tables import payments, refunds
from reconciler.ledger.rows import Payment, Refund
from reconciler.ledger.session import LedgerSession, ledger_reader

STATUSES = Literal[
    "pending",
    "processing",
    "succeeded",
    "failed",
    "canceled",
    "partially_refunded",
    "refunded",
]


class PaymentCreate(Body):
    account_id: Id = Field(description="the merchant the payment is for")
    amount: int = Field(ge=1, description="minor units (cents); Stripe's minimum is 50 usd")
    currency: str = Field(description="usd, the one currency the ledger holds")


class CheckoutAnswer(Answer):
    id: int
    account_id: int
    amount: int
    currency: str
    payment_intent_id: str
    client_secret: str = Field(description="for Stripe.js to confirm the PaymentIntent")
    status: str


class RefundSummary(Answer):
    id: int
    amount: int
    currency: str
    status: str
    source: str = Field(description="api, or dashboard: made in Stripe's Dashboard")
    created_at: datetime

    @classmethod
    def of(cls, refund: Refund) -> RefundSummary:
        return cls(
            id=refund.id,
            amount=refund.amount,
            currency=refund.currency,
            status=refund.status,
            source=refund.source,
            created_at=refund.created_at,
        )


class PaymentAnswer(Answer):
    id: int
    account_id: int
    amount: int
    currency: str
    platform_fee: int = Field(description="ICPay's fee: the merchant's share is the rest")
    stripe_fee: int | None = Field(description="Stripe's processing fee, once Stripe says it")
    amount_refunded: int
    status: str
    payment_intent_id: str | None
    created_at: datetime
    updated_at: datetime
    refunds: list[RefundSummary] = Field(description="oldest first")

    @classmethod
    def of(cls, payment: Payment, its_refunds: list[Refund]) -> PaymentAnswer:
        return cls(
            id=payment.id,
            account_id=payment.merchant_id,
            amount=payment.amount,
            currency=payment.currency,
            platform_fee=payment.platform_fee,
            stripe_fee=payment.stripe_fee,
            amount_refunded=payment.amount_refunded,
            status=payment.status,
            payment_intent_id=payment.payment_intent_id,
            created_at=payment.created_at,
            updated_at=payment.updated_at,
            refunds=[RefundSummary.of(refund) for refund in its_refunds],
        )


class PaymentQuery(PageQuery):
    account_id: Id | None = None
    status: STATUSES | None = None


async def _refunds_of(tx: LedgerSession, payment_ids: list[int]) -> dict[int, list[Refund]]:
    found: dict[int, list[Refund]] = defaultdict(list)
    if not payment_ids:
        return found
    rows = await tx.execute(
        select(refunds).where(refunds.c.payment_id.in_(payment_ids)).order_by(refunds.c.id)
    )
    for row in rows:
        refund = Refund.from_mapping(dict(row._mapping))
        found[refund.payment_id].append(refund)
    return found


async def create_payment(call: Call) -> tuple[int, CheckoutAnswer]:
    body: PaymentCreate = call.body
    request = optional_idempotency_key(call, body.model_dump_json(), merchant_id=body.account_id)
    async with ledger_reader(call.runtime.database) as tx:
        await visible_merchant(tx, call.principal, body.account_id)
    started = await call.runtime.checkout.start(
        merchant_id=body.account_id, amount=body.amount, currency=body.currency, request=request
    )
    payment = started.payment
    assert payment.payment_intent_id is not None
    answer = CheckoutAnswer(
        id=payment.id,
        account_id=payment.merchant_id,
        amount=payment.amount,
        currency=payment.currency,
        payment_intent_id=payment.payment_intent_id,
        client_secret=started.client_secret,
        status=payment.status,
    )
    return (201 if started.created else 200), answer


async def get_payment(call: Call) -> PaymentAnswer:
    payment_id = call.path["payment_id"]
    async with ledger_reader(call.runtime.database) as tx:
        payment = await visible_row(tx, call.principal, Payment, payment_id, param="payment_id")
        its_refunds = await _refunds_of(tx, [payment.id])
    return PaymentAnswer.of(payment, its_refunds[payment.id])


async def list_payments(call: Call) -> Page[PaymentAnswer]:
    query: PaymentQuery = call.query
    filters = []
    if query.status is not None:
        filters.append(payments.c.status == query.status)
    if query.account_id is not None:
        filters.append(payments.c.merchant_id == query.account_id)
    async with ledger_reader(call.runtime.database) as tx:
        if query.account_id is not None:
            await visible_merchant(tx, call.principal, query.account_id)
        found, more = await page_of(tx, call.principal, Payment, query, *filters)
        its_refunds = await _refunds_of(tx, [payment.id for payment in found])
    return Page[PaymentAnswer](
        data=[PaymentAnswer.of(payment, its_refunds[payment.id]) for payment in found],
        has_more=more,
    )


PAYMENT = {"payment_id": int}
ENDPOINTS = [
    Endpoint(
        "POST",
        "/payments",
        create_payment,
        "Start a checkout: a payment and its PaymentIntent, for the customer to confirm "
        "(optional Idempotency-Key)",
        CheckoutAnswer,
        status=201,
        idempotency_key="optional",
        body=PaymentCreate,
        errors=("not_found", "connect_not_ready", "idempotency_conflict", "stripe_unavailable"),
    ),
    Endpoint(
        "GET",
        "/payments",
        list_payments,
        "List payments, newest first (a merchant token sees its own)",
        Page[PaymentAnswer],
        query=PaymentQuery,
        errors=("not_found",),
    ),
    Endpoint(
        "GET",
        "/payments/{payment_id}",
        get_payment,
        "A payment: its amount, fees, what is refunded, its status and its refunds",
        PaymentAnswer,
        path_params=PAYMENT,
    ),
]
