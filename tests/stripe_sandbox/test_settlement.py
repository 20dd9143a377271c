"""How charges settle: asynchronous capture, and currencies converted into the usd balance."""

from __future__ import annotations

from typing import Any

import pytest
import stripe

from stripe_sandbox import SandboxClock, SandboxSettings, run_sandbox_sync

from .factories import API_KEY, START, Control, merchant, pay

ASYNC = {"async_capture": True, "balance_transaction_delay": 5}


def oldest_first(client: stripe.StripeClient) -> list[stripe.Event]:
    return list(reversed(client.v1.events.list(params={"limit": 100}).data))


def types(client: stripe.StripeClient) -> list[str]:
    return [event.type for event in oldest_first(client)]


def charge_of(client: stripe.StripeClient, intent: stripe.PaymentIntent) -> stripe.Charge:
    latest = intent.latest_charge
    charge_id = latest.id if isinstance(latest, stripe.Charge) else str(latest)
    return client.v1.charges.retrieve(charge_id, params={"expand": ["balance_transaction"]})


def test_async_capture_bypass_pending_funds_are_available_before_the_charge_shows_them(
    client: stripe.StripeClient, control: Control
) -> None:
    assert control.post("/settings", ASYNC)["async_capture"] is True
    intent = client.v1.payment_intents.create(
        params={
            "amount": 10_000,
            "currency": "usd",
            "payment_method": "pm_card_bypassPending",
            "payment_method_types": ["card"],
            "confirm": True,
            "expand": ["latest_charge.balance_transaction"],
        }
    )
    assert intent.status == "succeeded" and intent.capture_method == "automatic_async"
    assert isinstance(intent.latest_charge, stripe.Charge)
    assert intent.latest_charge.balance_transaction is None
    assert charge_of(client, intent).balance_transaction is None
    succeeded = {e.type: e for e in oldest_first(client)}
    assert succeeded["charge.succeeded"].data.object["balance_transaction"] is None
    assert succeeded["payment_intent.succeeded"].data.object["status"] == "succeeded"
    # The funds moved already: balance.available came first.
    assert client.v1.balance.retrieve().available[0].amount == 9_680
    assert "charge.updated" not in types(client)

    control.advance(5)
    charge = charge_of(client, intent)
    txn = charge.balance_transaction
    assert isinstance(txn, stripe.BalanceTransaction)
    assert (txn.amount, txn.fee, txn.net, txn.status, txn.source) == (
        10_000,
        320,
        9_680,
        "available",
        charge.id,
    )
    events = oldest_first(client)
    names = [e.type for e in events]
    assert names.index("balance.available") < names.index("charge.updated")
    updated = events[names.index("charge.updated")]
    assert updated.data.object["balance_transaction"] == txn.id
    assert updated.to_dict()["data"]["previous_attributes"] == {"balance_transaction": None}
    assert updated.request is not None and updated.request.id is None  # time-driven


def test_async_capture_visa_the_charge_shows_its_transaction_before_funds_are_available(
    client: stripe.StripeClient, control: Control
) -> None:
    control.post("/settings", ASYNC)
    intent = pay(client, 10_000)
    assert charge_of(client, intent).balance_transaction is None
    control.advance(5)
    txn = charge_of(client, intent).balance_transaction
    assert isinstance(txn, stripe.BalanceTransaction) and txn.status == "pending"
    assert "balance.available" not in types(client)

    control.advance(txn.available_on - control.get("/state")["now"])
    names = types(client)
    assert names.index("charge.updated") < names.index("balance.available")
    assert client.v1.balance.retrieve().available[0].amount == 9_680


def test_async_capture_source_transaction_transfer_before_the_transaction_shows(
    client: stripe.StripeClient, control: Control
) -> None:
    control.post("/settings", ASYNC)
    intent = pay(client, 10_000)
    account = merchant(client, control)
    transfer = client.v1.transfers.create(
        params={
            "amount": 5_000,
            "currency": "usd",
            "destination": account.id,
            "source_transaction": str(intent.latest_charge),
        }
    )
    assert transfer.source_transaction == intent.latest_charge


def test_capture_method_automatic_attaches_the_transaction_at_once(
    client: stripe.StripeClient, control: Control
) -> None:
    control.post("/settings", ASYNC)
    intent = pay(client, 10_000, capture_method="automatic")
    assert isinstance(charge_of(client, intent).balance_transaction, stripe.BalanceTransaction)
    control.advance(5)
    assert "charge.updated" not in types(client)


def test_sync_capture_is_the_default(client: stripe.StripeClient, control: Control) -> None:
    assert control.get("/settings")["async_capture"] is False
    intent = pay(client, 10_000)
    assert isinstance(charge_of(client, intent).balance_transaction, stripe.BalanceTransaction)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"async_capture": "yes"}, "async_capture"),
        ({"balance_transaction_delay": -1}, "balance_transaction_delay"),
        ({"exchange_rates": {"eur": 0}}, "exchange_rates[eur]"),
        ({"exchange_rates": {"eur": True}}, "exchange_rates[eur]"),
        ({"exchange_rates": {"xyz": 1.5}}, "exchange_rates[xyz]"),
        ({"exchange_rates": {"usd": 1.0}}, "exchange_rates[usd]"),
        ({"exchange_rates": [1]}, "exchange_rates"),
        ({"async_capture": True, "exchange_rates": {"eur": "1.2"}}, "exchange_rates[eur]"),
        ({"capture": True}, "capture"),
    ],
)
def test_settings_refused_change_nothing(
    control: Control, body: dict[str, Any], param: str
) -> None:
    before = control.get("/settings")
    answer = control.request("POST", "/settings", body)
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == param
    assert control.get("/settings") == before


