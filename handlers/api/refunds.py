"""Refunds ICPay makes: against a paid payment, up to what is left, with the balance checks
of payouts; the Stripe refund follows Stripe's lifecycle (pending, requires_action,
succeeded, failed, canceled) through the same apply functions the webhooks use.

Like payouts, `POST` needs an `Idempotency-Key` and executes at once: `201` with the refund
as Stripe left it, `202` while Stripe has not answered (retried with the key `refund:<id>`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from handlers.api.endpoints import Call, Endpoint
from handlers.api.idempotency import execute_accepted, idempotency_key
from handlers.api.models import Answer, Body, Id, MinorUnits, Page, PageQuery
from handlers.api.rows import page_of, visible_row
from reconciler.db.tables import refunds
from reconciler.ledger.rows import Payment, Refund
from reconciler.ledger.session import ledger_reader


class RefundCreate(Body):
    amount: MinorUnits | None = Field(None, description="default: all that is left")
    reason: Literal["duplicate", "fraudulent", "requested_by_customer"] | None = None


class RefundAnswer(Answer):
    id: int
    payment_id: int
    account_id: int
    amount: int
    currency: str
    status: str = Field(description="pending, requires_action, succeeded, failed or canceled")
    source: str = Field(description="api (made through ICPay) or dashboard (made at Stripe)")
    reason: str | None
    stripe_refund_id: str | None
    failure_reason: str | None
    failure_message: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, refund: Refund) -> RefundAnswer:
        return cls(
            id=refund.id,
            payment_id=refund.payment_id,
            account_id=refund.merchant_id,
            amount=refund.amount,
            currency=refund.currency,
            status=refund.status,
            source=refund.source,
            reason=refund.reason,
            stripe_refund_id=refund.stripe_refund_id,
            failure_reason=refund.failure_reason,
            failure_message=refund.failure_message,
            created_at=refund.created_at,
            updated_at=refund.updated_at,
        )


class RefundQuery(PageQuery):
    payment_id: Id | None = None


async def create_refund(call: Call) -> tuple[int, RefundAnswer]:
    body: RefundCreate = call.body
    payment_id = call.path["payment_id"]
    async with ledger_reader(call.runtime.database) as tx:
        payment = await visible_row(tx, call.principal, Payment, payment_id, param="payment_id")
    request = idempotency_key(
        call, f"{payment_id}:{body.model_dump_json()}", merchant_id=payment.merchant_id
    )
    refund, new = await call.runtime.refunds.request(
        payment_id=payment_id, amount=body.amount, reason=body.reason, request=request
    )
    if new:
        await execute_accepted(call.runtime.executor.execute_refund, refund.id)
    async with ledger_reader(call.runtime.database) as tx:
        refund = await tx.get(Refund, refund.id)
    if refund.stripe_refund_id is None and refund.status == "pending":
        return 202, RefundAnswer.of(refund)
    return (201 if new else 200), RefundAnswer.of(refund)


async def get_refund(call: Call) -> RefundAnswer:
    async with ledger_reader(call.runtime.database) as tx:
        refund_id = call.path["refund_id"]
        refund = await visible_row(tx, call.principal, Refund, refund_id, param="refund_id")
    return RefundAnswer.of(refund)


async def list_refunds(call: Call) -> Page[RefundAnswer]:
    query: RefundQuery = call.query
    filters = [] if query.payment_id is None else [refunds.c.payment_id == query.payment_id]
    async with ledger_reader(call.runtime.database) as tx:
        found, more = await page_of(tx, call.principal, Refund, query, *filters)
    return Page[RefundAnswer](data=[RefundAnswer.of(refund) for refund in found], has_more=more)


ENDPOINTS = [
    Endpoint(
        "POST",
        "/payments/{payment_id}/refunds",
        create_refund,
        "Refund (part of) a paid payment (Idempotency-Key required)",
        RefundAnswer,
        status=201,
        idempotency_key="required",
        body=RefundCreate,
        path_params={"payment_id": int},
        errors=(
            "not_refundable",
            "invalid_amount",
            "insufficient_merchant_balance",
            "insufficient_platform_balance",
            "idempotency_conflict",
            "stripe_unavailable",
        ),
    ),
    Endpoint(
        "GET",
        "/refunds",
        list_refunds,
        "List refunds, newest first (a merchant token sees its own)",
        Page[RefundAnswer],
        query=RefundQuery,
    ),
    Endpoint(
        "GET",
        "/refunds/{refund_id}",
        get_refund,
        "A refund and where it stands",
        RefundAnswer,
        path_params={"refund_id": int},
    ),
]
