"""Refreshing the platform's balance from Stripe, once for everyone waiting.

Payouts and refunds check the platform's available balance freshly read from Stripe. Under
load many requests want it at once: they share the Stripe call in flight when they ask (or
start one), so Stripe sees a handful of balance reads, not one per request, and every figure
is at most one Stripe round trip old. What ICPay has accepted and not yet executed is the
ledger's to subtract, not Stripe's.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

from reconciler.apply.balance import apply_balance
from reconciler.apply.context import ApplyContext
from reconciler.ledger.platform_balance import PlatformBalance, platform_balance


@dataclass(frozen=True, slots=True)
class _Read:
    asked: datetime
    newest: dict[str, PlatformBalance]  # by currency, as stored with this read


class BalanceRefresher:
    def __init__(self, context: ApplyContext) -> None:
        self._context = context
        self._in_flight: asyncio.Task[_Read] | None = None
        self.stripe_reads = 0  # how many times Stripe was asked (for benchmarks and tests)

    async def refresh(self, currency: str) -> PlatformBalance:
        """The balance in `currency` as Stripe reports it now (a currency Stripe reports
        nothing in holds nothing)."""
        if self._in_flight is None or self._in_flight.done():
            self._in_flight = asyncio.ensure_future(self._read())
        # A waiter that gives up does not cancel the read the others are waiting for.
        read = await asyncio.shield(self._in_flight)
        # The newest snapshot as the read stored it: no second transaction to read it back.
        balance = read.newest.get(currency)
        return balance or PlatformBalance(currency, 0, 0, read.asked, "fetched")

    async def _read(self) -> _Read:
        self.stripe_reads += 1
        # As of when it was asked, not answered: what ICPay spends from here on is counted
        # against the figure (`paths.payouts.committed`), never missed by both.
        asked = self._context.clock()
        balance = await self._context.stripe.balance()
        newest = await apply_balance(self._context, balance, as_of=asked, source="fetched")
        return _Read(asked, newest)

    async def newest(self, currency: str) -> PlatformBalance:
        """The newest snapshot, refreshed from Stripe first if there is none yet."""
        async with self._context.db.read() as conn:
            balance = await platform_balance(conn, currency)
        return balance if balance is not None else await self.refresh(currency)
