"""The token bucket on its own: bursts, refill, priority, hold-offs, cancellation. Real time
at small scales (tens of milliseconds), with margins that only a broken bucket misses."""

from __future__ import annotations

import asyncio
import time

import pytest

from reconciler.ratelimit import ARRIVAL_JITTER, Priority, TokenBucket


async def grant_times(bucket: TokenBucket, count: int) -> list[float]:
    start = time.monotonic()

    async def one() -> float:
        await bucket.acquire()
        return time.monotonic() - start

    return sorted(await asyncio.gather(*(one() for _ in range(count))))


async def test_a_full_bucket_grants_its_burst_at_once_then_one_per_refill() -> None:
    times = await grant_times(TokenBucket(rate=50, burst=3), 7)
    assert times[2] < 0.015  # the burst: no waiting
    for n, at in enumerate(times[3:], start=1):
        assert at >= n / 50 - 0.002, (n, times)  # never sooner than the refill allows
    assert times[-1] < 4 / 50 + 0.1  # and not much later either


async def test_calls_hold_a_token_not_the_bucket_while_they_run() -> None:
    bucket = TokenBucket(rate=10, burst=5)
    start = time.monotonic()

    async def call() -> None:
        await bucket.acquire()
        await asyncio.sleep(0.3)  # the HTTP request

    await asyncio.gather(*(call() for _ in range(5)))
    assert time.monotonic() - start < 0.5  # five in flight at once, not one after another


async def test_user_calls_go_before_queued_background_calls() -> None:
    bucket = TokenBucket(rate=20, burst=1)
    await bucket.acquire()  # empty: everyone below queues
    order: list[str] = []

    async def call(name: str, priority: Priority) -> None:
        await bucket.acquire(priority)
        order.append(name)

    background = [call(f"read{n}", Priority.BACKGROUND) for n in range(4)]
    user = [call("refund", Priority.USER), call("transfer", Priority.USER)]
    # The reads queue first (gather starts them in this order), the user's calls after them.
    await asyncio.gather(*background, *user)
    assert order == ["refund", "transfer", "read0", "read1", "read2", "read3"]


async def test_hold_off_stops_every_grant_until_it_ends() -> None:
    bucket = TokenBucket(rate=1000, burst=5)
    bucket.hold_off(0.25)
    bucket.hold_off(0.05)  # a shorter one never cuts the first short
    times = await grant_times(bucket, 3)
    assert times[0] >= 0.25
    assert times[-1] < 0.25 + 0.1


async def test_a_cancelled_waiter_leaves_the_queue_without_taking_a_token() -> None:
    bucket = TokenBucket(rate=20, burst=1)
    await bucket.acquire()
    gone = asyncio.create_task(bucket.acquire(Priority.USER))
    await asyncio.sleep(0)
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    start = time.monotonic()
    await bucket.acquire(Priority.BACKGROUND)  # the next token is this one's, on time
    assert time.monotonic() - start < 1 / 20 + 0.03


def test_a_limit_keeps_a_full_burst_and_the_refill_after_it_within_the_limit() -> None:
    bucket = TokenBucket.for_limit(25, burst=5)
    # Five at once, then 20 more at the refill rate: they span 1 s plus the jitter allowance.
    assert bucket.burst == 5
    assert bucket.burst + bucket.rate * (1 + ARRIVAL_JITTER) == pytest.approx(25)
    for burst in (0, 25, 30):
        with pytest.raises(ValueError, match="burst"):
            TokenBucket.for_limit(25, burst=burst)
