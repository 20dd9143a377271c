"""The gateway against the sandbox's injected API faults: what is retried, how long it
waits, and what reaches callers."""

from __future__ import annotations

from asyncio import selector_events
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import pytest
import stripe

from reconciler.config import Secret
from reconciler.gateway import (
    WEBHOOK_API_VERSION,
    GatewayError,
    RetryPolicy,
    StripeGateway,
    StripeNotFound,
    classify,
)
from reconciler.types import StripeObject
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


def gateway_for(world: StripeWorld, sleep: RecordedSleep, *, timeout: float = 5.0) -> StripeGateway:
    policy = RetryPolicy(attempts=4, base_delay=0.5, max_delay=8.0)
    return StripeGateway(Secret(API_KEY), world.url, timeout=timeout, retry=policy, sleep=sleep)


async def test_rate_limits_and_server_errors_are_retried_with_backoff(world: StripeWorld) -> None:
    intent = await world.pay(1, 1000, "pm_card_bypassPending")
    sleep = RecordedSleep()
    gateway = gateway_for(world, sleep)
    try:
        await world.control_post("faults/api", {"kind": "rate_limit", "count": 1})
        await world.control_post("faults/api", {"kind": "server_error", "count": 2})
        fetched = await gateway.payment_intent(intent.id)
    finally:
        await gateway.aclose()
    assert fetched["id"] == intent.id
    assert fetched["status"] == "succeeded"
    assert len(sleep.delays) == 3
    assert sleep.delays == sorted(sleep.delays)  # exponential, never shrinking


async def test_persistent_failure_gives_up_and_says_it_may_pass(world: StripeWorld) -> None:
    sleep = RecordedSleep()
    gateway = gateway_for(world, sleep)
    try:
        await world.control_post("faults/api", {"kind": "server_error", "count": 10})
        with pytest.raises(GatewayError) as failure:
            await gateway.balance()
    finally:
        await gateway.aclose()
    assert failure.value.retryable
    assert failure.value.http_status == 500
    assert len(sleep.delays) == 3  # four attempts in all


async def test_a_hang_past_the_timeout_is_a_retryable_network_error(world: StripeWorld) -> None:
    sleep = RecordedSleep()
    gateway = gateway_for(world, sleep, timeout=0.3)
    try:
        await world.control_post("faults/api", {"kind": "hang", "count": 1, "seconds": 2})
        balance = await gateway.balance()
    finally:
        await gateway.aclose()
    assert balance["object"] == "balance"
    assert len(sleep.delays) == 1


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "server_error", "count": 1},
        {"kind": "hang", "count": 1, "seconds": 1},
        {"kind": "rate_limit", "count": 1},
    ],
    ids=["500", "timeout", "429"],
)
async def test_a_create_executed_but_unanswered_is_retried_into_one_object(
    world: StripeWorld, fault: dict[str, object]
) -> None:
    sleep = RecordedSleep()
    gateway = gateway_for(world, sleep, timeout=0.3)
    try:
        await world.control_post(
            "faults/api",
            {**fault, "execute": True, "path": "/v1/webhook_endpoints", "method": "POST"},
        )
        created = await gateway.create_webhook_endpoint("http://127.0.0.1:1/hook", connect=False)
    finally:
        await gateway.aclose()
    assert len(sleep.delays) == 1  # it was retried, under the same key
    endpoints = await world.client.v1.webhook_endpoints.list_async()
    assert [endpoint.id for endpoint in endpoints.data] == [created["id"]]
    assert created["api_version"] == WEBHOOK_API_VERSION


def test_webhook_endpoints_are_pinned_to_the_sdks_api_version() -> None:
    assert stripe.api_version == WEBHOOK_API_VERSION


async def test_missing_objects_and_bad_requests_are_final(world: StripeWorld) -> None:
    sleep = RecordedSleep()
    gateway = gateway_for(world, sleep)
    try:
        with pytest.raises(StripeNotFound) as missing:
            await gateway.payment_intent("pi_does_not_exist")
    finally:
        await gateway.aclose()
    assert (missing.value.retryable, missing.value.http_status) == (False, 404)
    assert sleep.delays == []


def test_retry_after_is_honoured_and_past_the_cap_means_give_up() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=8.0)
    told = classify(
        stripe.RateLimitError("slow down", http_status=429, headers={"Retry-After": "3"})
    )
    assert (told.retryable, told.retry_after, policy.delay(0, told)) == (True, 3.0, 3.0)
    greedy = classify(
        stripe.RateLimitError("slow", http_status=429, headers={"Retry-After": "600"})
    )
    assert policy.delay(0, greedy) is None  # never sooner than told: not at all
    untold = classify(stripe.APIError("boom", http_status=503))
    assert [policy.delay(attempt, untold) for attempt in range(6)] == [0.5, 1, 2, 4, 8, 8]


