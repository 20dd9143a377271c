"""Applying many events in one transaction, through the same handlers as one.

Alone, an event costs two or three transactions and a statement for every row it reads or
writes. A batch costs one transaction and a few statements in all:
1. Stripe reads that applying will make are made first, concurrently and outside any
   transaction (a batch's transaction never waits on the network when it can be helped).
2. One ledger session: the rows the events name are read in a statement per kind of lookup,
   their merchants locked in one order (PostgreSQL), every event applied in turn, and the
   session's flush writes all of it together.
A batch is all or nothing. If any event raises, or an error passes through any of its
transactions (even one a handler then handles), the batch is rolled back and `BatchSpoiled`
raised: the caller applies the events one at a time, so a bad event fails alone.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, cast

from sqlalchemy import Table

from reconciler.apply.context import ApplyContext, StripeReader, metadata_int, stripe_id
from reconciler.apply.events import StripeRead
from reconciler.db.tables import merchants, payments, payouts, refunds
from reconciler.ledger.session import LedgerSession, ledger_reader
from reconciler.types import StripeObject

Payload = dict[str, Any]
WARM_CONCURRENCY = 8


class BatchSpoiled(Exception):
    """An event of the batch could not be applied with the others."""


class StripeMemo:
    """A StripeReader that makes each distinct read once: warmed before the transaction,
    then answering from what it holds (and reading Stripe for anything it does not)."""

    def __init__(self, reader: StripeReader) -> None:
        self._reader = reader
        self._held: dict[StripeRead, Any] = {}

    async def warm(self, reads: Iterable[StripeRead]) -> None:
        """Make these reads, a few at a time. A read that fails is not kept: applying makes
        it again, and its error is then the event's."""
        gate = asyncio.Semaphore(WARM_CONCURRENCY)

        async def read(call: StripeRead) -> None:
            async with gate:
                with contextlib.suppress(Exception):
                    await self._read(call)

        await asyncio.gather(*(read(call) for call in dict.fromkeys(reads)))

    async def _read(self, call: StripeRead) -> Any:
        if call not in self._held:
            method, *arguments = call
            self._held[call] = await getattr(self._reader, method)(*arguments)
        return self._held[call]

    async def charge(self, charge_id: str) -> StripeObject:
        return cast(StripeObject, await self._read(("charge", charge_id)))

    async def payment_intent(self, intent_id: str) -> StripeObject:
        return cast(StripeObject, await self._read(("payment_intent", intent_id)))

    async def refunds_for_charge(self, charge_id: str) -> list[StripeObject]:
        return cast(list[StripeObject], await self._read(("refunds_for_charge", charge_id)))

    async def account(self, account_id: str) -> StripeObject:
        return cast(StripeObject, await self._read(("account", account_id)))

    async def retrieve(self, object_type: str, object_id: str) -> StripeObject:
        return cast(StripeObject, await self._read(("retrieve", object_type, object_id)))


async def load_rows(tx: LedgerSession, payloads: Sequence[Payload]) -> None:
    """Read, a statement per lookup, every row the events' objects name by id or metadata."""
    wanted: dict[tuple[Table, str], list[Any]] = {}

    def want(table: Table, column: str, value: Any) -> None:
        if value is not None:
            wanted.setdefault((table, column), []).append(value)

    for payload in payloads:
        obj = (payload.get("data") or {}).get("object") or {}
        kind = obj.get("object")
        if kind == "payment_intent":
            want(payments, "payment_intent_id", obj.get("id"))
            want(payments, "id", metadata_int(obj, "icpay_payment_id"))
            want(merchants, "id", metadata_int(obj, "icpay_account_id"))
        elif kind in ("charge", "refund"):
            want(payments, "charge_id", obj.get("id") if kind == "charge" else None)
            want(payments, "charge_id", stripe_id(obj.get("charge")))
            want(payments, "payment_intent_id", stripe_id(obj.get("payment_intent")))
            if kind == "refund":
                want(refunds, "stripe_refund_id", obj.get("id"))
                want(refunds, "id", metadata_int(obj, "icpay_refund_id"))
        elif kind == "transfer":
            want(payouts, "stripe_transfer_id", obj.get("id"))
            want(payouts, "id", metadata_int(obj, "icpay_payout_id"))
            want(merchants, "stripe_account_id", stripe_id(obj.get("destination")))
        elif kind == "account":
            want(merchants, "stripe_account_id", obj.get("id"))
            want(merchants, "id", metadata_int(obj, "icpay_account_id"))
    for (table, column), values in wanted.items():
        if table is not merchants or column != "id":
            await tx.load(table, column, values)
    # The merchants named, and those of every payment, refund and payout found.
    await tx.load(merchants, "id", [*wanted.get((merchants, "id"), []), *tx.held_merchants()])


async def read_stripe_first(
    ctx: ApplyContext,
    payloads: Sequence[Payload],
    reads_of: Callable[[LedgerSession, Payload], Awaitable[list[StripeRead]]],
) -> StripeMemo:
    """Step 1, before the batch's transaction: the Stripe reads `reads_of` says applying the
    payloads will make, made now."""
    memo = StripeMemo(ctx.stripe)
    async with ledger_reader(ctx.db) as reader:
        await load_rows(reader, payloads)
        reads = [call for payload in payloads for call in await reads_of(reader, payload)]
    await memo.warm(reads)
    return memo


async def apply_together(
    ctx: ApplyContext,
    tx: LedgerSession,
    stripe: StripeMemo,
    payloads: Sequence[Payload],
    apply_one: Callable[[ApplyContext, Payload], Awaitable[None]],
) -> None:
    """Step 2, in the caller's transaction `tx`: every payload applied with `apply_one`.
    Raises (and the caller must roll back) if any event spoils the batch."""
    tx.expect_inserts(len(payloads))
    await load_rows(tx, payloads)
    await tx.lock_merchants(tx.held_merchants())
    await load_rows(tx, payloads)  # what was not there before the locks is asked for again
    together = ctx.in_batch(tx, stripe)
    for payload in payloads:
        await apply_one(together, payload)
        if together.spoiled:
            raise BatchSpoiled("an event of the batch failed")
