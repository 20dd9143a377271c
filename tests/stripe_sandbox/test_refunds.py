"""Refunds: partial and full, waiting for funds, Dashboard refunds and cancellations, the
refund-fail card."""

from __future__ import annotations

from typing import Any

import pytest
import stripe

from .factories import Control, merchant, pay


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
    # The money leaves at once, leaving the available balance negative while the refund waits.
    txn = client.v1.balance_transactions.retrieve(str(refund.balance_transaction))
    assert (txn.type, txn.amount, txn.status, txn.source) == (
        "refund",
        -2_500,
        "available",
        refund.id,
    )
    assert client.v1.balance.retrieve().available[0].amount == -2_500
    assert client.v1.charges.retrieve(str(intent.latest_charge)).amount_refunded == 2_500
    control.advance(3 * 86_400)
    settled = client.v1.refunds.retrieve(refund.id)
    assert settled.status == "succeeded" and settled.balance_transaction == txn.id
    assert client.v1.balance.retrieve().available[0].amount == 9_680 - 2_500
    updated = client.v1.events.list(params={"type": "refund.updated"}).data[0]
    assert updated.data.object["status"] == "succeeded"
    assert updated.data.previous_attributes["status"] == "pending"
    assert updated.data.previous_attributes["pending_reason"] == "insufficient_funds"
    assert updated.request is not None and updated.request.id is None  # time-driven


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


def _available(client: stripe.StripeClient) -> int:
    return int(client.v1.balance.retrieve().available[0].amount)


def test_waiting_refund_keeps_its_funds_from_a_transfer_until_they_arrive(
    client: stripe.StripeClient, control: Control
) -> None:
    account = merchant(client, control)
    intent = pay(client, 10_000)  # visa: pending for two days
    refund = client.v1.refunds.create(params={"payment_intent": intent.id})
    assert (refund.status, refund.pending_reason) == ("pending", "insufficient_funds")
    assert _available(client) == -10_000
    # 95.00 arrive: enough for the transfer, were the refund's 100.00 not already owed.
    control.post("/balance/top_up", {"amount": 9_500, "currency": "usd"})
    assert _available(client) == -500
    transfer = {"amount": 9_000, "currency": "usd", "destination": account.id}
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.transfers.create(params=transfer)  # type: ignore[arg-type]
    assert refused.value.code == "balance_insufficient"
    assert client.v1.refunds.retrieve(refund.id).status == "pending"
    control.advance(3 * 86_400)  # the visa funds become available
    assert client.v1.refunds.retrieve(refund.id).status == "succeeded"
    assert _available(client) == 9_680 - 500
    assert client.v1.transfers.create(params=transfer).amount == 9_000  # type: ignore[arg-type]
    assert _available(client) == 180
    events = client.v1.events.list(params={"limit": 100}).data
    updates = [e for e in events if e.type in ("refund.updated", "charge.refund.updated")]
    assert [(e.type, e.data.object["status"]) for e in updates] == [
        ("charge.refund.updated", "succeeded"),
        ("refund.updated", "succeeded"),
    ]


def test_top_up_pays_waiting_refunds_oldest_first(
    client: stripe.StripeClient, control: Control
) -> None:
    intent = pay(client, 10_000)
    older = client.v1.refunds.create(params={"payment_intent": intent.id, "amount": 6_000})
    newer = client.v1.refunds.create(params={"payment_intent": intent.id, "amount": 3_000})
    assert _available(client) == -9_000
    # 7000 covers the older refund, not both: only the older one goes.
    txn = control.post("/balance/top_up", {"amount": 7_000, "currency": "usd"})
    assert (txn["type"], txn["amount"], txn["status"]) == ("topup", 7_000, "available")
    assert txn["reporting_category"] == "topup"
    assert client.v1.refunds.retrieve(older.id).status == "succeeded"
    assert client.v1.refunds.retrieve(newer.id).status == "pending"
    assert _available(client) == -2_000
    control.post("/balance/top_up", {"amount": 2_000, "currency": "USD"})
    assert client.v1.refunds.retrieve(newer.id).status == "succeeded"
    assert _available(client) == 0
    listed = client.v1.balance_transactions.list(params={"type": "topup"}).data
    assert sorted(t.amount for t in listed) == [2_000, 7_000]
    updated = client.v1.events.list(params={"type": "refund.updated"}).data
    assert [e.data.object["id"] for e in updated] == [newer.id, older.id]


def test_a_refund_after_one_waiting_waits_too(
    client: stripe.StripeClient, control: Control
) -> None:
    waiting = client.v1.refunds.create(params={"payment_intent": pay(client, 10_000).id})
    paid = pay(client, 5_000, "pm_card_bypassPending")
    # Funds for the second refund are there, but the first one is owed them first.
    second = client.v1.refunds.create(params={"payment_intent": paid.id, "amount": 1_000})
    assert (waiting.status, second.status) == ("pending", "pending")
    control.advance(3 * 86_400)
    assert client.v1.refunds.retrieve(waiting.id).status == "succeeded"
    assert client.v1.refunds.retrieve(second.id).status == "succeeded"


