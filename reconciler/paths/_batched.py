"""Group commit for decisions that must be serialised: many callers, one transaction.

Accepting a payout checks balances and books the pending row under locks everyone shares
(the merchant's, and the platform's money). One transaction each makes concurrent requests
queue for those locks and pay a commit apiece. Here each caller submits what it asks and
waits; one task at a time opens a write transaction, takes everything waiting at that moment,
decides the items one after another inside it (each against what the ones before it left)
and commits; only then is each caller answered. Under load the locks are taken and the commit
paid once per batch; when idle a batch is one item and waits for nothing but itself.

An item refused for a reason of its own (a `ReconcilerError` from `decide`) gets that error,
and the rest of the batch goes on. If the batch as a whole fails (the database, a unique key
another process took meanwhile), nothing of it was committed: each item is then decided again
alone, in a transaction of its own, so every caller gets its own outcome.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from reconciler.db.engine import Database
from reconciler.errors import ReconcilerError
from reconciler.ledger.session import LedgerSession, ledger_session

Item = TypeVar("Item")
Result = TypeVar("Result")

# Decide every item of a batch, in order, in the transaction given: a result or the item's
# own refusal for each, in the same order.
Decide = Callable[[LedgerSession, list[Item]], Awaitable[list[Result | ReconcilerError]]]

MAX_BATCH = 200  # items per transaction, at most: a lock is not held for long


@dataclass(slots=True)
class _Waiting(Generic[Item, Result]):
    item: Item
    answer: asyncio.Future[Result] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class Batched(Generic[Item, Result]):
    """Submit items to `decide` in batches; see the module docstring."""

    def __init__(
        self, database: Database, decide: Decide[Item, Result], *, max_batch: int = MAX_BATCH
    ) -> None:
        self._database = database
        self._decide = decide
        self._max_batch = max_batch
        self._queue: list[_Waiting[Item, Result]] = []
        self._in_hand: list[_Waiting[Item, Result]] = []  # the batch being decided
        self._leader: asyncio.Task[None] | None = None
        self.batches = 0  # transactions committed (for tests and benchmarks)

    async def submit(self, item: Item) -> Result:
        """`item`'s result once its batch is committed, or its refusal (raised)."""
        waiting: _Waiting[Item, Result] = _Waiting(item)
        self._queue.append(waiting)
        if self._leader is None or self._leader.done():
            self._leader = asyncio.create_task(self._lead(), name="batched-decisions")
        # A caller that gives up cancels its answer only: its item may be committed anyway,
        # as a transaction of its own would be once sent.
        return await waiting.answer

    async def _lead(self) -> None:
        try:
            while self._queue:
                await self._next_batch()
        except BaseException:
            # Cancelled (the loop is closing): no caller is left waiting for an answer.
            for waiting in [*self._in_hand, *self._queue]:
                waiting.answer.cancel()
            self._in_hand, self._queue = [], []
            raise

    async def _next_batch(self) -> None:
        self._in_hand = []
        try:
            async with ledger_session(self._database) as tx:
                # Taken once the transaction holds the write turn: everything that came while
                # the last batch was committing joins this one.
                batch = self._take()
                outcomes = await self._decide(tx, [waiting.item for waiting in batch])
        except Exception as error:  # nothing of the batch was committed
            batch = self._in_hand or self._take()  # (the transaction may not have begun)
            if len(batch) > 1:
                await self._one_by_one(batch)
            else:
                _answer(batch[0], error)
            return
        self.batches += 1
        for waiting, outcome in zip(batch, outcomes, strict=True):
            _answer(waiting, outcome)

    def _take(self) -> list[_Waiting[Item, Result]]:
        self._in_hand = self._queue[: self._max_batch]
        del self._queue[: self._max_batch]
        return self._in_hand

    async def _one_by_one(self, batch: list[_Waiting[Item, Result]]) -> None:
        for waiting in batch:
            outcome: Result | BaseException
            try:
                async with ledger_session(self._database) as tx:
                    (outcome,) = await self._decide(tx, [waiting.item])
            except Exception as error:
                outcome = error
            else:
                self.batches += 1
            _answer(waiting, outcome)


def _answer(waiting: _Waiting[Item, Result], outcome: Result | BaseException) -> None:
    if waiting.answer.done():
        return
    if isinstance(outcome, BaseException):
        waiting.answer.set_exception(outcome)
    else:
        waiting.answer.set_result(outcome)
