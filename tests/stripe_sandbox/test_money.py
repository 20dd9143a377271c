"""Payments, pending vs available funds, fees and transfers, through the real SDK."""

from __future__ import annotations

import pytest
import stripe

from .factories import Control, merchant, pay


def test_visa_charge_funds_pending_until_available_on(
    client: stripe.StripeClient, control: Control
) -> None:
    intent = pay(client, 10_000)
    assert intent.status == "succeeded"
    assert intent.amount_received == 10_000
    charge = client.v1.charges.retrieve(
        str(intent.latest_charge), params={"expand": ["balance_transaction"]}
    )
    txn = charge.balance_transaction
    assert isinstance(txn, stripe.BalanceTransaction)
    assert (txn.type, txn.status, txn.amount, txn.fee, txn.net) == (
        "charge",
        "pending",
        10_000,
        320,
        9_680,
    )
    assert txn.fee_details[0].type == "stripe_fee"
    balance = client.v1.balance.retrieve()
    assert (balance.available[0].amount, balance.pending[0].amount) == (0, 9_680)

    account = merchant(client, control)
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.transfers.create(
            params={"amount": 5_000, "currency": "usd", "destination": account.id}
        )
    assert refused.value.code == "balance_insufficient"
    assert refused.value.http_status == 400
    assert str(refused.value.user_message).startswith("Insufficient funds in your Stripe account.")

    control.advance(txn.available_on - 1 - control.get("/state")["now"])
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.transfers.create(
            params={"amount": 5_000, "currency": "usd", "destination": account.id}
        )
    control.advance(1)
    assert client.v1.balance_transactions.retrieve(txn.id).status == "available"
    transfer = client.v1.transfers.create(
        params={"amount": 5_000, "currency": "usd", "destination": account.id}
    )
    assert transfer.amount == 5_000 and transfer.reversed is False
    balance = client.v1.balance.retrieve()
    assert (balance.available[0].amount, balance.pending[0].amount) == (4_680, 0)
    types = [e.type for e in client.v1.events.list(params={"limit": 100}).data]
    assert "balance.available" in types and "transfer.created" in types


def test_bypass_pending_card_makes_transfer_succeed_at_once(
    client: stripe.StripeClient, control: Control
) -> None:
    pay(client, 2_000, "pm_card_bypassPending")
    assert client.v1.balance.retrieve().available[0].amount == 2_000 - 88
    account = merchant(client, control)
    transfer = client.v1.transfers.create(
        params={"amount": 1_912, "currency": "usd", "destination": account.id}
    )
    assert transfer.destination == account.id
    assert client.v1.balance.retrieve().available[0].amount == 0
    txn = client.v1.balance_transactions.retrieve(str(transfer.balance_transaction))
    assert (txn.type, txn.amount, txn.source) == ("transfer", -1_912, transfer.id)


def test_declined_card_is_a_402_card_error(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.CardError) as declined:
        pay(client, 1_000, "pm_card_chargeDeclined")
    assert declined.value.http_status == 402
    assert declined.value.code == "card_declined"
    error = declined.value.error
    assert error is not None and error.payment_intent is not None
    intent = client.v1.payment_intents.retrieve(error.payment_intent.id)
    assert intent.status == "requires_payment_method"
    assert intent.last_payment_error is not None
    assert intent.last_payment_error.decline_code == "generic_decline"
    charge = client.v1.charges.retrieve(str(intent.latest_charge))
    assert (charge.status, charge.paid, charge.failure_code) == ("failed", False, "card_declined")
    types = [e.type for e in client.v1.events.list().data]
    assert {"charge.failed", "payment_intent.payment_failed"} <= set(types)
    assert client.v1.balance.retrieve().pending[0].amount == 0


