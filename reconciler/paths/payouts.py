"""Accepting a payout: every check, and the pending row with its journal entry, in one
serialised transaction; the Connect transfer itself is the executor's (`paths.executor`).

A payout is allowed only if the merchant's connected account can take a transfer, the
platform's available Stripe balance (freshly read, less what ICPay has accepted and Stripe has
not yet been seen to spend) covers it, and the merchant's internal balance covers it. The
merchant is locked for its balance; the platform's money is one lock for everyone, so two
merchants cannot both spend its last dollar.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import and_, func, or_, select
from sqlalchemy.exc import IntegrityError

from reconciler.apply.context import ApplyContext
from reconciler.db.dialect import lock_platform_spending
from reconciler.db.tables import payouts, refunds
from reconciler.errors import (
    ConnectNotReady,
    IdempotencyConflict,
    InsufficientBalance,
    InsufficientPlatformBalance,
    InvalidRequest,
)
from reconciler.ledger.balances import merchant_balance
from reconciler.ledger.merchants import can_receive_transfers
from reconciler.ledger.payouts import reserve_payout
from reconciler.ledger.platform_balance import PlatformBalance
from reconciler.ledger.requests import RequestKey, made_for
from reconciler.ledger.rows import Merchant, Payout
from reconciler.ledger.session import LedgerSession, ledger_reader, ledger_session
from reconciler.money import LEDGER_FOR_CURRENCY, check_positive
from reconciler.paths.platform_balance import BalanceRefresher

IN_FLIGHT = ("pending", "processing")


class PayoutRequests:
    def __init__(
        self,
        context: ApplyContext,
        balances: BalanceRefresher,
        dashboard_url: str,
        wake_executor: Callable[[], None] = lambda: None,
    ) -> None:
        self._context = context
        self._balances = balances
        self._settings_url = f"{dashboard_url}/settings"
        self.wake_executor = wake_executor

    async def request(
        self,
        *,
        merchant_id: int,
        amount: int,
        currency: str,
        ledger: str,
        request: RequestKey | None = None,
    ) -> tuple[Payout, bool]:
        """Accept a payout (pending, its amount reserved) or refuse it with the reason.
        With `request`, a repeat of an accepted request answers with its payout (and
        False: nothing new); the same key for another request is `IdempotencyConflict`."""
        if request is not None:
            repeated = await self._repeated(request)
            if repeated is not None:
                return repeated, False
        try:
            payout, new = await self._accept(merchant_id, amount, currency, ledger, request)
        except IntegrityError:
            # The same key, at the same moment, for two merchants: one request won.
            repeated = await self._repeated(request) if request is not None else None
            if repeated is None:
                raise
            return repeated, False
        if new:
            self.wake_executor()
        return payout, new

    async def _repeated(self, request: RequestKey) -> Payout | None:
        async with ledger_reader(self._context.db) as tx:
            return await self._made(tx, request)

    async def _made(self, tx: LedgerSession, request: RequestKey) -> Payout | None:
        payout = await made_for(tx, Payout, request)
        if payout is not None and payout.request_digest != request.digest:
            raise IdempotencyConflict(
                f"Idempotency-Key {request.key!r} was used for another request "
                f"(payout {payout.id}): use a new key for a new payout"
            )
        return payout

    async def _accept(
        self,
        merchant_id: int,
        amount: int,
        currency: str,
        ledger: str,
        request: RequestKey | None,
    ) -> tuple[Payout, bool]:
        check_positive(amount, "payout amount")
        if LEDGER_FOR_CURRENCY.get(currency) != ledger:
            raise InvalidRequest(
                f"ledger {ledger!r} does not hold {currency!r}: "
                + ", ".join(f"{c} is {name}" for c, name in LEDGER_FOR_CURRENCY.items()),
                param="ledger" if currency in LEDGER_FOR_CURRENCY else "currency",
            )
        platform = await self._balances.refresh(currency)
        async with ledger_session(self._context.db) as tx:
            merchant = await tx.lock_merchant(merchant_id)
            if request is not None:
                # The same key at the same moment: the first to lock the merchant made it.
                made = await self._made(tx, request)
                if made is not None:
                    return made, False
            if not can_receive_transfers(merchant):
                raise ConnectNotReady(_not_ready(merchant, self._settings_url))
            owed = await merchant_balance(tx, merchant_id, currency)
            if amount > owed:  # the merchant's own reason first: it is theirs to act on
                raise InsufficientBalance(
                    f"merchant {merchant_id} balance {owed} does not cover payout {amount}"
                )
            await lock_platform_spending(tx)
            spendable = platform.available - await committed(tx, platform)
            if amount > spendable:
                raise InsufficientPlatformBalance(
                    f"the platform's available Stripe balance covers {max(spendable, 0)} "
                    f"{currency} after what is already accepted: not {amount}"
                )
            payout_id = await reserve_payout(
                tx,
                merchant_id=merchant_id,
                amount=amount,
                currency=currency,
                now=self._now(),
                request=request,
            )
            return await tx.get(Payout, payout_id), True

    def _now(self) -> datetime:
        return self._context.clock()


def _not_ready(merchant: Merchant, settings_url: str) -> str:
    if merchant.stripe_account_id is None:
        why = "has no Stripe account connected"
    elif merchant.connect_status == "deauthorized":
        why = f"disconnected {merchant.stripe_account_id} at Stripe"
    else:
        why = f"cannot receive transfers on {merchant.stripe_account_id} yet"
    return f"merchant {merchant.id} {why}: finish Stripe onboarding in Settings ({settings_url})"


async def committed(tx: LedgerSession, platform: PlatformBalance) -> int:
    """What ICPay has accepted to spend from the platform's balance that the balance Stripe
    reported may not show spent yet: payouts and refunds not yet executed, or changed since
    the read began (executed then, or after). Counting some twice errs the safe way."""
    after = platform.as_of
    query = [
        select(func.coalesce(func.sum(payouts.c.amount), 0)).where(
            payouts.c.currency == platform.currency,
            or_(
                payouts.c.status.in_(IN_FLIGHT),
                and_(payouts.c.status == "completed", payouts.c.updated_at > after),
            ),
        ),
        select(func.coalesce(func.sum(refunds.c.amount), 0)).where(
            refunds.c.currency == platform.currency,
            refunds.c.source == "api",
            or_(refunds.c.stripe_refund_id.is_(None), refunds.c.updated_at > after),
            refunds.c.status.not_in(("failed", "canceled")),
        ),
    ]
    total = 0
    for statement in query:
        total += int((await tx.execute(statement)).scalar_one())
    return total
