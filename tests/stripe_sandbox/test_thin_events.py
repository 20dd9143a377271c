"""Event destinations (API v2) and thin events: the payload, its signature as the SDK's
own parser checks it, retrieval with `GET /v2/core/events/{id}`, and routing by
`events_from`."""

from __future__ import annotations

import re
from typing import Any

import pytest
import stripe

from .factories import Control, Receiver, merchant, pay

ISO_MS_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def _destination(
    client: stripe.StripeClient,
    url: str,
    *,
    events_from: list[str] | None = None,
    payload: str = "thin",
    events: list[str] | None = None,
) -> Any:
    params: dict[str, Any] = {
        "name": "ICPay",
        "type": "webhook_endpoint",
        "event_payload": payload,
        "enabled_events": events or ["*"],
        "webhook_endpoint": {"url": url},
        "include": ["webhook_endpoint.signing_secret"],
    }
    if events_from is not None:
        params["events_from"] = events_from
    return client.v2.core.event_destinations.create(params=params)  # type: ignore[arg-type]


def _secret(destination: Any) -> str:
    return str(destination.webhook_endpoint.signing_secret)


def test_a_thin_destination_receives_signed_notifications_the_sdk_parses(
    client: stripe.StripeClient, control: Control, receiver: Receiver
) -> None:
    destination = _destination(client, f"{receiver.url}/thin")
    assert destination.object == "v2.core.event_destination"
    assert destination.event_payload == "thin" and destination.events_from == ["self"]
    assert _secret(destination).startswith("whsec_")
    intent = pay(client, 2_000)
    control.flush()

    assert receiver.types() == [
        "v1.payment_intent.created",
        "v1.charge.succeeded",
        "v1.payment_intent.succeeded",
    ]
    for delivery in receiver.received:
        body = delivery.event
        assert body["object"] == "v2.core.event" and body["livemode"] is False
        assert body["id"].startswith("evt_") and ISO_MS_Z.match(body["created"])
        assert "data" not in body and "context" not in body and "snapshot_event" not in body
        assert body["reason"]["type"] == "request"
        assert body["reason"]["request"]["id"].startswith("req_")
        notification = client.parse_event_notification(
            delivery.body, delivery.signature, _secret(destination)
        )
        assert notification.id == body["id"] and notification.context is None
    succeeded = receiver.received[-1]
    assert succeeded.event["related_object"] == {
        "id": intent.id,
        "type": "payment_intent",
        "url": f"/v1/payment_intents/{intent.id}",
    }
    notification = client.parse_event_notification(
        succeeded.body, succeeded.signature, _secret(destination)
    )
    fetched = notification.fetch_related_object()  # type: ignore[attr-defined]
    assert fetched.id == intent.id and fetched.status == "succeeded"
    # The plain webhook helper verifies the same signature scheme.
    stripe.WebhookSignature.verify_header(
        succeeded.body.decode(), succeeded.signature, _secret(destination)
    )
    with pytest.raises(stripe.SignatureVerificationError):
        client.parse_event_notification(succeeded.body, succeeded.signature, "whsec_wrong")


def test_a_thin_event_is_retrieved_with_its_snapshot_event(
    client: stripe.StripeClient, control: Control, receiver: Receiver
) -> None:
    _destination(client, receiver.url)
    pay(client, 1_000)
    control.flush()
    delivered = receiver.received[0].event
    event = client.v2.core.events.retrieve(delivered["id"])
    assert event.type == "v1.payment_intent.created" and event.created == delivered["created"]
    snapshot = client.v1.events.retrieve(str(event.snapshot_event))
    assert snapshot.type == "payment_intent.created"
    assert snapshot.data.object["id"] == delivered["related_object"]["id"]
    with pytest.raises(stripe.InvalidRequestError):
        client.v2.core.events.retrieve("evt_65nothere")


def test_connected_account_events_go_to_other_accounts_destinations_with_context(
    client: stripe.StripeClient, control: Control, receiver: Receiver
) -> None:
    platform = _destination(client, f"{receiver.url}/platform", events_from=["self"])
    connect = _destination(
        client,
        f"{receiver.url}/connect",
        events_from=["other_accounts"],
        events=["v1.account.updated", "v1.account.application.deauthorized"],
    )
    account = merchant(client, control)
    pay(client, 1_000, "pm_card_bypassPending")
    control.post(f"/accounts/{account.id}/deauthorize")
    control.flush()

    assert receiver.types("/connect") == [
        "v1.account.updated",
        "v1.account.application.deauthorized",
    ]
    assert not [t for t in receiver.types("/platform") if t.startswith("v1.account")]
    updated, deauthorized = (r for r in receiver.received if r.path == "/connect")
    assert updated.event["context"] == account.id
    assert updated.event["related_object"] == {
        "id": account.id,
        "type": "account",
        "url": f"/v1/accounts/{account.id}",
    }
    assert updated.event["reason"] is None  # the hosted onboarding form, not an API call
    # Deauthorization names no object: the account is the context.
    assert deauthorized.event["context"] == account.id
    assert "related_object" not in deauthorized.event
    notification = client.parse_event_notification(
        deauthorized.body, deauthorized.signature, _secret(connect)
    )
    assert str(notification.context) == account.id
    for r in receiver.received:
        if r.path == "/platform":
            client.parse_event_notification(r.body, r.signature, _secret(platform))


