"""The applier the ingest benchmark's end-to-end run uses: the real `EventApplier`, with a
canned in-process Stripe so that applying a `payment_intent.succeeded` costs ledger work
(payment row, journal entries, fee, release of funds) and no network call."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from reconciler.apply import EventApplier
from reconciler.config import Settings
from reconciler.db.engine import Database
from reconciler.inbox.worker import Applier

STRIPE_FEE = 59


class CannedStripe:
    """Every charge succeeded, fee 59 cents, funds available."""

    async def charge(self, charge_id: str) -> dict[str, Any]:
        return {
            "id": charge_id,
            "object": "charge",
            "status": "succeeded",
            "balance_transaction": {"fee": STRIPE_FEE, "status": "available", "available_on": 1},
        }

    async def payment_intent(self, intent_id: str) -> dict[str, Any]:
        raise LookupError(f"the benchmark has no payment intent {intent_id}")

    async def refunds_for_charge(self, charge_id: str) -> list[dict[str, Any]]:
        return []

    async def account(self, account_id: str) -> dict[str, Any]:
        raise LookupError(account_id)

    async def refund(self, refund_id: str) -> dict[str, Any]:
        raise LookupError(refund_id)

    async def transfer(self, transfer_id: str) -> dict[str, Any]:
        raise LookupError(transfer_id)

    async def balance(self) -> dict[str, Any]:
        raise LookupError("balance")


@asynccontextmanager
async def ledger_applier(database: Database, settings: Settings) -> AsyncIterator[Applier]:
    yield EventApplier(database, CannedStripe(), settings)
