"""Merchant accounts: create, list, read, and each one's internal Stripe balance."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from handlers.api.endpoints import EVERYONE, STAFF, Call, Endpoint
from handlers.api.models import Answer, Body, Page, PageQuery
from handlers.api.rows import page_of, visible_row
from reconciler.ledger.balances import merchant_balance
from reconciler.ledger.merchants import create_merchant
from reconciler.ledger.rows import Merchant
from reconciler.ledger.session import LedgerSession, ledger_reader, ledger_session
from reconciler.money import LEDGER_FOR_CURRENCY
from reconciler.tokens import Principal
from reconciler.types import utcnow

CURRENCY = "usd"  # the one currency the ledger holds (the `stripe_usd` ledger)
EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


class AccountCreate(Body):
    name: str = Field(min_length=1, max_length=200, pattern=r"\S")
    email: str = Field(max_length=254, pattern=EMAIL)


class Requirements(Answer):
    currently_due: list[str]
    eventually_due: list[str]
    past_due: list[str]
    pending_verification: list[str]
    disabled_reason: str | None
    current_deadline: int | None


class ConnectStatus(Answer):
    status: str = Field(
        description="not_connected, onboarding, enabled, restricted or deauthorized"
    )
    charges_enabled: bool
    payouts_enabled: bool
    details_submitted: bool
    capabilities: dict[str, str]
    requirements: Requirements

    @classmethod
    def of(cls, merchant: Merchant) -> ConnectStatus:
        needs = merchant.requirements
        return cls(
            status=merchant.connect_status,
            charges_enabled=merchant.charges_enabled,
            payouts_enabled=merchant.payouts_enabled,
            details_submitted=merchant.details_submitted,
            capabilities=dict(merchant.capabilities),
            requirements=Requirements(
                currently_due=list(needs.get("currently_due", [])),
                eventually_due=list(needs.get("eventually_due", [])),
                past_due=list(needs.get("past_due", [])),
                pending_verification=list(needs.get("pending_verification", [])),
                disabled_reason=needs.get("disabled_reason"),
                current_deadline=needs.get("current_deadline"),
            ),
        )


class Account(Answer):
    id: int
    name: str
    email: str | None
    stripe_account_id: str | None
    connect: ConnectStatus
    created_at: datetime

    @classmethod
    def of(cls, merchant: Merchant) -> Account:
        return cls(
            id=merchant.id,
            name=merchant.name,
            email=merchant.email,
            stripe_account_id=merchant.stripe_account_id,
            connect=ConnectStatus.of(merchant),
            created_at=merchant.created_at,
        )


class AccountBalance(Answer):
    account_id: int
    ledger: str
    currency: str
    balance: int = Field(description="what ICPay owes the merchant, in minor units")
    as_of: datetime


async def visible_merchant(tx: LedgerSession, principal: Principal, merchant_id: int) -> Merchant:
    """The merchant, if this caller may see it; another merchant's account is as absent as one
    that does not exist, so ids cannot be probed."""
    return await visible_row(tx, principal, Merchant, merchant_id, param="account_id")


async def create_account(call: Call) -> tuple[int, Account]:
    body: AccountCreate = call.body
    async with ledger_session(call.runtime.database) as tx:
        merchant_id = await create_merchant(
            tx, name=body.name.strip(), email=body.email, now=utcnow()
        )
        merchant = await tx.get(Merchant, merchant_id)
    return 201, Account.of(merchant)


async def list_accounts(call: Call) -> Page[Account]:
    page: PageQuery = call.query
    async with ledger_reader(call.runtime.database) as tx:
        found, more = await page_of(tx, call.principal, Merchant, page)
    return Page[Account](data=[Account.of(merchant) for merchant in found], has_more=more)


async def get_account(call: Call) -> Account:
    async with ledger_reader(call.runtime.database) as tx:
        merchant = await visible_merchant(tx, call.principal, call.path["account_id"])
    return Account.of(merchant)


async def get_account_balance(call: Call) -> AccountBalance:
    async with ledger_reader(call.runtime.database) as tx:
        merchant = await visible_merchant(tx, call.principal, call.path["account_id"])
        balance = await merchant_balance(tx, merchant.id, CURRENCY)
        as_of = utcnow()
    return AccountBalance(
        account_id=merchant.id,
        ledger=LEDGER_FOR_CURRENCY[CURRENCY],
        currency=CURRENCY,
        balance=balance,
        as_of=as_of,
    )


ACCOUNT = {"account_id": int}
ENDPOINTS = [
    Endpoint(
        "POST",
        "/accounts",
        create_account,
        "Create a merchant account",
        Account,
        roles=STAFF,
        status=201,
        body=AccountCreate,
    ),
    Endpoint(
        "GET",
        "/accounts",
        list_accounts,
        "List merchant accounts (a merchant token sees its own), newest first",
        Page[Account],
        roles=EVERYONE,
        query=PageQuery,
    ),
    Endpoint(
        "GET",
        "/accounts/{account_id}",
        get_account,
        "A merchant account with its Connect status",
        Account,
        path_params=ACCOUNT,
    ),
    Endpoint(
        "GET",
        "/accounts/{account_id}/balance",
        get_account_balance,
        "The merchant's internal Stripe balance: what ICPay owes them",
        AccountBalance,
        path_params=ACCOUNT,
    ),
]
