"""A merchant's Stripe Connect onboarding: connect (an Express account, made once), a fresh
link to Stripe's hosted pages, and disconnect (our side only).

Making the account is the one call here that creates money-bearing state at Stripe, so its
idempotency key is decided by what the ledger holds (the merchant, how many accounts it has
had, the country): a retry after a lost answer, or a second click racing the first, gets the
same account, and it is linked once. What Stripe then says of the account arrives through
`account.updated`, applied like any other.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from reconciler.apply.accounts import apply_account, apply_deauthorization
from reconciler.apply.context import ApplyContext
from reconciler.db.tables import connected_accounts
from reconciler.errors import InvalidRequest, NotFound
from reconciler.gateway import AccessRevoked, GatewayError, StripeGateway
from reconciler.ledger.connected_accounts import country_of, link_account, unlink_account
from reconciler.ledger.rows import Merchant
from reconciler.ledger.session import LedgerSession, ledger_reader, ledger_session
from reconciler.types import StripeObject


@dataclass(frozen=True, slots=True)
class OnboardingLink:
    merchant: Merchant
    url: str
    expires_at: int
    created_account: bool


class ConnectOnboarding:
    def __init__(self, context: ApplyContext, gateway: StripeGateway, dashboard_url: str) -> None:
        self._context = context
        self._gateway = gateway
        settings_page = f"{dashboard_url}/settings"
        self._return_url = f"{settings_page}?stripe=return"
        self._refresh_url = f"{settings_page}?stripe=refresh"

    async def connect(self, merchant_id: int, country: str) -> OnboardingLink:
        """Link an Express account in `country` (made if the merchant has none, or has one in
        another country whose onboarding is not submitted yet) and give a link to onboard."""
        country = _country(country)
        # The merchant and how many accounts it has had, read together under its lock: a
        # second click decides on the same state as the first, so it asks Stripe with the
        # same key (and gets the same account) or finds the account already linked.
        async with ledger_session(self._context.db) as tx:
            merchant = await tx.lock_merchant(merchant_id)
            generation = await _accounts_had(tx, merchant.id)
        account_id = merchant.stripe_account_id
        if account_id is not None and merchant.connect_status != "deauthorized":
            linked_country = await self._country(account_id)
            if linked_country == country:
                return await self._link(merchant, created=False)
            if merchant.details_submitted:
                raise InvalidRequest(
                    f"the connected account is in {linked_country} and its onboarding is "
                    "submitted: its country can no longer change",
                    param="country",
                )
        account = await self._create_account(merchant, country, generation)
        async with ledger_session(self._context.db) as tx:
            await link_account(
                tx, merchant.id, account["id"], country=country, now=self._context.clock()
            )
        await apply_account(self._context, account)
        return await self._link(await self._merchant(merchant_id), created=True)

    async def fresh_link(self, merchant_id: int) -> OnboardingLink:
        """A new link for the linked account: to finish onboarding, or to update it."""
        merchant = await self._merchant(merchant_id)
        if merchant.stripe_account_id is None:
            raise NotFound(f"merchant {merchant_id} has no connected account: connect first")
        if merchant.connect_status == "deauthorized":
            raise InvalidRequest(
                f"merchant {merchant_id} disconnected {merchant.stripe_account_id} from ICPay "
                "at Stripe: connect a new account"
            )
        return await self._link(merchant, created=False)

    async def refresh(self, merchant_id: int) -> Merchant:
        """What Stripe says of the linked account now, applied as `account.updated` is."""
        merchant = await self._merchant(merchant_id)
        if merchant.stripe_account_id is None or merchant.connect_status == "deauthorized":
            return merchant
        try:
            account = await self._gateway.account(merchant.stripe_account_id)
        except AccessRevoked:
            await apply_deauthorization(self._context, merchant.stripe_account_id)
        else:
            await apply_account(self._context, account)
        return await self._merchant(merchant_id)

    async def disconnect(self, merchant_id: int) -> tuple[Merchant, str]:
        """Clear the link on our side (the account stays at Stripe; history and balance stay
        here). Returns the merchant and the account left behind."""
        async with ledger_session(self._context.db) as tx:
            left = await unlink_account(tx, merchant_id, now=self._context.clock())
            merchant = await tx.get(Merchant, merchant_id)
        if left is None:
            raise NotFound(f"merchant {merchant_id} has no connected account")
        return merchant, left

    async def _merchant(self, merchant_id: int) -> Merchant:
        async with ledger_reader(self._context.db) as tx:
            return await tx.get(Merchant, merchant_id)

    async def _country(self, account_id: str) -> str:
        async with ledger_reader(self._context.db) as tx:
            known = await country_of(tx, account_id)
        if known is not None:
            return known
        account = await self._gateway.account(account_id)
        return str(account.get("country") or "").upper()

    async def _create_account(
        self, merchant: Merchant, country: str, generation: int
    ) -> StripeObject:
        try:
            return await self._gateway.create_express_account(
                merchant_id=merchant.id,
                country=country,
                email=merchant.email,
                idempotency_key=f"merchant:{merchant.id}:account:{generation}:{country}",
            )
        except GatewayError as error:
            raise _refused(error) from error

    async def _link(self, merchant: Merchant, *, created: bool) -> OnboardingLink:
        assert merchant.stripe_account_id is not None
        try:
            link = await self._gateway.create_account_link(
                merchant.stripe_account_id,
                refresh_url=self._refresh_url,
                return_url=self._return_url,
                update=merchant.details_submitted,
            )
        except GatewayError as error:
            raise _refused(error) from error
        return OnboardingLink(merchant, str(link["url"]), int(link["expires_at"]), created)


async def _accounts_had(tx: LedgerSession, merchant_id: int) -> int:
    query = select(func.count()).where(connected_accounts.c.merchant_id == merchant_id)
    return int((await tx.execute(query)).scalar_one())


def _country(country: str) -> str:
    code = country.strip().upper()
    if len(code) != 2 or not code.isalpha() or not code.isascii():
        raise InvalidRequest("country must be a two-letter ISO 3166-1 code", param="country")
    return code


def _refused(error: GatewayError) -> Exception:
    """Stripe refusing the input (an unsupported country) is the caller's to fix; anything
    else is Stripe's, and stays a gateway error."""
    if error.refused_input:
        message = error.stripe_message or str(error)
        return InvalidRequest(f"Stripe refused it: {message}", param=error.param)
    return error
