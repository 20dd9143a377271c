"""Idempotency keys expire: kept at least `idempotency_key_ttl` of sandbox time, then pruned."""

from __future__ import annotations

import pytest
import stripe

from stripe_sandbox import SandboxClock, SandboxSettings, run_sandbox_sync
from stripe_sandbox.errors import StripeError
from stripe_sandbox.idempotency import IdempotencyStore

from .factories import API_KEY, START, Control

DAY = 86_400


def _create(client: stripe.StripeClient, amount: int, key: str) -> stripe.PaymentIntent:
    return client.v1.payment_intents.create(
        params={"amount": amount, "currency": "usd"}, options={"idempotency_key": key}
    )


def test_key_replays_for_24_hours_then_makes_a_new_object(
    client: stripe.StripeClient, control: Control
) -> None:
    first = _create(client, 1_000, "order:1")
    control.advance(DAY - 1)
    assert _create(client, 1_000, "order:1").id == first.id
    with pytest.raises(stripe.IdempotencyError):
        _create(client, 2_000, "order:1")  # still the first request's key
    control.advance(1)
    again = _create(client, 1_000, "order:1")
    assert again.id != first.id
    assert _create(client, 1_000, "order:1").id == again.id  # the key now names the new one
    assert len(client.v1.payment_intents.list().data) == 2


def test_expired_key_takes_other_parameters() -> None:
    settings = SandboxSettings(idempotency_key_ttl=60)
    clock = SandboxClock(START, frozen=True)
    with run_sandbox_sync(seed=3, clock=clock, settings=settings) as sandbox:
        http_client = stripe.RequestsClient(timeout=10)
        client = stripe.StripeClient(
            API_KEY,
            base_addresses={"api": sandbox.url},
            http_client=http_client,
            max_network_retries=0,
        )
        control = Control(sandbox.url)
        try:
            first = _create(client, 1_000, "k")
            control.advance(60)
            other = _create(client, 2_000, "k")
            assert (other.id != first.id, other.amount) == (True, 2_000)
        finally:
            control.close()
            http_client.close()


def test_a_key_still_running_is_never_pruned() -> None:
    clock = SandboxClock(START, frozen=True)
    store = IdempotencyStore(clock, lambda: DAY)
    assert store.begin(API_KEY, "slow", "POST /v1/transfers a") is None
    assert store.begin(API_KEY, "done", "POST /v1/transfers b") is None
    store.finish(API_KEY, "done", 200, b"{}")
    clock.advance(2 * DAY)
    assert store.begin(API_KEY, "other", "POST /v1/transfers c") is None
    assert len(store) == 2  # "done" went; "slow" waits for its answer
    with pytest.raises(StripeError) as in_flight:
        store.begin(API_KEY, "slow", "POST /v1/transfers a")
    assert in_flight.value.status == 409
    store.finish(API_KEY, "slow", 200, b"{}")
    assert store.begin(API_KEY, "slow", "POST /v1/transfers a") is None  # old enough: new
