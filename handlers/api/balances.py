"""The platform's Stripe balance, as Stripe last reported it."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from handlers.api.endpoints import STAFF, Call, Endpoint
from handlers.api.models import Answer, Query

CURRENCY = "usd"


class PlatformBalanceQuery(Query):
    refresh: bool = Field(False, description="read it from Stripe now rather than the newest")


class PlatformBalanceAnswer(Answer):
    currency: str
    available: int = Field(description="spendable by transfers and refunds; may be negative")
    pending: int
    refreshed_at: datetime = Field(description="when Stripe reported these figures")


async def get_platform_balance(call: Call) -> PlatformBalanceAnswer:
    query: PlatformBalanceQuery = call.query
    balances = call.runtime.balances
    balance = await (balances.refresh if query.refresh else balances.newest)(CURRENCY)
    return PlatformBalanceAnswer(
        currency=balance.currency,
        available=balance.available,
        pending=balance.pending,
        refreshed_at=balance.as_of,
    )


ENDPOINTS = [
    Endpoint(
        "GET",
        "/balances/platform",
        get_platform_balance,
        "The platform's Stripe balance (the newest snapshot, or read now with refresh=true)",
        PlatformBalanceAnswer,
        roles=STAFF,
        query=PlatformBalanceQuery,
        errors=("stripe_unavailable",),
    ),
]
