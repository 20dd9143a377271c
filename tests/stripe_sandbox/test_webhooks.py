"""Webhook endpoints and signed deliveries, verified with stripe.Webhook.construct_event."""

from __future__ import annotations

import pytest
import stripe

from .factories import Control, Receiver, merchant, pay


def _endpoint(
    client: stripe.StripeClient, url: str, events: list[str] | None = None, connect: bool = False
) -> stripe.WebhookEndpoint:
    return client.v1.webhook_endpoints.create(
        params={"url": url, "enabled_events": events or ["*"], "connect": connect}
    )


def test_deliveries_are_signed_and_verify_with_the_endpoint_secret(
    client: stripe.StripeClient, control: Control, receiver: Receiver
) -> None:
    endpoint = _endpoint(client, f"{receiver.url}/hook")
    assert str(endpoint.secret).startswith("whsec_")
    assert endpoint.enabled_events == ["*"] and endpoint.status == "enabled"
    intent = pay(client, 2_000)
    control.flush()
    assert len(receiver.received) == 3
    for delivery in receiver.received:
        event = stripe.Webhook.construct_event(
            delivery.body, delivery.signature, str(endpoint.secret)
        )
        assert event.id.startswith("evt_") and "account" not in event
    assert sorted(receiver.types()) == [
        "charge.succeeded",
        "payment_intent.created",
        "payment_intent.succeeded",
    ]
    succeeded = next(
        r.event for r in receiver.received if r.event["type"].startswith("payment_intent.s")
    )
    assert succeeded["data"]["object"]["id"] == intent.id
    assert client.v1.events.list(params={"delivery_success": False}).data == []
    retrieved = client.v1.webhook_endpoints.retrieve(endpoint.id)
    assert "secret" not in retrieved


def test_wrong_secret_is_rejected_by_the_sdk(
    client: stripe.StripeClient, control: Control, receiver: Receiver
) -> None:
    _endpoint(client, receiver.url)
    pay(client, 1_000)
    control.flush()
    delivery = receiver.received[0]
    try:
        stripe.Webhook.construct_event(delivery.body, delivery.signature, "whsec_wrong")
    except stripe.SignatureVerificationError:
        pass
    else:
        raise AssertionError("a wrong secret must not verify")


def test_connect_events_carry_account_and_go_only_to_connect_endpoints(
    client: stripe.StripeClient, control: Control, receiver: Receiver
) -> None:
    platform = _endpoint(client, f"{receiver.url}/platform", ["*"])
    connect = _endpoint(client, f"{receiver.url}/connect", ["account.updated"], connect=True)
    account = merchant(client, control)
    pay(client, 1_000)
    control.flush()
    connect_events = [r for r in receiver.received if r.path == "/connect"]
    assert [r.event["type"] for r in connect_events] == ["account.updated"]
    event = stripe.Webhook.construct_event(
        connect_events[0].body, connect_events[0].signature, str(connect.secret)
    )
    assert event.account == account.id
    assert event.data.object["details_submitted"] is True
    assert "account.updated" not in receiver.types("/platform")
    for r in receiver.received:
        if r.path == "/platform":
            stripe.Webhook.construct_event(r.body, r.signature, str(platform.secret))


def test_enabled_events_filter_what_is_delivered(
    client: stripe.StripeClient, control: Control, receiver: Receiver
) -> None:
    _endpoint(client, receiver.url, ["charge.succeeded"])
    pay(client, 1_000)
    control.flush()
    assert receiver.types() == ["charge.succeeded"]


def test_enabled_events_take_exact_names_or_star(client: stripe.StripeClient) -> None:
    for wrong in ("charge.*", "charge", "Charge.Succeeded"):
        with pytest.raises(stripe.InvalidRequestError, match="Invalid event type"):
            _endpoint(client, "https://a.example/hook", [wrong])


def test_non_2xx_deliveries_are_retried_with_backoff(
    client: stripe.StripeClient, control: Control, receiver: Receiver
) -> None:
    _endpoint(client, receiver.url, ["payment_intent.created"])
    receiver.statuses = [500, 503]
    client.v1.payment_intents.create(params={"amount": 1_000, "currency": "usd"})
    control.flush()
    assert len(receiver.received) == 1
    control.flush()
    assert len(receiver.received) == 1  # the retry is not due yet
    assert client.v1.events.list(params={"delivery_success": False}).data[0].pending_webhooks == 1
    control.advance(10)  # base delay in these tests
    control.flush()
    assert len(receiver.received) == 2
    control.advance(10)
    control.flush()
    assert len(receiver.received) == 2  # second backoff is 20 s
    control.advance(10)
    control.flush()
    assert len(receiver.received) == 3
    ids = {r.event["id"] for r in receiver.received}
    assert len(ids) == 1
    [delivery] = control.get("/deliveries")["data"]
    assert (delivery["status"], delivery["attempts"]) == ("succeeded", 3)
    assert client.v1.events.list(params={"delivery_success": True}).data[0].pending_webhooks == 0


