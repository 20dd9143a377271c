"""Refunds: partial and full, pending -> succeeded, Dashboard refunds, the refund-fail card."""

from __future__ import annotations

import pytest
import stripe

from .factories import Control, pay


def test_partial_then_full_refund_by_payment_intent_and_charge(
    client: stripe.StripeClient,
) -> None:
    intent = pay(client, 10_000, "pm_card_bypassPending")
    pay(client, 1_000, "pm_card_bypassPending")  # covers the fee Stripe keeps
    first = client.v1.refunds.create(
        params={"payment_intent": intent.id, "amount": 4_000, "metadata": {"icpay_refund_id": "r1"}}
    )
    assert (first.status, first.amount, first.charge) == ("succeeded", 4_000, intent.latest_charge)
    charge = client.v1.charges.retrieve(str(intent.latest_charge))
    assert (charge.amount_refunded, charge.refunded) == (4_000, False)
    rest = client.v1.refunds.create(params={"charge": str(intent.latest_charge)})
    assert rest.amount == 6_000 and rest.payment_intent == intent.id
    charge = client.v1.charges.retrieve(str(intent.latest_charge))
    assert (charge.amount_refunded, charge.refunded) == (10_000, True)
    with pytest.raises(stripe.InvalidRequestError) as again:
        client.v1.refunds.create(params={"payment_intent": intent.id})
    assert again.value.code == "charge_already_refunded"
    listed = client.v1.refunds.list(params={"payment_intent": intent.id})
    assert [r.id for r in listed.data] == [rest.id, first.id]
    assert client.v1.refunds.retrieve(first.id).metadata.to_dict() == {"icpay_refund_id": "r1"}
    assert client.v1.balance.retrieve().available[0].amount == 9_680 + 941 - 10_000
    types = [e.type for e in client.v1.events.list(params={"limit": 100}).data]
    assert types.count("refund.created") == 2 and types.count("charge.refunded") == 2


def test_refund_larger_than_remaining_is_refused(client: stripe.StripeClient) -> None:
    intent = pay(client, 1_000, "pm_card_bypassPending")
    with pytest.raises(stripe.InvalidRequestError) as too_much:
        client.v1.refunds.create(params={"payment_intent": intent.id, "amount": 1_001})
    assert (too_much.value.code, too_much.value.param) == ("amount_too_large", "amount")


def test_refund_without_available_funds_waits_pending_then_succeeds(
    client: stripe.StripeClient, control: Control
) -> None:
    intent = pay(client, 10_000)
    refund = client.v1.refunds.create(params={"payment_intent": intent.id, "amount": 2_500})
    assert (refund.status, refund.pending_reason) == ("pending", "insufficient_funds")
    assert refund.balance_transaction is None
    assert client.v1.charges.retrieve(str(intent.latest_charge)).amount_refunded == 2_500
    control.advance(3 * 86_400)
    settled = client.v1.refunds.retrieve(refund.id)
    assert settled.status == "succeeded"
    txn = client.v1.balance_transactions.retrieve(str(settled.balance_transaction))
    assert (txn.type, txn.amount, txn.status) == ("refund", -2_500, "available")
    assert client.v1.balance.retrieve().available[0].amount == 9_680 - 2_500
    updated = client.v1.events.list(params={"type": "refund.updated"}).data[0]
    assert updated.data.object["status"] == "succeeded"
    assert updated.data.previous_attributes["status"] == "pending"


def test_dashboard_refund_produces_refund_created_and_charge_refunded(
    client: stripe.StripeClient, control: Control
) -> None:
    intent = pay(client, 5_000, "pm_card_bypassPending")
    refund = control.post("/dashboard/refunds", {"payment_intent": intent.id, "amount": 1_500})
    assert refund["object"] == "refund" and refund["status"] == "succeeded"
    created = client.v1.events.list(params={"type": "refund.created"}).data
    refunded = client.v1.events.list(params={"type": "charge.refunded"}).data
    assert [e.data.object["id"] for e in created] == [refund["id"]]
    assert refunded[0].data.object["amount_refunded"] == 1_500
    assert refunded[0].data.previous_attributes["amount_refunded"] == 0
    assert created[0].request is not None and created[0].request.id is None


def test_refund_fail_card_ends_in_refund_failed_with_funds_returned(
    client: stripe.StripeClient, control: Control
) -> None:
    intent = pay(client, 8_000, "pm_card_refundFail")
    pay(client, 1_000, "pm_card_bypassPending")
    control.advance(3 * 86_400)
    available = client.v1.balance.retrieve().available[0].amount
    refund = client.v1.refunds.create(params={"payment_intent": intent.id})
    assert refund.status == "succeeded"
    assert client.v1.balance.retrieve().available[0].amount == available - 8_000
    control.advance(5)
    failed = client.v1.refunds.retrieve(refund.id)
    assert (failed.status, failed.failure_reason) == ("failed", "expired_or_canceled_card")
    back = client.v1.balance_transactions.retrieve(str(failed.failure_balance_transaction))
    assert (back.type, back.amount, back.status) == ("refund_failure", 8_000, "available")
    assert client.v1.balance.retrieve().available[0].amount == available
    charge = client.v1.charges.retrieve(str(intent.latest_charge))
    assert (charge.amount_refunded, charge.refunded) == (0, False)
    types = [e.type for e in client.v1.events.list(params={"limit": 100}).data]
    assert "refund.failed" in types and "charge.refund.updated" in types


def test_refund_of_a_declined_payment_is_refused(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.CardError) as declined:
        pay(client, 1_000, "pm_card_chargeDeclined")
    assert declined.value.error is not None and declined.value.error.payment_intent is not None
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.refunds.create(params={"payment_intent": declined.value.error.payment_intent.id})
    assert refused.value.param == "payment_intent"


def test_only_refunds_requiring_action_can_be_canceled(client: stripe.StripeClient) -> None:
    intent = pay(client, 3_000)
    refund = client.v1.refunds.create(params={"payment_intent": intent.id})
    assert refund.status == "pending"  # waiting for funds: Stripe will not cancel it
    with pytest.raises(stripe.InvalidRequestError, match="status of pending"):
        client.v1.refunds.cancel(refund.id)
    assert client.v1.refunds.retrieve(refund.id).status == "pending"
