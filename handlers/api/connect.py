"""A merchant's Stripe Connect account: connect and onboard, a fresh link, disconnect, and
what Stripe says the account can do."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import Field

from handlers.api.accounts import ACCOUNT, ConnectStatus, visible_merchant
from handlers.api.endpoints import Call, Endpoint
from handlers.api.models import Answer, Body, Query
from reconciler.ledger.rows import Merchant
from reconciler.ledger.session import ledger_reader
from reconciler.paths.connect import OnboardingLink


class ConnectRequest(Body):
    country: str = Field(
        min_length=2, max_length=2, description="ISO 3166-1 code of the merchant's country"
    )


class ConnectQuery(Query):
    refresh: bool = Field(False, description="ask Stripe now rather than the last applied")


class StripeConnect(Answer):
    account_id: int
    stripe_account_id: str | None
    connect: ConnectStatus


class Onboarding(StripeConnect):
    url: str = Field(description="Stripe's hosted onboarding: open it in a new tab")
    expires_at: datetime = Field(description="the link works once, until then")
    created_account: bool


class Disconnected(StripeConnect):
    disconnected_stripe_account_id: str


def _state(merchant: Merchant) -> StripeConnect:
    return StripeConnect(
        account_id=merchant.id,
        stripe_account_id=merchant.stripe_account_id,
        connect=ConnectStatus.of(merchant),
    )


def _onboarding(link: OnboardingLink) -> Onboarding:
    return Onboarding(
        **dict(_state(link.merchant)),
        url=link.url,
        expires_at=datetime.fromtimestamp(link.expires_at, UTC),
        created_account=link.created_account,
    )


async def _visible(call: Call) -> Merchant:
    async with ledger_reader(call.runtime.database) as tx:
        return await visible_merchant(tx, call.principal, call.path["account_id"])


async def connect_account(call: Call) -> Onboarding:
    merchant = await _visible(call)
    body: ConnectRequest = call.body
    return _onboarding(await call.runtime.onboarding.connect(merchant.id, body.country))


async def fresh_onboarding_link(call: Call) -> Onboarding:
    merchant = await _visible(call)
    return _onboarding(await call.runtime.onboarding.fresh_link(merchant.id))


async def disconnect_account(call: Call) -> Disconnected:
    merchant = await _visible(call)
    merchant, left = await call.runtime.onboarding.disconnect(merchant.id)
    return Disconnected(**dict(_state(merchant)), disconnected_stripe_account_id=left)


async def get_stripe_connect(call: Call) -> StripeConnect:
    merchant = await _visible(call)
    query: ConnectQuery = call.query
    if query.refresh:
        merchant = await call.runtime.onboarding.refresh(merchant.id)
    return _state(merchant)


CONNECT = "/accounts/{account_id}/stripe/connect"
ENDPOINTS = [
    Endpoint(
        "POST",
        CONNECT,
        connect_account,
        "Connect a Stripe Express account (made if needed) and get a link to onboard",
        Onboarding,
        body=ConnectRequest,
        path_params=ACCOUNT,
        errors=("stripe_unavailable",),
    ),
    Endpoint(
        "POST",
        CONNECT + "/link",
        fresh_onboarding_link,
        "A fresh link to Stripe's hosted pages: finish onboarding, or edit the account",
        Onboarding,
        path_params=ACCOUNT,
        errors=("stripe_unavailable",),
    ),
    Endpoint(
        "DELETE",
        CONNECT,
        disconnect_account,
        "Disconnect on ICPay's side (the Stripe account stays; history and balance stay)",
        Disconnected,
        path_params=ACCOUNT,
    ),
    Endpoint(
        "GET",
        CONNECT,
        get_stripe_connect,
        "What Stripe last said the connected account can do, and still needs",
        StripeConnect,
        path_params=ACCOUNT,
        query=ConnectQuery,
    ),
]
