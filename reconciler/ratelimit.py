"""A token bucket for outbound calls, with two priorities and a hold-off for 429s.

Callers wait only for a token, never for each other's calls: a token is taken, the caller
goes on to make its request, and many requests may be in flight at once. Waiters are served
user-priority first, then background, each in arrival order. `hold_off` stops every grant
until a moment the server named (a 429's `Retry-After`), so no caller hammers it meanwhile.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from enum import IntEnum
from typing import Final

# Stripe counts requests as they arrive, and the network delays some more than others: the
# bucket keeps `limit` requests within any window this much longer than a second.
ARRIVAL_JITTER: Final = 0.1


class Priority(IntEnum):
    """Lower is served first."""

    USER = 0
    BACKGROUND = 1


class TokenBucket:
    """`burst` tokens at most, refilled at `rate` a second."""

    def __init__(
        self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"a token bucket needs rate > 0 and burst >= 1, got {rate}, {burst}")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._stamp = clock()
        self._resume_at = 0.0
        self._waiters: dict[Priority, deque[asyncio.Future[None]]] = {p: deque() for p in Priority}
        self._timer: asyncio.TimerHandle | None = None

    @classmethod
    def for_limit(cls, limit: int, burst: int = 1) -> TokenBucket:
        """A bucket whose requests stay within `limit` in any one second as the server counts
        them: a full burst followed by steady calls spans `1 + ARRIVAL_JITTER` seconds."""
        if not 1 <= burst < limit:
            raise ValueError(f"burst must be at least 1 and below the limit {limit}, got {burst}")
        return cls((limit - burst) / (1 + ARRIVAL_JITTER), burst)

    async def acquire(self, priority: Priority = Priority.USER) -> None:
        """Wait for a token; at once if one is free and nobody is queued."""
        if not self._queued() and self._take():
            return
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters[priority].append(granted)
        self._arm()
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                # Granted, then cancelled before it could be used: the token goes back.
                self._tokens = min(float(self.burst), self._tokens + 1)
            self._discard(granted)
            self._wake()
            raise

    def hold_off(self, seconds: float) -> None:
        """Grant nothing for `seconds` (never shortening a hold-off already in force)."""
        self._resume_at = max(self._resume_at, self._clock() + seconds)
        self._wake()

    def _refill(self) -> float:
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        return now

    def _take(self) -> bool:
        now = self._refill()
        if now < self._resume_at or self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    def _queued(self) -> bool:
        return any(self._waiters.values())

    def _next_waiter(self) -> asyncio.Future[None] | None:
        for priority in Priority:
            queue = self._waiters[priority]
            while queue and queue[0].done():
                queue.popleft()  # cancelled while waiting
            if queue:
                return queue[0]
        return None

    def _discard(self, waiter: asyncio.Future[None]) -> None:
        for queue in self._waiters.values():
            if waiter in queue:
                queue.remove(waiter)

    def _wake(self) -> None:
        """Serve the queue now and re-time the wake-up (the state it was timed for changed)."""
        if self._timer is not None:
            self._timer.cancel()
        self._release()

    def _release(self) -> None:
        self._timer = None
        while (waiter := self._next_waiter()) is not None and self._take():
            self._discard(waiter)
            waiter.set_result(None)
        self._arm()

    def _arm(self) -> None:
        """Wake up when the next token is due, if anyone waits for it."""
        if self._timer is not None or self._next_waiter() is None:
            return
        now = self._refill()
        delay = max(self._resume_at - now, (1 - self._tokens) / self.rate, 0.0)
        self._timer = asyncio.get_running_loop().call_later(delay, self._release)
