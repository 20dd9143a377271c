"""The inbox worker: claims due rows, hands each to the applier, and writes the row's life.

This is the one wrapper that moves a row through `processing -> done | failed | dead`; appliers
only apply. An applier manages its own transactions and is idempotent, so the row is marked
done after it returns: a crash in between means the event is applied again, which changes
nothing.

An applier that can also apply a whole batch at once (`BatchApplier`, all or nothing) is given
the events never tried yet: it prepares them first (its Stripe reads, outside any transaction),
then the worker opens one transaction that takes their rows (`fresh.take_fresh`), has the
applier apply those, and marks them done: received to done in one commit. If that batch
fails, nothing of it is kept and its events are claimed and applied one at a time like any
retry, so an event that cannot be applied fails alone and the others are not held back by it.

The loop wakes when the webhook commits a new row (`wake()`), and also polls, for rows other
instances stored. Tests drive `run_once(now)` directly with a clock of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Protocol, runtime_checkable

from sqlalchemy.ext.asyncio import AsyncConnection

from reconciler.db.engine import Database
from reconciler.inbox.claims import claim_due, mark_done, mark_failed, release, renew_lease
from reconciler.inbox.events import DEAD, InboxEvent, InboxPolicy
from reconciler.inbox.fresh import mark_applied, peek_fresh, take_fresh
from reconciler.metrics import Metrics
from reconciler.types import Clock, utcnow

logger = logging.getLogger(__name__)

Applier = Callable[[InboxEvent], Awaitable[None]]


class PreparedBatch(Protocol):
    async def apply(self, conn: AsyncConnection, events: Sequence[InboxEvent]) -> None:
        """Apply `events` (some or all of those prepared) inside the caller's transaction
        `conn`. All or nothing: raising, the caller rolls back and nothing of it is kept."""
        ...


@runtime_checkable
class BatchApplier(Protocol):
    """An applier that can also apply many events in one transaction, the worker's."""

    async def __call__(self, event: InboxEvent) -> None: ...

    async def prepare(self, events: Sequence[InboxEvent]) -> PreparedBatch:
        """What applying `events` needs from outside the database (Stripe reads), done
        before any transaction; each event is known by its row id (`event.id`)."""
        ...


POLL_INTERVAL_SECONDS = 0.5
STOP_GRACE_SECONDS = 10.0


def describe(error: BaseException) -> str:
    """What the row keeps of an applier error: its type and message, no traceback."""
    message = str(error)
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


