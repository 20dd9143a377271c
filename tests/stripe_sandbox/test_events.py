"""/v1/events: filters, retrieval, retention, and determinism of a seeded sandbox."""

from __future__ import annotations

import pytest
import stripe

from stripe_sandbox import SandboxClock, run_sandbox_sync

from .factories import API_KEY, START, Control, pay


def test_events_list_filters_by_types_and_retrieve(client: stripe.StripeClient) -> None:
    intent = pay(client, 1_000, "pm_card_bypassPending")
    client.v1.refunds.create(params={"payment_intent": intent.id, "amount": 100})
    types = [e.type for e in client.v1.events.list(params={"limit": 100}).data]
    assert types == [
        "charge.refunded",
        "refund.created",
        "payment_intent.succeeded",
        "charge.succeeded",
        "balance.available",
        "payment_intent.created",
    ]
    chosen = client.v1.events.list(params={"types": ["refund.created", "charge.succeeded"]})
    assert [e.type for e in chosen.data] == ["refund.created", "charge.succeeded"]
    wildcard = client.v1.events.list(params={"type": "charge.*"})
    assert [e.type for e in wildcard.data] == ["charge.refunded", "charge.succeeded"]
    event = client.v1.events.retrieve(chosen.data[0].id)
    assert event.data.object["object"] == "refund"
    assert event.request is not None and str(event.request.id).startswith("req_")
    assert event.api_version and event.livemode is False


def test_events_older_than_30_days_are_gone(client: stripe.StripeClient, control: Control) -> None:
    old = client.v1.payment_intents.create(params={"amount": 1_000, "currency": "usd"})
    [event] = client.v1.events.list().data
    control.advance(31 * 86_400)
    assert client.v1.events.list().data == []
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.events.retrieve(event.id)
    assert client.v1.payment_intents.retrieve(old.id).id == old.id


def _run_scenario() -> list[str]:
    with run_sandbox_sync(seed=42, clock=SandboxClock(START, frozen=True)) as running:
        http_client = stripe.RequestsClient()
        client = stripe.StripeClient(
            API_KEY, base_addresses={"api": running.url}, http_client=http_client
        )
        intent = pay(client, 2_000)
        account = client.v1.accounts.create(params={"type": "express"})
        ids = [intent.id, str(intent.latest_charge), account.id]
        ids += [e.id for e in client.v1.events.list().data]
        http_client.close()
        return ids


def test_same_seed_gives_the_same_ids() -> None:
    assert _run_scenario() == _run_scenario()


def test_types_take_exact_names_and_type_takes_a_wildcard(client: stripe.StripeClient) -> None:
    pay(client, 1_000)
    assert client.v1.events.list(params={"types": ["charge.*"]}).data == []
    exact = client.v1.events.list(params={"types": ["charge.succeeded"]}).data
    wildcard = client.v1.events.list(params={"type": "charge.*"}).data
    assert [e.type for e in exact] == [e.type for e in wildcard] == ["charge.succeeded"]


def test_a_cursor_need_not_match_the_filter(client: stripe.StripeClient) -> None:
    """Polling "every charge event since the last event I saw", whatever that event was."""
    pay(client, 1_000)
    [last_seen, *_] = client.v1.events.list(params={"limit": 100}).data
    assert last_seen.type.startswith("payment_intent.")
    pay(client, 2_000)
    newer = client.v1.events.list(
        params={"type": "charge.*", "ending_before": last_seen.id, "limit": 100}
    ).data
    assert [(e.type, e.data.object["amount"]) for e in newer] == [("charge.succeeded", 2_000)]
    older = client.v1.events.list(
        params={"type": "charge.*", "starting_after": last_seen.id, "limit": 100}
    ).data
    assert [(e.type, e.data.object["amount"]) for e in older] == [("charge.succeeded", 1_000)]


def _intent(client: stripe.StripeClient) -> str:
    """One `payment_intent.created` event; its id."""
    client.v1.payment_intents.create(params={"amount": 1_000, "currency": "usd"})
    return client.v1.events.list(params={"limit": 1}).data[0].id


def test_created_bounds_select_by_second(client: stripe.StripeClient, control: Control) -> None:
    first = _intent(client)
    control.advance(10)
    second = _intent(client)
    control.advance(10)
    third = _intent(client)
    at = client.v1.events.retrieve(second).created

    def listed(**bounds: int) -> list[str]:
        return [e.id for e in client.v1.events.list(params={"created": bounds}).data]  # type: ignore[typeddict-item]

    assert listed(gte=at) == [third, second]
    assert listed(gt=at) == [third]
    assert listed(lte=at) == [second, first]
    assert listed(lt=at) == [first]
    assert listed(gte=at, lte=at) == [second]
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.events.list(params={"created": {"gte": "soon"}})  # type: ignore[typeddict-item]
    assert refused.value.http_status == 400


def test_pages_of_one_second_follow_each_other_by_id(client: stripe.StripeClient) -> None:
    """Five events of one second, two a page: `starting_after` goes on from the last one read,
    `ending_before` back from the first, and no event is skipped or read twice."""
    made = [_intent(client) for _ in range(5)]  # the frozen clock: all of one second
    newest_first = list(reversed(made))
    read: list[str] = []
    params: dict[str, object] = {"limit": 2, "created": {"gte": START}}
    while True:
        page = client.v1.events.list(params=params)  # type: ignore[arg-type]
        read += [e.id for e in page.data]
        if not page.has_more:
            break
        params["starting_after"] = page.data[-1].id
    assert read == newest_first
    back = client.v1.events.list(params={"limit": 2, "ending_before": made[0]})
    assert [e.id for e in back.data] == newest_first[2:4] and back.has_more


def test_a_connected_accounts_events_are_listed_only_as_that_account(
    client: stripe.StripeClient,
) -> None:
    account = client.v1.accounts.create(params={"type": "express", "country": "US"})
    client.v1.accounts.update(account.id, params={"metadata": {"icpay_account_id": "7"}})
    own = client.v1.events.list(params={"limit": 100}, options={"stripe_account": account.id})
    assert own.data and {e.account for e in own.data} == {account.id}
    platform = client.v1.events.list(params={"limit": 100}).data
    assert all(getattr(e, "account", None) is None for e in platform)
