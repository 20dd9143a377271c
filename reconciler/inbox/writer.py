"""Group commit for the webhook inbox.

Each request submits its row to the writer and waits. One task takes every row waiting at
that moment, commits them together (`group_commit`: one round trip), and only then answers
each waiter. A commit costs about the same for one row as for a hundred, so under load the
service pays one commit per batch instead of one per request, and the rows that arrive while
one commit runs make the next batch; when idle a batch is a single row and nothing waits
longer than its own commit. There is no gathering pause: it only added its length to every
request's latency once commits became cheap. Durability is unchanged: a caller hears "stored"
only after the commit holding its row.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from reconciler.db.engine import Database
from reconciler.inbox.events import NewEvent
from reconciler.inbox.group_commit import GroupCommit, open_group_commit
from reconciler.types import Clock, utcnow

logger = logging.getLogger(__name__)


class WriterClosed(RuntimeError):
    """The writer is shutting down and takes no more rows."""


MAX_BATCH = 500  # rows per commit, at most


class InboxWriter:
    """Commits rows in batches; `submit` returns True if the row was new, once committed."""

    def __init__(
        self,
        database: Database,
        *,
        max_batch: int = MAX_BATCH,
        on_commit: Callable[[], None] | None = None,
        clock: Clock = utcnow,
    ) -> None:
        self._group_commit: GroupCommit = open_group_commit(database)
        self._max_batch = max_batch
        self._on_commit = on_commit
        self._clock = clock
        self._queue: asyncio.Queue[tuple[NewEvent, asyncio.Future[bool]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="inbox-writer")

    async def submit(self, event: NewEvent) -> bool:
        """Queue `event` and wait for the commit of its batch. Raises what the database raised
        (the caller answers 503, so Stripe delivers again)."""
        if self._closed or self._task is None:
            raise WriterClosed("the inbox writer is not running")
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((event, future))
        return await future

    async def close(self) -> None:
        """Commit what is queued, then stop."""
        self._closed = True
        if self._task is None:
            return
        await self._queue.join()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        await self._group_commit.close()

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._commit(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _commit(self, batch: list[tuple[NewEvent, asyncio.Future[bool]]]) -> None:
        # The same event twice in one batch: the first is the delivery, the rest duplicates.
        unique: dict[str, NewEvent] = {}
        for event, _ in batch:
            unique.setdefault(event.stripe_event_id, event)
        try:
            new = await self._group_commit.commit(list(unique.values()), self._clock())
        except Exception as error:  # every waiter must hear of it; the loop must go on
            logger.warning(
                "inbox batch of %d rows not committed: %s", len(batch), type(error).__name__
            )
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        claimed: set[str] = set()
        for event, future in batch:
            key = event.stripe_event_id
            is_new = key in new and key not in claimed
            claimed.add(key)
            if not future.done():  # the request may have been cancelled meanwhile
                future.set_result(is_new)
        if new and self._on_commit is not None:
            self._on_commit()