def test_payment_intent_create_confirm_cancel_lifecycle(client: stripe.StripeClient) -> None:
    intent = client.v1.payment_intents.create(
        params={"amount": 1_500, "currency": "usd", "metadata": {"icpay_payment_id": "p1"}}
    )
    assert intent.status == "requires_payment_method"
    assert intent.automatic_payment_methods is not None
    with pytest.raises(stripe.InvalidRequestError) as redirect:
        client.v1.payment_intents.confirm(intent.id, params={"payment_method": "pm_card_visa"})
    assert "allow_redirects" in str(redirect.value.user_message)
    confirmed = client.v1.payment_intents.confirm(
        intent.id,
        params={"payment_method": "pm_card_visa", "return_url": "https://shop.example/done"},
    )
    assert confirmed.status == "succeeded"
    assert str(confirmed.payment_method).startswith("pm_")
    with pytest.raises(stripe.InvalidRequestError) as late:
        client.v1.payment_intents.cancel(intent.id)
    assert late.value.code == "payment_intent_unexpected_state"

    other = client.v1.payment_intents.create(params={"amount": 700, "currency": "usd"})
    canceled = client.v1.payment_intents.cancel(
        other.id, params={"cancellation_reason": "abandoned"}
    )
    assert (canceled.status, canceled.cancellation_reason) == ("canceled", "abandoned")
    listed = client.v1.payment_intents.list(params={"limit": 2})
    assert [i.id for i in listed.data] == [other.id, intent.id]
    charges = client.v1.charges.list(params={"payment_intent": intent.id})
    assert [c.id for c in charges.data] == [confirmed.latest_charge]
    assert charges.data[0].metadata.to_dict() == {"icpay_payment_id": "p1"}
    types = [e.type for e in client.v1.events.list(params={"limit": 100}).data]
    assert types.count("payment_intent.created") == 2
    assert "payment_intent.canceled" in types


