"""Payouts: a merchant's share paid out as a Stripe Connect transfer.

`POST /payouts` needs an `Idempotency-Key`: the same key with the same body answers with the
payout it made; with another body it is `idempotency_conflict`. An accepted payout is
executed at once (after its transaction, by the executor, which also finishes whatever a
crash or an outage left): `201` with its state (`completed`, or `failed` with Stripe's
reason), or `202` while Stripe has not answered (it stays `processing` and is retried with
the same key).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from handlers.api.accounts import visible_merchant
from handlers.api.endpoints import Call, Endpoint
from handlers.api.errors import ApiError
from handlers.api.idempotency import execute_accepted, idempotency_key
from handlers.api.models import Answer, Body, Id, MinorUnits, Page, PageQuery
from handlers.api.rows import page_of, visible_row
from reconciler.db.tables import payouts
from reconciler.ledger.payouts import advance_payout
from reconciler.ledger.rows import Payout
from reconciler.ledger.session import LedgerSession, ledger_reader, ledger_session
from reconciler.money import LEDGER_FOR_CURRENCY
from reconciler.types import utcnow


class PayoutCreate(Body):
    account_id: Id
    amount: MinorUnits
    currency: str = Field(min_length=3, max_length=3, pattern="^[a-z]{3}$")
    ledger: str = Field("stripe_usd", description="the merchant balance it is paid from")


class PayoutAnswer(Answer):
    id: int
    account_id: int
    amount: int
    currency: str
    ledger: str
    status: str
    stripe_transfer_id: str | None
    destination: str | None
    amount_reversed: int
    failure_message: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, payout: Payout) -> PayoutAnswer:
        return cls(
            id=payout.id,
            account_id=payout.merchant_id,
            amount=payout.amount,
            currency=payout.currency,
            ledger=LEDGER_FOR_CURRENCY.get(payout.currency, payout.currency),
            status=payout.status,
            stripe_transfer_id=payout.stripe_transfer_id,
            destination=payout.destination,
            amount_reversed=payout.amount_reversed,
            failure_message=payout.failure_message,
            created_at=payout.created_at,
            updated_at=payout.updated_at,
        )


class PayoutQuery(PageQuery):
    account_id: Id | None = None
    status: (
        Literal[
            "pending",
            "processing",
            "completed",
            "failed",
            "cancelled",
            "amount_reversed",
            "reversed",
        ]
        | None
    ) = None


async def _payout(tx: LedgerSession, call: Call, payout_id: int) -> Payout:
    return await visible_row(tx, call.principal, Payout, payout_id, param="payout_id")


async def create_payout(call: Call) -> tuple[int, PayoutAnswer]:
    body: PayoutCreate = call.body
    request = idempotency_key(call, body.model_dump_json(), merchant_id=body.account_id)
    payout_requests = call.runtime.payouts
    # One read: may this caller see the account, and did this key make a payout already?
    async with ledger_reader(call.runtime.database) as tx:
        await visible_merchant(tx, call.principal, body.account_id)
        repeated = await payout_requests.made(tx, request)
    if repeated is not None:
        payout, new = repeated, False
    else:
        payout, new = await payout_requests.accept(
            merchant_id=body.account_id,
            amount=body.amount,
            currency=body.currency,
            ledger=body.ledger,
            request=request,
        )
    if new:
        await execute_accepted(call.runtime.executor.execute, payout.id)
        async with ledger_reader(call.runtime.database) as tx:
            payout = await tx.get(Payout, payout.id)
    if payout.status in ("pending", "processing"):
        return 202, PayoutAnswer.of(payout)
    return (201 if new else 200), PayoutAnswer.of(payout)


async def get_payout(call: Call) -> PayoutAnswer:
    async with ledger_reader(call.runtime.database) as tx:
        return PayoutAnswer.of(await _payout(tx, call, call.path["payout_id"]))


async def list_payouts(call: Call) -> Page[PayoutAnswer]:
    query: PayoutQuery = call.query
    filters = []
    if query.status is not None:
        filters.append(payouts.c.status == query.status)
    if query.account_id is not None:
        filters.append(payouts.c.merchant_id == query.account_id)
    async with ledger_reader(call.runtime.database) as tx:
        found, more = await page_of(tx, call.principal, Payout, query, *filters)
    return Page[PayoutAnswer](data=[PayoutAnswer.of(payout) for payout in found], has_more=more)


async def cancel_payout(call: Call) -> PayoutAnswer:
    """Only while pending: once the executor has it, Stripe may already have the transfer."""
    async with ledger_session(call.runtime.database) as tx:
        payout = await _payout(tx, call, call.path["payout_id"])
        if payout.status != "pending":
            raise ApiError(
                "illegal_transition",
                f"payout {payout.id} is {payout.status}: only a pending payout can be cancelled",
            )
        await advance_payout(tx, payout.id, "cancelled", now=utcnow())
        payout = await tx.get(Payout, payout.id)
    return PayoutAnswer.of(payout)


PAYOUT = {"payout_id": int}
ENDPOINTS = [
    Endpoint(
        "POST",
        "/payouts",
        create_payout,
        "Pay a merchant's balance out to its connected account (Idempotency-Key required)",
        PayoutAnswer,
        status=201,
        idempotency_key="required",
        body=PayoutCreate,
        errors=(
            "not_found",
            "connect_not_ready",
            "insufficient_platform_balance",
            "insufficient_merchant_balance",
            "idempotency_conflict",
            "invalid_amount",
            "stripe_unavailable",
        ),
    ),
    Endpoint(
        "GET",
        "/payouts",
        list_payouts,
        "List payouts, newest first (a merchant token sees its own)",
        Page[PayoutAnswer],
        query=PayoutQuery,
    ),
    Endpoint(
        "GET",
        "/payouts/{payout_id}",
        get_payout,
        "A payout and where it stands",
        PayoutAnswer,
        path_params=PAYOUT,
    ),
    Endpoint(
        "POST",
        "/payouts/{payout_id}/cancel",
        cancel_payout,
        "Cancel a payout still pending (its amount goes back to the merchant's balance)",
        PayoutAnswer,
        path_params=PAYOUT,
        errors=("illegal_transition",),
    ),
]