def test_background_worker_delivers_without_flush(
    client: stripe.StripeClient, receiver: Receiver
) -> None:
    import time

    _endpoint(client, receiver.url)
    client.v1.payment_intents.create(params={"amount": 1_000, "currency": "usd"})
    deadline = time.monotonic() + 5
    while not receiver.received and time.monotonic() < deadline:
        time.sleep(0.02)
    assert receiver.types() == ["payment_intent.created"]


def test_delivery_faults_drop_duplicate_reorder_delay(
    client: stripe.StripeClient, control: Control, receiver: Receiver
) -> None:
    _endpoint(client, receiver.url, ["payment_intent.created"])

    def create(n: int) -> list[str]:
        return [
            client.v1.payment_intents.create(params={"amount": 1_000 + i, "currency": "usd"}).id
            for i in range(n)
        ]

    control.fault("deliveries", kind="drop", count=1)
    dropped = create(2)
    control.flush(everything=True)
    got = [r.event["data"]["object"]["id"] for r in receiver.received]
    assert got == [dropped[1]]
    missed = client.v1.events.list(params={"delivery_success": False}).data
    assert [e.data.object["id"] for e in missed] == [dropped[0]]

    receiver.received.clear()
    control.fault("deliveries", kind="duplicate", count=1)
    [dup] = create(1)
    control.flush()
    assert [r.event["data"]["object"]["id"] for r in receiver.received] == [dup, dup]

    receiver.received.clear()
    control.fault("deliveries", kind="reorder", count=1)
    first, second = create(2)
    control.flush()
    assert [r.event["data"]["object"]["id"] for r in receiver.received] == [second, first]

    receiver.received.clear()
    control.fault("deliveries", kind="delay", count=1, seconds=60)
    [late] = create(1)
    control.flush()
    assert receiver.received == []
    control.advance(60)
    control.flush()
    assert [r.event["data"]["object"]["id"] for r in receiver.received] == [late]


def test_probability_fault_drops_everything_at_one(
    client: stripe.StripeClient, control: Control, receiver: Receiver
) -> None:
    _endpoint(client, receiver.url)
    control.fault("deliveries", kind="drop", probability=1.0)
    client.v1.payment_intents.create(params={"amount": 1_000, "currency": "usd"})
    control.flush()
    assert receiver.received == []
    assert control.get("/faults")["deliveries"][0]["fired"] == 1
    control._http.delete("/_sandbox/faults")
    client.v1.payment_intents.create(params={"amount": 1_000, "currency": "usd"})
    control.flush()
    assert len(receiver.received) == 1


def test_webhook_endpoints_list_update_delete(
    client: stripe.StripeClient, control: Control, receiver: Receiver
) -> None:
    first = _endpoint(client, receiver.url)
    second = _endpoint(client, receiver.url, ["refund.created"], connect=True)
    listed = client.v1.webhook_endpoints.list()
    assert [e.id for e in listed.data] == [second.id, first.id]
    disabled = client.v1.webhook_endpoints.update(first.id, params={"disabled": True})
    assert disabled.status == "disabled"
    client.v1.payment_intents.create(params={"amount": 1_000, "currency": "usd"})
    control.flush()
    assert receiver.received == []
    deleted = client.v1.webhook_endpoints.delete(second.id)
    assert deleted.deleted is True
    assert [e.id for e in client.v1.webhook_endpoints.list().data] == [first.id]


def test_every_delivery_held_arrives_in_reverse_order(
    client: stripe.StripeClient, control: Control, receiver: Receiver
) -> None:
    _endpoint(client, receiver.url, ["payment_intent.created"])
    control.fault("deliveries", kind="reorder", probability=1.0)
    created = [
        client.v1.payment_intents.create(params={"amount": 1_000 + i, "currency": "usd"}).id
        for i in range(4)
    ]
    control.flush()
    assert [r.event["data"]["object"]["id"] for r in receiver.received] == created[::-1]


def test_duplicate_sends_as_many_copies_as_asked(
    client: stripe.StripeClient, control: Control, receiver: Receiver
) -> None:
    _endpoint(client, receiver.url, ["payment_intent.created"])
    control.fault("deliveries", kind="duplicate", count=1, copies=3)
    intent = client.v1.payment_intents.create(params={"amount": 1_000, "currency": "usd"})
    control.flush()
    assert [r.event["data"]["object"]["id"] for r in receiver.received] == [intent.id] * 3


def test_a_redelivered_drop_is_retried_like_a_lost_attempt(
    client: stripe.StripeClient, control: Control, receiver: Receiver
) -> None:
    _endpoint(client, receiver.url, ["payment_intent.created"])
    control.fault("deliveries", kind="drop", count=1, redeliver=True)
    intent = client.v1.payment_intents.create(params={"amount": 1_000, "currency": "usd"})
    control.flush()
    assert receiver.received == []
    [delivery] = control.get("/deliveries")["data"]
    assert (delivery["status"], delivery["attempts"]) == ("pending", 1)
    control.flush(everything=True)  # Stripe's retry, without waiting the backoff out
    assert [r.event["data"]["object"]["id"] for r in receiver.received] == [intent.id]