def test_amount_below_minimum_is_refused(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as small:
        pay(client, 10)
    assert (small.value.code, small.value.param) == ("amount_too_small", "amount")


def test_transfer_needs_an_onboarded_existing_destination(
    client: stripe.StripeClient, control: Control
) -> None:
    pay(client, 5_000, "pm_card_bypassPending")
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        client.v1.transfers.create(
            params={"amount": 100, "currency": "usd", "destination": "acct_nope"}
        )
    assert (unknown.value.code, unknown.value.param) == ("resource_missing", "destination")
    fresh = client.v1.accounts.create(params={"type": "express", "country": "US"})
    with pytest.raises(stripe.InvalidRequestError) as not_ready:
        client.v1.transfers.create(
            params={"amount": 100, "currency": "usd", "destination": fresh.id}
        )
    assert not_ready.value.code == "insufficient_capabilities_for_transfer"


def test_transfer_reversals_full_and_partial_return_funds(
    client: stripe.StripeClient, control: Control
) -> None:
    pay(client, 10_000, "pm_card_bypassPending")
    account = merchant(client, control)
    transfer = client.v1.transfers.create(
        params={
            "amount": 6_000,
            "currency": "usd",
            "destination": account.id,
            "metadata": {"icpay_payout_id": "po-1"},
        }
    )
    assert client.v1.balance.retrieve().available[0].amount == 9_680 - 6_000
    partial = client.v1.transfers.reversals.create(transfer.id, params={"amount": 2_000})
    assert partial.amount == 2_000 and partial.transfer == transfer.id
    after = client.v1.transfers.retrieve(transfer.id)
    assert (after.amount_reversed, after.reversed) == (2_000, False)
    assert client.v1.balance.retrieve().available[0].amount == 9_680 - 4_000
    rest = client.v1.transfers.reversals.create(transfer.id)
    assert rest.amount == 4_000
    after = client.v1.transfers.retrieve(transfer.id)
    assert (after.amount_reversed, after.reversed) == (6_000, True)
    assert [r.id for r in after.reversals.data] == [rest.id, partial.id]
    listed = client.v1.transfers.reversals.list(transfer.id)
    assert [r.id for r in listed.data] == [rest.id, partial.id]
    assert client.v1.balance.retrieve().available[0].amount == 9_680
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.transfers.reversals.create(transfer.id, params={"amount": 1})
    txns = client.v1.balance_transactions.list(params={"type": "transfer_refund"})
    assert sorted(t.amount for t in txns.data) == [2_000, 4_000]
    reversed_events = client.v1.events.list(params={"types": ["transfer.reversed"]}).data
    assert len(reversed_events) == 2


def test_dashboard_reversal_emits_transfer_reversed(
    client: stripe.StripeClient, control: Control
) -> None:
    pay(client, 10_000, "pm_card_bypassPending")
    account = merchant(client, control)
    transfer = client.v1.transfers.create(
        params={"amount": 3_000, "currency": "usd", "destination": account.id}
    )
    reversal = control.post(f"/dashboard/transfers/{transfer.id}/reversals", {"amount": 1_000})
    assert reversal["object"] == "transfer_reversal"
    event = client.v1.events.list(params={"type": "transfer.reversed"}).data[0]
    assert event.data.object["amount_reversed"] == 1_000
    assert event.request is not None and event.request.id is None


def test_transfer_with_source_transaction_uses_pending_funds(
    client: stripe.StripeClient, control: Control
) -> None:
    intent = pay(client, 10_000)
    account = merchant(client, control)
    transfer = client.v1.transfers.create(
        params={
            "amount": 9_000,
            "currency": "usd",
            "destination": account.id,
            "source_transaction": str(intent.latest_charge),
        }
    )
    balance = client.v1.balance.retrieve()
    assert (balance.available[0].amount, balance.pending[0].amount) == (0, 680)
    assert transfer.source_transaction == intent.latest_charge


def test_balance_transactions_filter_by_type_and_source(client: stripe.StripeClient) -> None:
    first = pay(client, 1_000, "pm_card_bypassPending")
    pay(client, 2_000, "pm_card_bypassPending")
    refund = client.v1.refunds.create(params={"payment_intent": first.id, "amount": 300})
    charges = client.v1.balance_transactions.list(params={"type": "charge"})
    assert sorted(t.amount for t in charges.data) == [1_000, 2_000]
    by_source = client.v1.balance_transactions.list(params={"source": refund.id})
    assert [(t.type, t.amount) for t in by_source.data] == [("refund", -300)]
    with pytest.raises(stripe.InvalidRequestError) as no_payout:
        client.v1.balance_transactions.list(params={"payout": "po_missing"})
    assert no_payout.value.code == "resource_missing"


def test_reversing_a_transfer_of_pending_funds_gives_back_pending_funds(
    client: stripe.StripeClient, control: Control
) -> None:
    account = merchant(client, control)
    intent = pay(client, 2_000)  # visa: pending for two days
    transfer = client.v1.transfers.create(
        params={
            "amount": 1_500,
            "currency": "usd",
            "destination": account.id,
            "source_transaction": str(intent.latest_charge),
        }
    )
    client.v1.transfers.reversals.create(transfer.id)
    available = client.v1.balance.retrieve().available
    assert sum(entry.amount for entry in available) == 0
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.transfers.create(
            params={"amount": 1_500, "currency": "usd", "destination": account.id}
        )
    assert refused.value.code == "balance_insufficient"


def test_balance_shows_negative_available_and_empty_prefunding(
    client: stripe.StripeClient, control: Control
) -> None:
    intent = pay(client, 10_000)
    client.v1.refunds.create(params={"payment_intent": intent.id, "amount": 2_000})
    balance = client.v1.balance.retrieve()
    assert (balance.available[0].amount, balance.pending[0].amount) == (-2_000, 9_680)
    prefunding = balance.to_dict()["refund_and_dispute_prefunding"]
    assert prefunding == {
        "available": [{"amount": 0, "currency": "usd", "source_types": {"card": 0}}],
        "pending": [{"amount": 0, "currency": "usd", "source_types": {"card": 0}}],
    }
    assert control.get("/state")["balance"]["available"][0]["amount"] == -2_000