class InboxWorker:
    """Claims inbox rows in batches of `batch_size` and applies them: the batch at once if the
    applier can, else (or if that fails) one at a time, in claim order."""

    def __init__(
        self,
        database: Database,
        applier: Applier,
        *,
        policy: InboxPolicy,
        batch_size: int,
        metrics: Metrics | None = None,
        clock: Clock = utcnow,
        poll_interval: float = POLL_INTERVAL_SECONDS,
    ) -> None:
        self._database = database
        self._applier = applier
        self._policy = policy
        self._batch_size = batch_size
        self._metrics = metrics
        self._clock = clock
        self._poll_interval = poll_interval
        self._wakeup = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """New rows are committed: look now rather than at the next poll."""
        self._wakeup.set()

    async def run_once(self, now: datetime | None = None) -> int:
        """Apply one batch due at `now`: events never tried together if the applier can, then
        the rest one at a time. Returns how many rows were taken."""
        claim_time = now or self._clock()
        together = await self._apply_together(claim_time)
        # After a batch, only retries are left to claim here (fresh rows make the next
        # batch); with no batch (none possible, or it failed) every due row is claimed.
        events = await claim_due(
            self._database,
            claim_time,
            limit=self._batch_size,
            policy=self._policy,
            tried_only=together > 0,
        )
        done: list[InboxEvent] = []
        heartbeat = time.monotonic()
        try:
            for index, event in enumerate(events):
                if self._stopping:
                    await self._release(events[index:], now)
                    break
                if time.monotonic() - heartbeat > self._policy.lease_seconds / 3:
                    # A slow batch (Stripe slow to answer): keep the rest of it ours.
                    await self._checkpoint(done, events[index:], now)
                    done, heartbeat = [], time.monotonic()
                if await self._apply(event, now):
                    done.append(event)
        finally:
            # Done rows are marked together: one commit per batch, not one per event.
            await self._checkpoint(done, [], now)
        return together + len(events)

    async def retry_due(self, now: datetime) -> tuple[int, int]:
        """Apply the rows tried before whose next try is due at `now` (failed ones after their
        backoff, and those a vanished worker left), one batch, claimed like every worker's
        claims: a row another worker holds is not touched. Returns (taken, applied)."""
        events = await claim_due(
            self._database, now, limit=self._batch_size, policy=self._policy, tried_only=True
        )
        done: list[InboxEvent] = []
        try:
            for event in events:
                if await self._apply(event, now):
                    done.append(event)
        finally:
            await self._checkpoint(done, [], now)
        return len(events), len(done)

    async def _checkpoint(
        self, done: list[InboxEvent], waiting: list[InboxEvent], now: datetime | None
    ) -> None:
        if not done and not waiting:
            return
        async with self._database.write() as conn:
            await mark_done(conn, done, now or self._clock())
            await renew_lease(conn, waiting, now or self._clock(), self._policy)

    async def _apply_together(self, now: datetime) -> int:
        if not isinstance(self._applier, BatchApplier) or self._stopping:
            return 0
        async with self._database.read() as conn:
            fresh = await peek_fresh(conn, now, limit=self._batch_size)
        if not fresh:
            return 0
        started = time.perf_counter()
        try:
            prepared = await self._applier.prepare(fresh)
            # The rows and the ledger change in one commit: received to done, or nothing.
            async with self._database.write() as conn:
                taken = await take_fresh(conn, fresh, now)
                if taken:
                    await prepared.apply(conn, taken)
                    await mark_applied(conn, taken, now)
        except Exception as error:  # one of them cannot be applied: each is tried alone
            logger.info(
                "batch of %d events to be applied one at a time: %s", len(fresh), describe(error)
            )
            return 0
        if self._metrics is not None and taken:
            each = (time.perf_counter() - started) / len(taken)
            for _ in taken:
                self._metrics.apply_duration.observe(each)
            self._metrics.applied.inc(len(taken))
        return len(taken)

    async def _apply(self, event: InboxEvent, now: datetime | None) -> bool:
        started = time.perf_counter()
        try:
            await self._applier(event)
        except Exception as error:  # any applier failure is the row's, not the worker's
            elapsed = time.perf_counter() - started
            status = await self._fail(event, describe(error), now)
            logger.warning(
                "inbox event %s (%s) try %d failed, now %s: %s",
                event.stripe_event_id,
                event.event_type,
                event.attempts,
                status or "another worker's (its lease ran out)",
                type(error).__name__,
            )
            if self._metrics is not None:
                self._metrics.apply_duration.observe(elapsed)
                self._metrics.apply_failures.inc()
                if status == DEAD:
                    self._metrics.dead_events.inc()
            return False
        if self._metrics is not None:
            self._metrics.apply_duration.observe(time.perf_counter() - started)
            self._metrics.applied.inc()
        return True

    async def _fail(self, event: InboxEvent, error: str, now: datetime | None) -> str | None:
        async with self._database.write() as conn:
            return await mark_failed(conn, event, error, now or self._clock(), self._policy)

    async def _release(self, events: list[InboxEvent], now: datetime | None) -> None:
        async with self._database.write() as conn:
            await release(conn, events, now or self._clock())

    def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._loop(), name="inbox-worker")

    async def stop(self) -> None:
        """Finish the event in hand, give back the rest of the batch, and end the loop."""
        if self._task is None:
            return
        self._stopping = True
        self._wakeup.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), STOP_GRACE_SECONDS)
        except TimeoutError:
            # An applier that hangs: cancel it; its row's lease runs out and it is retried.
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None

    async def _loop(self) -> None:
        while not self._stopping:
            # Cleared before looking, so a wake-up during the batch is not lost.
            self._wakeup.clear()
            try:
                claimed = await self.run_once()
            except Exception as error:  # e.g. the database is down: keep trying, quietly
                logger.warning("inbox worker could not claim events: %s", describe(error))
                claimed = 0
            if claimed >= self._batch_size or self._stopping:
                continue  # more may be waiting
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self._poll_interval)
