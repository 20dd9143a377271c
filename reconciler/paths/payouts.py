"""Accepting a payout: every check, and the pending row with its journal entry, in one
serialised transaction; the Connect transfer itself is the executor's (`paths.executor`).

A payout is allowed only if the merchant's connected account can take a transfer, the
platform's available Stripe balance (freshly read, less what ICPay has accepted and Stripe has
not yet been seen to spend) covers it, and the merchant's internal balance covers it. The
merchant is locked for its balance; the platform's money is one lock for everyone, so two
merchants cannot both spend its last dollar.

Since those locks serialise every accept anyway, concurrent requests are decided together
(`paths._batched`: group commit): one transaction locks their merchants and the platform's
money once, reads each balance once, then checks and books the requests one after another,
each against what the ones before it left, and commits them all. A request refused for its
own reason gets that reason; the others are accepted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
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
    ReconcilerError,
)
from reconciler.ledger.balances import merchant_balance
from reconciler.ledger.merchants import can_receive_transfers
from reconciler.ledger.payouts import book_payout
from reconciler.ledger.platform_balance import PlatformBalance
from reconciler.ledger.requests import RequestKey, made_for
from reconciler.ledger.rows import Merchant, Payout
from reconciler.ledger.session import LedgerSession, ledger_reader
from reconciler.money import LEDGER_FOR_CURRENCY, check_positive
from reconciler.paths._batched import Batched
from reconciler.paths.platform_balance import BalanceRefresher

IN_FLIGHT = ("pending", "processing")


@dataclass(frozen=True, slots=True)
class Asked:
    """One payout request, checked for form, waiting for its turn to be decided."""

    merchant_id: int
    amount: int
    currency: str
    request: RequestKey | None
    platform: PlatformBalance  # the platform's balance as refreshed for this request


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
        # Concurrent requests are decided together, in one serialised transaction.
        self.accepting: Batched[Asked, tuple[Payout, bool]] = Batched(context.db, self._decide)

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
            async with ledger_reader(self._context.db) as tx:
                repeated = await self.made(tx, request)
            if repeated is not None:
                return repeated, False
        return await self.accept(
            merchant_id=merchant_id,
            amount=amount,
            currency=currency,
            ledger=ledger,
            request=request,
        )

    async def made(self, tx: LedgerSession, request: RequestKey) -> Payout | None:
        """The payout `request` made already, if any (a caller's first look, in a read of its
        own); `IdempotencyConflict` if its key made one for another request."""
        payout = await made_for(tx, Payout, request)
        return None if payout is None else _repeat(payout, request)

    async def accept(
        self,
        *,
        merchant_id: int,
        amount: int,
        currency: str,
        ledger: str,
        request: RequestKey | None = None,
    ) -> tuple[Payout, bool]:
        """`request` without the first look for a repeat (the caller made it): a repeat
        arriving meanwhile is still found, under the merchant's lock."""
        check_positive(amount, "payout amount")
        if LEDGER_FOR_CURRENCY.get(currency) != ledger:
            raise InvalidRequest(
                f"ledger {ledger!r} does not hold {currency!r}: "
                + ", ".join(f"{c} is {name}" for c, name in LEDGER_FOR_CURRENCY.items()),
                param="ledger" if currency in LEDGER_FOR_CURRENCY else "currency",
            )
        platform = await self._balances.refresh(currency)
        asked = Asked(merchant_id, amount, currency, request, platform)
        try:
            payout, new = await self.accepting.submit(asked)
        except IntegrityError:
            # The same key at the same moment in another process: one request won.
            repeated = None
            if request is not None:
                async with ledger_reader(self._context.db) as tx:
                    repeated = await self.made(tx, request)
            if repeated is None:
                raise
            return repeated, False
        if new:
            self.wake_executor()
        return payout, new

    async def _decide(
        self, tx: LedgerSession, batch: list[Asked]
    ) -> list[tuple[Payout, bool] | ReconcilerError]:
        """Every request of the batch, in order, each against what the ones before it left:
        the merchants' balances and the platform's are read once, then spent in memory."""
        merchant_ids = sorted({asked.merchant_id for asked in batch})
        # Merchants (in id order), then the platform's money: the order every path takes
        # them in, so batches and single writers cannot deadlock (PostgreSQL; SQLite's
        # transaction holds the one write lock already).
        await tx.lock_merchants(merchant_ids)
        await tx.load(Merchant, "id", merchant_ids)
        earlier = await _made_before(tx, [a.request for a in batch if a.request is not None])
        await lock_platform_spending(tx)
        owed: dict[tuple[int, str], int] = {}
        for merchant_id, currency in {(a.merchant_id, a.currency) for a in batch}:
            owed[(merchant_id, currency)] = await merchant_balance(tx, merchant_id, currency)
        spendable: dict[str, int] = {}
        for platform in _newest_per_currency(batch):
            spendable[platform.currency] = platform.available - await committed(tx, platform)
        tx.expect_inserts(len(batch))
        now = self._now()
        outcomes: list[tuple[Payout, bool] | ReconcilerError] = []
        for asked in batch:
            try:
                merchant = await tx.lock_merchant(asked.merchant_id)
                key = asked.request
                if key is not None and (key.scope, key.key) in earlier:
                    outcomes.append((_repeat(earlier[(key.scope, key.key)], key), False))
                    continue
                self._check(merchant, asked, owed, spendable)
            except ReconcilerError as refusal:
                outcomes.append(refusal)
                continue
            payout = await book_payout(
                tx, merchant, asked.amount, asked.currency, now=now, request=key
            )
            owed[(merchant.id, asked.currency)] -= asked.amount
            spendable[asked.currency] -= asked.amount
            if key is not None:
                earlier[(key.scope, key.key)] = payout
            outcomes.append((payout, True))
        return outcomes

    def _check(
        self,
        merchant: Merchant,
        asked: Asked,
        owed: dict[tuple[int, str], int],
        spendable: dict[str, int],
    ) -> None:
        if not can_receive_transfers(merchant):
            raise ConnectNotReady(_not_ready(merchant, self._settings_url))
        balance = owed[(merchant.id, asked.currency)]
        if asked.amount > balance:  # the merchant's own reason first: it is theirs to act on
            raise InsufficientBalance(
                f"merchant {merchant.id} balance {balance} does not cover payout {asked.amount}"
            )
        left = spendable[asked.currency]
        if asked.amount > left:
            raise InsufficientPlatformBalance(
                f"the platform's available Stripe balance covers {max(left, 0)} "
                f"{asked.currency} after what is already accepted: not {asked.amount}"
            )

    def _now(self) -> datetime:
        return self._context.clock()


