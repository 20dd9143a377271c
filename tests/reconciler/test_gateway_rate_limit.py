"""The gateway's one rate limiter against the sandbox, counted by the sandbox's own log of
arrivals: the limit holds in every second, 429s are waited out by every caller, and calls
serving a user overtake queued background reads."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from reconciler.config import Secret
from reconciler.gateway import GatewayError, RetryPolicy, StripeGateway, StripeNotFound
from reconciler.ratelimit import TokenBucket
from tests.stripe_world import API_KEY, StripeWorld, stripe_world


@pytest.fixture
async def world() -> AsyncIterator[StripeWorld]:
    async with stripe_world() as running:
        yield running


class RecordedSleep:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


async def arrivals(world: StripeWorld) -> list[dict[str, Any]]:
    response = await world.control.get("/_sandbox/requests")
    response.raise_for_status()
    logged: list[dict[str, Any]] = response.json()["data"]
    return logged


def busiest_second(times: list[float]) -> int:
    """The most requests that arrived within any one second (a sliding window)."""
    times = sorted(times)
    most, first = 0, 0
    for last, at in enumerate(times):
        while at - times[first] >= 1.0:
            first += 1
        most = max(most, last - first + 1)
    return most


def test_busiest_second_counts_a_sliding_window() -> None:
    assert busiest_second([0.0, 0.5, 0.99, 1.0, 1.2, 3.0]) == 4  # 0.5 .. 1.2
    assert busiest_second([]) == 0


async def test_a_thousand_reads_never_exceed_25_in_any_second(world: StripeWorld) -> None:
    gateway = StripeGateway(Secret(API_KEY), world.url, limiter=TokenBucket.for_limit(25))
    await world.control.delete("/_sandbox/requests")
    remaining = iter(range(1000))

    async def reader() -> None:
        for _ in remaining:
            await gateway.balance()

    try:
        await asyncio.gather(*(reader() for _ in range(40)))  # far more than 25 in flight
    finally:
        await gateway.aclose()
    logged = await arrivals(world)
    assert len(logged) == 1000
    assert {entry["status"] for entry in logged} == {200}
    busiest = busiest_second([entry["at"] for entry in logged])
    assert 20 <= busiest <= 25  # the limit, and not far under it


async def test_a_429_with_retry_after_is_waited_out_before_each_retry(world: StripeWorld) -> None:
    gateway = StripeGateway(Secret(API_KEY), world.url, limiter=TokenBucket.for_limit(25))
    await world.control_post("faults/api", {"kind": "rate_limit", "count": 2, "seconds": 1})
    await world.control.delete("/_sandbox/requests")
    try:
        balance = await gateway.balance()
    finally:
        await gateway.aclose()
    assert balance["object"] == "balance"
    logged = await arrivals(world)
    assert [entry["status"] for entry in logged] == [429, 429, 200]
    times = [entry["at"] for entry in logged]
    assert times[1] - times[0] >= 1.0
    assert times[2] - times[1] >= 1.0


async def test_a_429_holds_back_every_caller_not_only_the_one_refused(world: StripeWorld) -> None:
    gateway = StripeGateway(Secret(API_KEY), world.url, limiter=TokenBucket.for_limit(25))
    await world.control_post(
        "faults/api", {"kind": "rate_limit", "count": 1, "seconds": 1, "path": "/v1/balance"}
    )
    await world.control.delete("/_sandbox/requests")
    try:
        refused = asyncio.create_task(gateway.balance())
        for _ in range(300):  # until the sandbox has answered it
            if any(entry["status"] == 429 for entry in await arrivals(world)):
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)  # the gateway has read the 429 by now
        with pytest.raises(StripeNotFound):
            await gateway.transfer("tr_missing")  # another caller, another path
        await refused
    finally:
        await gateway.aclose()
    logged = await arrivals(world)
    limited = next(entry["at"] for entry in logged if entry["status"] == 429)
    other = next(entry["at"] for entry in logged if entry["path"].startswith("/v1/transfers"))
    assert other - limited >= 1.0


async def test_a_429_that_persists_gives_up_after_the_retry_budget(world: StripeWorld) -> None:
    sleep = RecordedSleep()
    gateway = StripeGateway(
        Secret(API_KEY), world.url, retry=RetryPolicy(attempts=3, max_delay=8), sleep=sleep
    )
    await world.control_post("faults/api", {"kind": "rate_limit", "count": 10, "seconds": 2})
    await world.control.delete("/_sandbox/requests")
    try:
        with pytest.raises(GatewayError) as failure:
            await gateway.balance()
    finally:
        await gateway.aclose()
    assert (failure.value.http_status, failure.value.retryable) == (429, True)
    assert failure.value.retry_after == 2.0  # the caller can still say when to come back
    assert sleep.delays == [2.0, 2.0]
    assert len(await arrivals(world)) == 3


async def test_a_retry_after_past_the_policys_patience_gives_up_at_once(world: StripeWorld) -> None:
    sleep = RecordedSleep()
    gateway = StripeGateway(
        Secret(API_KEY), world.url, retry=RetryPolicy(attempts=4, max_delay=8), sleep=sleep
    )
    await world.control_post("faults/api", {"kind": "rate_limit", "count": 1, "seconds": 30})
    await world.control.delete("/_sandbox/requests")
    try:
        with pytest.raises(GatewayError) as failure:
            await gateway.balance()
    finally:
        await gateway.aclose()
    assert failure.value.retry_after == 30.0
    assert sleep.delays == []
    assert len(await arrivals(world)) == 1


async def test_a_users_call_goes_before_background_reads_queued_ahead_of_it(
    world: StripeWorld,
) -> None:
    # Five a second, one at a time: the order of grants is the order of arrivals.
    gateway = StripeGateway(Secret(API_KEY), world.url, limiter=TokenBucket(rate=5, burst=1))
    await world.control.delete("/_sandbox/requests")

    async def background_reads() -> None:
        async with gateway.background():
            await asyncio.gather(*(gateway.balance() for _ in range(4)))

    try:
        reads = asyncio.create_task(background_reads())
        await asyncio.sleep(0.05)  # the first read went, three wait for tokens
        await gateway.create_payment_intent(
            amount=1000, currency="usd", metadata={}, idempotency_key="checkout:1"
        )
        await reads
    finally:
        await gateway.aclose()
    logged = await arrivals(world)
    assert [(entry["method"], entry["path"]) for entry in logged] == [
        ("GET", "/v1/balance"),
        ("POST", "/v1/payment_intents"),
        ("GET", "/v1/balance"),
        ("GET", "/v1/balance"),
        ("GET", "/v1/balance"),
    ]
