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
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from reconciler.apply.context import (
    CHARGE_REFUNDS,
    TRANSFER_REVERSALS,
    ApplyContext,
    StripeRead,
    StripeReader,
)
from reconciler.apply.events import event_object
from reconciler.apply.kinds import KINDS, kind_of
from reconciler.gateway import AccessRevoked, GatewayError, StripeNotFound
from reconciler.inbox.envelope import THIN_EVENT_OBJECT
from reconciler.ledger.rows import LedgerRow, Merchant
from reconciler.ledger.session import LedgerSession, ledger_reader
from reconciler.types import StripeObject

Payload = dict[str, Any]
WARM_CONCURRENCY = 8
# Reads of lists, and how each is made.
LISTS: dict[str, Callable[[StripeReader, str], Awaitable[list[StripeObject]]]] = {
    CHARGE_REFUNDS: lambda reader, charge_id: reader.refunds_for_charge(charge_id),
    TRANSFER_REVERSALS: lambda reader, transfer_id: reader.transfer_reversals(transfer_id),
}


class BatchSpoiled(Exception):
    """An event of the batch could not be applied with the others."""


class StripeMemo:
    """A StripeReader that makes each distinct read once, before the batch's transaction,
    then answers from what it holds. Once sealed (the transaction has begun) a read it does
    not hold spoils the batch rather than going to Stripe: a network call made while the
    batch holds SQLite's write lock, or its merchants' row locks, would stall every other
    writer. Its events are then applied one at a time, each reading Stripe outside its
    transactions."""

    def __init__(self, reader: StripeReader) -> None:
        self._reader = reader
        self._held: dict[StripeRead, StripeObject] = {}
        self._missing: dict[StripeRead, GatewayError] = {}
        self._lists: dict[StripeRead, list[StripeObject]] = {}
        self._sealed = False

    def seal(self) -> None:
        self._sealed = True

    def held(self) -> list[StripeObject]:
        """The objects read so far."""
        return list(self._held.values())

    async def warm(self, reads: Iterable[StripeRead]) -> None:
        """Make these reads, a few at a time. An object Stripe does not have, or no longer
        lets the platform read (a lost connected account), is not kept: applying asks again,
        and the answer, which handlers know what to do with, is then the event's. Any other
        failure (the gateway has already retried what can be retried) fails the batch: its
        events are then applied one at a time, each meeting the error as its own."""
        calls = list(dict.fromkeys(reads))
        waiting = iter(calls)

        async def reader() -> None:
            # A few readers take the calls in turn (not a task per call: a batch makes
            # hundreds of them, and a task each cost more than an answered read).
            for call in waiting:
                try:
                    await (self._list(call) if call[0] in LISTS else self._read(call))
                except (StripeNotFound, AccessRevoked) as answer:
                    self._missing[call] = answer  # the event's to meet when applying

        try:
            # A task group: the first failure cancels the reads still waiting, so a batch
            # given up spends no more of Stripe's rate limit.
            async with asyncio.TaskGroup() as group:
                for _ in range(min(WARM_CONCURRENCY, len(calls))):
                    group.create_task(reader())
        except ExceptionGroup as failed:
            raise failed.exceptions[0] from None

    async def _read(self, call: StripeRead) -> StripeObject:
        kind_name, object_id = call
        if call in self._missing:
            raise self._missing[call]
        if call not in self._held:
            if self._sealed:
                raise BatchSpoiled(f"a Stripe read not made before the batch: {call}")
            self._held[call] = await KINDS[kind_name].fetch(self._reader, object_id)
        return self._held[call]

    async def _list(self, call: StripeRead) -> list[StripeObject]:
        if call not in self._lists:
            if self._sealed:
                raise BatchSpoiled(f"a Stripe read not made before the batch: {call}")
            kind_name, object_id = call
            self._lists[call] = await LISTS[kind_name](self._reader, object_id)
        return self._lists[call]

    async def payment_intent(self, intent_id: str) -> StripeObject:
        return await self._read(("payment_intent", intent_id))

    async def charge(self, charge_id: str) -> StripeObject:
        return await self._read(("charge", charge_id))

    async def refund(self, refund_id: str) -> StripeObject:
        return await self._read(("refund", refund_id))

    async def transfer(self, transfer_id: str) -> StripeObject:
        return await self._read(("transfer", transfer_id))

    async def account(self, account_id: str) -> StripeObject:
        return await self._read(("account", account_id))

    async def balance(self) -> StripeObject:
        return await self._read(("balance", ""))

    async def transfer_reversals(self, transfer_id: str) -> list[StripeObject]:
        return await self._list((TRANSFER_REVERSALS, transfer_id))

    async def refunds_for_charge(self, charge_id: str) -> list[StripeObject]:
        return await self._list((CHARGE_REFUNDS, charge_id))