def test_stripe_saying_do_not_retry_is_final() -> None:
    error = classify(
        stripe.APIError("no", http_status=500, headers={"stripe-should-retry": "false"})
    )
    assert not error.retryable


async def first_page(gateway: StripeGateway, resource: str, **params: Any) -> StripeObject:
    pages = gateway.list_pages(resource, **params)
    async with aclosing(pages):
        return await anext(pages)


async def test_a_list_page_is_the_json_stripe_sent_as_plain_dicts(world: StripeWorld) -> None:
    for amount in (1000, 2000):
        await world.pay(1, amount, "pm_card_bypassPending")
    expand = "data.latest_charge.balance_transaction"
    page = await first_page(world.gateway, "payment_intents", expand=(expand,), limit=1)
    sent = await world.control.get(
        "/v1/payment_intents",
        params={"limit": 1, "expand[]": expand},
        headers={"Authorization": f"Bearer {API_KEY}"},
    )
    assert page == sent.json()
    assert page["has_more"] is True
    [intent] = page["data"]
    assert type(intent) is dict and type(intent["latest_charge"]) is dict
    assert intent["latest_charge"]["balance_transaction"]["object"] == "balance_transaction"


async def test_the_pages_of_a_list_follow_each_other_to_its_end(world: StripeWorld) -> None:
    for amount in (1000, 2000, 3000):
        await world.pay(1, amount, "pm_card_bypassPending")
    pages = [page async for page in world.gateway.list_pages("payment_intents", limit=2)]
    assert [[i["amount"] for i in page["data"]] for page in pages] == [[3000, 2000], [1000]]
    [newest, *_] = pages[0]["data"]
    after = [
        p async for p in world.gateway.list_pages("payment_intents", starting_after=newest["id"])
    ]
    assert [[i["amount"] for i in page["data"]] for page in after] == [[2000, 1000]]


async def test_the_next_pages_request_is_out_before_a_page_is_handed_over(
    world: StripeWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`list_pages` yields to the event loop for the next page's request to be written
    before it decodes a page (`_TURNS_TO_SEND` turns: what httpx takes)."""
    for amount in (1000, 2000):
        await world.pay(1, amount, "pm_card_bypassPending")
    await world.gateway.balance()  # a connection kept alive, as between pages
    written: list[int] = []
    transport: Any = selector_events._SelectorSocketTransport  # type: ignore[attr-defined]
    write = transport.write

    def counted(self: Any, data: Any) -> None:
        written.append(len(data))
        write(self, data)

    pages = world.gateway.list_pages("payment_intents", limit=1)
    async with aclosing(pages):
        monkeypatch.setattr(transport, "write", counted)
        first = await anext(pages)
        asked = len(written)
        assert [i["amount"] for i in first["data"]] == [2000]
        assert asked == 2, "the second page's request was not out when the first was handed over"
        second = await anext(pages)
    assert [i["amount"] for i in second["data"]] == [1000]


async def test_a_list_page_is_retried_and_its_errors_are_the_gateways(world: StripeWorld) -> None:
    sleep = RecordedSleep()
    gateway = gateway_for(world, sleep)
    try:
        await world.control_post("faults/api", {"kind": "rate_limit", "count": 1})
        await world.control_post("faults/api", {"kind": "server_error", "count": 1})
        page = await first_page(gateway, "transfers")
        with pytest.raises(GatewayError) as refused:
            await first_page(gateway, "transfers", colour="blue")
    finally:
        await gateway.aclose()
    assert page["object"] == "list" and page["data"] == []
    assert len(sleep.delays) == 2
    assert (refused.value.http_status, refused.value.param) == (400, "colour")
    assert refused.value.refused_input and not refused.value.retryable


async def test_a_list_page_read_as_a_connected_account_sends_its_header(
    world: StripeWorld,
) -> None:
    await world.pay(1, 1000, "pm_card_bypassPending")
    account = await world.gateway.create_express_account(
        merchant_id=1, country="US", email=None, idempotency_key="account:1"
    )
    await world.control_post(f"accounts/{account['id']}/onboarding")
    platform = await first_page(world.gateway, "events")
    connected = await first_page(world.gateway, "events", stripe_account=account["id"])
    assert "payment_intent.succeeded" in {e["type"] for e in platform["data"]}
    assert [(e["type"], e["account"]) for e in connected["data"]] == [
        ("account.updated", account["id"])
    ]