def test_waiting_refund_of_the_refund_fail_card_still_fails_later(
    client: stripe.StripeClient, control: Control
) -> None:
    intent = pay(client, 8_000, "pm_card_refundFail")
    refund = client.v1.refunds.create(params={"payment_intent": intent.id})
    assert refund.status == "pending"
    control.post("/balance/top_up", {"amount": 8_000, "currency": "usd"})
    assert client.v1.refunds.retrieve(refund.id).status == "succeeded"
    assert _available(client) == 0
    control.advance(5)
    failed = client.v1.refunds.retrieve(refund.id)
    assert (failed.status, failed.failure_reason) == ("failed", "expired_or_canceled_card")
    assert _available(client) == 8_000
    charge = client.v1.charges.retrieve(str(intent.latest_charge))
    assert (charge.amount_refunded, charge.refunded) == (0, False)


def _cancel(control: Control, refund_id: str) -> Any:
    return control.request("POST", f"/dashboard/refunds/{refund_id}/cancel")


def test_dashboard_cancels_a_card_refund_shortly_after_it_succeeded(
    client: stripe.StripeClient, control: Control
) -> None:
    intent = pay(client, 10_000, "pm_card_bypassPending")
    refund = client.v1.refunds.create(params={"payment_intent": intent.id, "amount": 4_000})
    assert refund.status == "succeeded" and _available(client) == 9_680 - 4_000
    control.advance(60)
    canceled = control.post(f"/dashboard/refunds/{refund.id}/cancel")
    assert (canceled["status"], canceled["failure_reason"]) == ("canceled", "merchant_request")
    back = client.v1.balance_transactions.retrieve(canceled["failure_balance_transaction"])
    assert (back.type, back.amount, back.source, back.status) == (
        "refund_failure",
        4_000,
        refund.id,
        "available",
    )
    assert _available(client) == 9_680
    charge = client.v1.charges.retrieve(str(intent.latest_charge))
    assert (charge.amount_refunded, charge.refunded) == (0, False)
    for kind in ("refund.updated", "charge.refund.updated"):
        event = client.v1.events.list(params={"type": kind}).data[0]
        assert event.data.object["status"] == "canceled"
        assert event.data.previous_attributes["status"] == "succeeded"
        assert event.data.previous_attributes["failure_balance_transaction"] is None
        assert event.request is not None and event.request.id is None
    again = _cancel(control, refund.id)
    assert again.status_code == 400
    assert "status of canceled" in again.json()["error"]["message"]


def test_dashboard_cancel_is_refused_once_the_window_has_passed(
    client: stripe.StripeClient, control: Control
) -> None:
    intent = pay(client, 10_000, "pm_card_bypassPending")
    refund = client.v1.refunds.create(params={"payment_intent": intent.id, "amount": 4_000})
    control.advance(1_800)  # SandboxSettings.refund_cancel_window
    late = _cancel(control, refund.id)
    assert late.status_code == 400
    error = late.json()["error"]
    assert error["type"] == "invalid_request_error" and "window" in error["message"]
    assert client.v1.refunds.retrieve(refund.id).status == "succeeded"
    assert _available(client) == 9_680 - 4_000


def test_dashboard_cancel_of_a_waiting_refund_gives_its_funds_back(
    client: stripe.StripeClient, control: Control
) -> None:
    intent = pay(client, 10_000)
    first = client.v1.refunds.create(params={"payment_intent": intent.id, "amount": 6_000})
    second = client.v1.refunds.create(params={"payment_intent": intent.id, "amount": 3_000})
    control.post("/balance/top_up", {"amount": 3_000, "currency": "usd"})
    assert _available(client) == -6_000  # covers the second, but the first is owed first
    control.advance(86_400)  # however long it has waited (the visa funds are still pending)
    canceled = control.post(f"/dashboard/refunds/{first.id}/cancel")
    assert canceled["status"] == "canceled" and "pending_reason" not in canceled
    back = client.v1.balance_transactions.retrieve(canceled["failure_balance_transaction"])
    assert (back.type, back.amount) == ("refund_failure", 6_000)
    assert _available(client) == 0
    # The money given back pays the refund that waited behind it.
    assert client.v1.refunds.retrieve(second.id).status == "succeeded"
    event = client.v1.events.list(params={"type": "refund.updated"}).data[-1]
    assert event.data.object["id"] == first.id
    assert event.data.previous_attributes["pending_reason"] == "insufficient_funds"


def test_dashboard_cancel_of_the_refund_fail_card_refund_stops_its_failure(
    client: stripe.StripeClient, control: Control
) -> None:
    intent = pay(client, 8_000, "pm_card_refundFail")
    control.post("/balance/top_up", {"amount": 8_000, "currency": "usd"})
    refund = client.v1.refunds.create(params={"payment_intent": intent.id})
    assert control.post(f"/dashboard/refunds/{refund.id}/cancel")["status"] == "canceled"
    control.advance(5)
    assert client.v1.refunds.retrieve(refund.id).status == "canceled"
    assert _available(client) == 8_000  # given back once, not twice
    assert client.v1.events.list(params={"type": "refund.failed"}).data == []
    failed_later = client.v1.refunds.create(params={"payment_intent": intent.id})
    control.advance(5)
    assert client.v1.refunds.retrieve(failed_later.id).status == "failed"
    assert _cancel(control, failed_later.id).status_code == 400