def test_a_connected_accounts_thin_event_is_read_with_its_context(
    client: stripe.StripeClient, control: Control, receiver: Receiver
) -> None:
    _destination(client, receiver.url, events_from=["other_accounts"])
    account = merchant(client, control)
    control.flush()
    [delivery] = receiver.received
    with pytest.raises(stripe.InvalidRequestError):  # the platform's own events only
        client.v2.core.events.retrieve(delivery.event["id"])
    event = client.v2.core.events.retrieve(
        delivery.event["id"], options={"stripe_context": account.id}
    )
    assert event.context == account.id
    notification = client.parse_event_notification_without_verification(delivery.body)
    assert notification.fetch_event().id == event.id
    # The SDK fetches the related account with the context, as the account itself.
    assert notification.fetch_related_object().id == account.id  # type: ignore[attr-defined]


def test_balance_available_names_the_balance_without_an_id(
    client: stripe.StripeClient, control: Control, receiver: Receiver
) -> None:
    _destination(client, receiver.url, events=["v1.balance.available"])
    pay(client, 10_000)
    control.advance(3 * 86_400)
    control.flush()
    [delivery] = receiver.received
    assert delivery.event["type"] == "v1.balance.available"
    assert delivery.event["related_object"] == {"type": "balance", "url": "/v1/balance"}
    assert delivery.event["reason"] is None  # time-driven
    notification = client.parse_event_notification_without_verification(delivery.body)
    balance = notification.fetch_related_object()  # type: ignore[attr-defined]
    assert balance.available[0].amount == 10_000 - 320


def test_thin_deliveries_share_the_faults_and_retries_of_webhooks(
    client: stripe.StripeClient, control: Control, receiver: Receiver
) -> None:
    destination = _destination(client, receiver.url)
    control.fault("deliveries", kind="drop", count=1, redeliver=True)
    receiver.statuses = [500]
    pay(client, 1_000)
    control.flush(everything=True)
    deliveries = control.get("/deliveries")["data"]
    assert {d["endpoint_id"] for d in deliveries} == {destination.id}
    assert {d["payload"] for d in deliveries} == {"thin"}
    assert all(d["status"] == "succeeded" for d in deliveries)
    assert sorted(d["attempts"] for d in deliveries) == [1, 2, 2]
    assert client.v1.events.list(params={"delivery_success": False}).data == []


def test_a_snapshot_destination_gets_the_v1_event(
    client: stripe.StripeClient, control: Control, receiver: Receiver
) -> None:
    destination = _destination(client, receiver.url, payload="snapshot")
    pay(client, 1_000)
    control.flush()
    assert receiver.types()[0] == "payment_intent.created"
    event = stripe.Webhook.construct_event(
        receiver.received[0].body, receiver.received[0].signature, _secret(destination)
    )
    assert event.object == "event"


def test_destinations_are_listed_disabled_and_deleted(
    client: stripe.StripeClient, control: Control, receiver: Receiver
) -> None:
    destination = _destination(client, receiver.url)
    listed = client.v2.core.event_destinations.list()
    assert [d.id for d in listed.data] == [destination.id]
    assert listed.data[0].webhook_endpoint.signing_secret is None  # shown once, on create
    assert client.v2.core.event_destinations.retrieve(destination.id).name == "ICPay"
    client.v2.core.event_destinations.disable(destination.id)
    pay(client, 1_000)
    control.flush()
    assert receiver.received == []
    client.v2.core.event_destinations.enable(destination.id)
    client.v2.core.event_destinations.delete(destination.id)
    assert client.v2.core.event_destinations.list().data == []


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"event_payload": "fat"}, "event_payload"),
        ({"events_from": ["everyone"]}, "events_from[0]"),
        ({"enabled_events": ["charge.*"]}, "enabled_events[0]"),
        ({"type": "amazon_eventbridge"}, "type"),
        ({"webhook_endpoint": {"url": "ftp://x"}}, "webhook_endpoint.url"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_a_bad_destination_is_refused_and_nothing_is_made(
    client: stripe.StripeClient, receiver: Receiver, change: dict[str, Any], param: str
) -> None:
    params: dict[str, Any] = {
        "name": "x",
        "type": "webhook_endpoint",
        "event_payload": "thin",
        "enabled_events": ["*"],
        "webhook_endpoint": {"url": receiver.url},
        **change,
    }
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v2.core.event_destinations.create(params=params)  # type: ignore[arg-type]
    assert refused.value.json_body["error"]["param"] == param  # type: ignore[index]
    assert client.v2.core.event_destinations.list().data == []