def _repeat(payout: Payout, request: RequestKey) -> Payout:
    if payout.request_digest != request.digest:
        raise IdempotencyConflict(
            f"Idempotency-Key {request.key!r} was used for another request "
            f"(payout {payout.id}): use a new key for a new payout"
        )
    return payout


async def _made_before(
    tx: LedgerSession, requests: list[RequestKey]
) -> dict[tuple[str, str], Payout]:
    """The payouts these requests' keys made already, by (scope, key): one read."""
    if not requests:
        return {}
    found = await tx.execute(
        select(payouts.c.id, payouts.c.request_scope, payouts.c.request_key).where(
            payouts.c.request_key.in_({request.key for request in requests})
        )
    )
    wanted = {(request.scope, request.key) for request in requests}
    ids = {(str(scope), str(key)): int(payout_id) for payout_id, scope, key in found}
    made = {pair: payout_id for pair, payout_id in ids.items() if pair in wanted}
    await tx.load(Payout, "id", made.values())
    return {pair: await tx.get(Payout, payout_id) for pair, payout_id in made.items()}


def _newest_per_currency(batch: list[Asked]) -> list[PlatformBalance]:
    """The newest balance refreshed for the batch's requests, per currency: any one of them,
    less what is committed since it was read, bounds what may be spent; the newest is the
    least stale."""
    newest: dict[str, PlatformBalance] = {}
    for asked in batch:
        held = newest.get(asked.currency)
        if held is None or asked.platform.as_of > held.as_of:
            newest[asked.currency] = asked.platform
    return list(newest.values())


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