def eur_payment(client: stripe.StripeClient, amount: int, card: str) -> stripe.PaymentIntent:
    return pay(client, amount, card, currency="eur")


def test_eur_charge_settles_in_usd_with_its_exchange_rate(
    client: stripe.StripeClient, control: Control
) -> None:
    intent = eur_payment(client, 10_000, "pm_card_visa")
    charge = charge_of(client, intent)
    assert (charge.amount, charge.currency) == (10_000, "eur")
    txn = charge.balance_transaction
    assert isinstance(txn, stripe.BalanceTransaction)
    # 100.00 EUR at 1.08: 108.00 USD, less 2.9% + 30c (3.43) and 1% for the conversion (1.08).
    assert (txn.amount, txn.currency, txn.exchange_rate, txn.fee, txn.net) == (
        10_800,
        "usd",
        1.08,
        451,
        10_349,
    )
    assert [(f.type, f.amount, f.currency) for f in txn.fee_details] == [("stripe_fee", 451, "usd")]
    balance = client.v1.balance.retrieve()
    assert [(b.currency, b.amount) for b in balance.pending] == [("usd", 10_349)]
    assert [(b.currency, b.amount) for b in balance.available] == [("usd", 0)]
    listed = client.v1.balance_transactions.list(params={"currency": "eur"})
    assert listed.data == []


def test_eur_refund_is_converted_at_the_rate_of_its_day(
    client: stripe.StripeClient, control: Control
) -> None:
    intent = eur_payment(client, 10_000, "pm_card_bypassPending")
    assert (
        control.post("/settings", {"exchange_rates": {"eur": 1.1}})["exchange_rates"]["eur"] == 1.1
    )
    refund = client.v1.refunds.create(
        params={"payment_intent": intent.id, "amount": 5_000, "expand": ["balance_transaction"]}
    )
    assert (refund.amount, refund.currency, refund.status) == (5_000, "eur", "succeeded")
    txn = refund.balance_transaction
    assert isinstance(txn, stripe.BalanceTransaction)
    assert (txn.type, txn.amount, txn.currency, txn.exchange_rate, txn.fee, txn.net) == (
        "refund",
        -5_500,
        "usd",
        1.1,
        0,
        -5_500,
    )
    assert client.v1.balance.retrieve().available[0].amount == 10_349 - 5_500


def test_eur_refund_waits_for_usd_funds(client: stripe.StripeClient, control: Control) -> None:
    intent = eur_payment(client, 10_000, "pm_card_visa")
    refund = client.v1.refunds.create(params={"payment_intent": intent.id, "amount": 1_000})
    assert (refund.status, refund.pending_reason) == ("pending", "insufficient_funds")
    control.advance(3 * 86_400)
    refund = client.v1.refunds.retrieve(refund.id)
    txn = client.v1.balance_transactions.retrieve(str(refund.balance_transaction))
    assert (refund.status, txn.amount, txn.currency) == ("succeeded", -1_080, "usd")


def test_eur_refund_failure_gives_back_what_the_refund_took(
    client: stripe.StripeClient, control: Control
) -> None:
    intent = eur_payment(client, 10_000, "pm_card_refundFail")
    control.advance(3 * 86_400)
    refund = client.v1.refunds.create(params={"payment_intent": intent.id, "amount": 2_000})
    control.post("/settings", {"exchange_rates": {"eur": 1.5}})
    control.advance(60)
    refund = client.v1.refunds.retrieve(refund.id)
    failure = client.v1.balance_transactions.retrieve(str(refund.failure_balance_transaction))
    assert (refund.status, failure.amount, failure.currency, failure.exchange_rate) == (
        "failed",
        2_160,
        "usd",
        1.08,
    )
    assert client.v1.balance.retrieve().available[0].amount == 10_349


def test_zero_decimal_currency_converts_by_major_unit(client: stripe.StripeClient) -> None:
    intent = pay(client, 1_000, "pm_card_visa", currency="jpy")  # 1,000 yen
    txn = charge_of(client, intent).balance_transaction
    assert isinstance(txn, stripe.BalanceTransaction)
    assert (txn.amount, txn.currency, txn.exchange_rate) == (670, "usd", 0.0067)


def test_a_currency_without_a_rate_is_refused_at_create() -> None:
    settings = SandboxSettings(exchange_rates={})
    with run_sandbox_sync(
        seed=3, clock=SandboxClock(START, frozen=True), settings=settings
    ) as running:
        http = stripe.RequestsClient(timeout=10)
        client = stripe.StripeClient(
            API_KEY, base_addresses={"api": running.url}, http_client=http, max_network_retries=0
        )
        with pytest.raises(stripe.InvalidRequestError) as refused:
            pay(client, 10_000, currency="eur")
        assert refused.value.param == "currency"
        assert "no exchange rate from eur to usd" in str(refused.value.user_message)
        assert client.v1.payment_intents.list().data == []
        assert client.v1.events.list().data == []
        http.close()
