"""Refreshing the platform balance: many callers at once share one Stripe read."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import pytest

from reconciler.apply.context import ApplyContext
from reconciler.db.engine import Database
from reconciler.money import FeeSchedule
from reconciler.paths.platform_balance import BalanceRefresher


class SlowStripe:
    """Answers balance reads when told to, with a new figure each time."""

    def __init__(self) -> None:
        self.reads = 0
        self.go = asyncio.Event()

    async def balance(self) -> dict[str, Any]:
        self.reads += 1
        figure = self.reads * 100
        await self.go.wait()
        return {
            "object": "balance",
            "available": [{"amount": figure, "currency": "usd"}],
            "pending": [{"amount": 0, "currency": "usd"}],
        }


def refresher(db: Database, stripe: SlowStripe, now: datetime) -> BalanceRefresher:
    context = ApplyContext(db=db, stripe=stripe, fees=FeeSchedule(), clock=lambda: now)  # type: ignore[arg-type]
    return BalanceRefresher(context)


async def test_concurrent_refreshes_share_the_read_in_flight(db: Database, now: datetime) -> None:
    stripe = SlowStripe()
    balances = refresher(db, stripe, now)
    waiting = [asyncio.create_task(balances.refresh("usd")) for _ in range(50)]
    await asyncio.sleep(0.01)
    stripe.go.set()
    figures = {balance.available for balance in await asyncio.gather(*waiting)}
    assert (stripe.reads, balances.stripe_reads, figures) == (1, 1, {100})
    # Once it is over, the next caller gets a read of its own.
    assert (await balances.refresh("usd")).available == 200


async def test_a_caller_giving_up_does_not_cancel_the_others_read(
    db: Database, now: datetime
) -> None:
    stripe = SlowStripe()
    balances = refresher(db, stripe, now)
    impatient = asyncio.create_task(balances.refresh("usd"))
    patient = asyncio.create_task(balances.refresh("usd"))
    await asyncio.sleep(0.01)
    impatient.cancel()
    stripe.go.set()
    assert (await patient).available == 100
    with pytest.raises(asyncio.CancelledError):
        await impatient


async def test_a_currency_stripe_reports_nothing_in_holds_nothing(
    db: Database, now: datetime
) -> None:
    stripe = SlowStripe()
    stripe.go.set()
    balance = await refresher(db, stripe, now).refresh("eur")
    assert (balance.currency, balance.available, balance.pending) == ("eur", 0, 0)