async def load_rows(
    tx: LedgerSession, payloads: Sequence[Payload], *, merchants: bool = True
) -> None:
    """Read, a statement per lookup, every row the events' objects name by id or metadata;
    with `merchants`, also the merchants named, and those of every payment, refund and
    payout found."""
    await _load_wanted(tx, _rows_wanted(payloads), merchants=merchants)


_Wanted = dict[tuple[type[LedgerRow], str], list[Any]]


async def _load_wanted(tx: LedgerSession, wanted: _Wanted, *, merchants: bool) -> None:
    for (row_type, column), values in wanted.items():
        if row_type is not Merchant or column != "id":
            await tx.load(row_type, column, values)
    if merchants:
        await tx.load(Merchant, "id", [*wanted.get((Merchant, "id"), []), *tx.held_merchants()])


def _rows_wanted(payloads: Sequence[Payload]) -> _Wanted:
    wanted: _Wanted = {}
    for payload in payloads:
        obj = event_object(payload)
        kind = kind_of(obj)
        for row_type, column, value in kind.rows(obj) if kind is not None else ():
            if value is not None:
                wanted.setdefault((row_type, column), []).append(value)
    return wanted


@dataclass(frozen=True)
class Foreseen:
    """What step 1 learnt: Stripe's answers, and the merchants whose rows the events touch
    as far as could be read then (those the batch's transaction locks first)."""

    stripe: StripeMemo
    merchants: frozenset[int]


async def read_stripe_first(
    ctx: ApplyContext,
    payloads: Sequence[Payload],
    reads_of: Callable[[LedgerSession, Payload], Awaitable[list[StripeRead]]],
) -> Foreseen:
    """Step 1, before the batch's transaction: the Stripe reads `reads_of` says applying the
    payloads will make, made now."""
    memo = StripeMemo(ctx.stripe)
    # The merchants' own rows are not read here: no read depends on them (a merchant found
    # by its Stripe account is), and the transaction reads them as it locks them.
    wanted = _rows_wanted(payloads)
    async with ledger_reader(ctx.db) as reader:
        await _load_wanted(reader, wanted, merchants=False)
        reads = [call for payload in payloads for call in await reads_of(reader, payload)]
        merchants = _merchants_named(reader, wanted)
    await memo.warm(reads)
    if not any(payload.get("object") == THIN_EVENT_OBJECT for payload in payloads):
        return Foreseen(memo, merchants)  # snapshot events said what they need: nothing more
    # What the objects fetched will need in turn (a thin event's object is known only now).
    async with ledger_reader(ctx.db) as reader:
        await _load_wanted(reader, wanted, merchants=False)
        reads = [call for held in memo.held() for call in await _reads_of(reader, held)]
        merchants |= _merchants_named(reader, wanted)
    await memo.warm(reads)
    return Foreseen(memo, merchants)


def _merchants_named(reader: LedgerSession, wanted: _Wanted) -> frozenset[int]:
    return frozenset([*wanted.get((Merchant, "id"), []), *reader.held_merchants()])


async def _reads_of(reader: LedgerSession, obj: StripeObject) -> list[StripeRead]:
    kind = kind_of(obj)
    return await kind.reads(reader, obj) if kind is not None else []


async def apply_together(
    ctx: ApplyContext,
    tx: LedgerSession,
    foreseen: Foreseen,
    payloads: Sequence[Payload],
    apply_one: Callable[[ApplyContext, Payload], Awaitable[None]],
) -> None:
    """Step 2, in the caller's transaction `tx`: every payload applied with `apply_one`.
    Raises (and the caller must roll back) if any event spoils the batch."""
    tx.expect_inserts(len(payloads))
    # The merchants foreseen are locked first (PostgreSQL), so what is read next is current;
    # rows found of any other merchant (made since step 1) get theirs locked, and what was
    # not there before those locks is asked for again. That second round is out of id order
    # with the first, so it does not wait: a merchant held elsewhere fails the batch at once
    # (its events are then applied one by one) instead of risking a deadlock.
    await tx.lock_merchants(foreseen.merchants)
    await load_rows(tx, payloads)
    if await tx.lock_merchants(tx.held_merchants(), nowait=True):
        await load_rows(tx, payloads)
    stripe = foreseen.stripe
    together = ctx.in_batch(tx, stripe)
    stripe.seal()
    for payload in payloads:
        await apply_one(together, payload)
        if together.spoiled:
            raise BatchSpoiled("an event of the batch failed")
