"""The comparers, one Stripe object beside one ledger row, without a database or Stripe."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from reconciler.ledger.rows import Merchant, Payment, Payout, Refund
from reconciler.reconcile.compare import (
    compare_account,
    compare_intent,
    compare_refund,
    compare_transfer,
    transfer_status,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)
REQUEST = {"request_scope": None, "request_key": None, "request_digest": None}


def payment(**changes: Any) -> Payment:
    values: dict[str, Any] = {
        "id": 1,
        "merchant_id": 7,
        "payment_intent_id": "pi_1",
        "charge_id": "ch_1",
        "ledger": "stripe_usd",
        "currency": "usd",
        "amount": 1000,
        "platform_fee": 0,
        "stripe_fee": 59,
        "amount_refunded": 0,
        "status": "succeeded",
        "funds_available": True,
        "available_on": None,
        "presentment_amount": None,
        "presentment_currency": None,
        "created_at": NOW,
        "updated_at": NOW,
        **REQUEST,
    }
    return Payment(**{**values, **changes})


def intent(**changes: Any) -> dict[str, Any]:
    transaction = {"fee": 59, "net": 941, "amount": 1000, "status": "available"}
    charge = {"id": "ch_1", "balance_transaction": {**transaction, **changes.pop("bt", {})}}
    values = {
        "id": "pi_1",
        "object": "payment_intent",
        "amount": 1000,
        "currency": "usd",
        "status": "succeeded",
        "amount_received": 1000,
        "metadata": {"icpay_account_id": "7", "icpay_payment_id": "1"},
        "latest_charge": charge,
    }
    return {**values, **changes}


def kinds(found: list[Any]) -> list[tuple[str, str, bool]]:
    return [(d.kind, d.object_type, d.healable) for d in found]


def test_an_intent_that_agrees_has_no_difference() -> None:
    assert compare_intent(intent(), payment()) == []


def test_an_intent_without_our_metadata_and_no_payment_is_unattributed_for_a_person() -> None:
    assert kinds(compare_intent(intent(metadata={}), None)) == [
        ("unattributed_object", "payment_intent", False)
    ]


def test_an_intent_of_ours_the_ledger_lacks_is_missing_and_healable() -> None:
    [missing] = compare_intent(intent(), None)
    assert (missing.kind, missing.healable, missing.merchant_id) == ("missing_in_ledger", True, 7)


def test_a_status_behind_stripes_is_a_healable_mismatch() -> None:
    assert kinds(compare_intent(intent(), payment(status="processing"))) == [
        ("status_mismatch", "payment_intent", True)
    ]


def test_a_refunded_payment_reads_as_succeeded_and_a_decline_awaiting_retry_as_failed() -> None:
    assert compare_intent(intent(), payment(status="partially_refunded")) == []
    waiting = intent(status="requires_payment_method", latest_charge=None)
    assert compare_intent(waiting, payment(status="failed", stripe_fee=None)) == []


def test_another_amount_is_for_a_person_and_nothing_else_is_compared() -> None:
    assert kinds(compare_intent(intent(amount=1200), payment(status="processing"))) == [
        ("amount_mismatch", "payment_intent", False)
    ]


def test_a_fee_booked_wrong_is_not_healable_and_one_not_booked_is() -> None:
    [wrong] = compare_intent(intent(), payment(stripe_fee=60))
    assert (wrong.kind, wrong.object_id, wrong.healable) == ("fee_mismatch", "ch_1", False)
    assert wrong.ledger_value["stripe_fee"] == 60 and wrong.stripe_value["fee"] == 59
    [unbooked] = compare_intent(intent(), payment(stripe_fee=None, funds_available=False))
    assert (unbooked.kind, unbooked.healable) == ("fee_mismatch", True)


def test_funds_available_at_stripe_and_pending_here_is_a_healable_mismatch() -> None:
    assert kinds(compare_intent(intent(), payment(funds_available=False))) == [
        ("status_mismatch", "charge", True)
    ]
    assert compare_intent(intent(bt={"status": "pending"}), payment(funds_available=False)) == []


def refund_row(**changes: Any) -> Refund:
    values: dict[str, Any] = {
        "id": 3,
        "payment_id": 1,
        "merchant_id": 7,
        "stripe_refund_id": "re_1",
        "currency": "usd",
        "amount": 300,
        "status": "succeeded",
        "source": "api",
        "reason": None,
        "failure_reason": None,
        "failure_message": None,
        "created_at": NOW,
        "updated_at": NOW,
        **REQUEST,
    }
    return Refund(**{**values, **changes})


REFUND = {"id": "re_1", "amount": 300, "currency": "usd", "status": "succeeded", "charge": "ch_1"}


def test_refunds_compared() -> None:
    assert compare_refund(REFUND, refund_row(), payment()) == []
    assert kinds(compare_refund(REFUND, None, payment())) == [("missing_in_ledger", "refund", True)]
    assert compare_refund(REFUND, None, None) == []  # not our charge: not our refund
    assert kinds(compare_refund(REFUND, refund_row(status="pending"), payment())) == [
        ("status_mismatch", "refund", True)
    ]
    assert kinds(compare_refund(REFUND, refund_row(amount=200), payment())) == [
        ("amount_mismatch", "refund", False)
    ]


def moved(amount: int, currency: str = "usd", txn: str = "txn_1") -> dict[str, Any]:
    return {"id": txn, "object": "balance_transaction", "amount": amount, "currency": currency}


def test_what_a_refund_took_and_gave_back_is_compared_with_what_was_booked() -> None:
    took = {**REFUND, "balance_transaction": moved(-300)}
    assert compare_refund(took, refund_row(), payment()) == []
    [off] = compare_refund({**took, "balance_transaction": moved(-250)}, refund_row(), payment())
    assert (off.kind, off.object_type, off.object_id, off.healable, off.merchant_id) == (
        "amount_mismatch",
        "balance_transaction",
        "txn_1",
        False,
        7,
    )
    assert (off.ledger_value, off.stripe_value["amount"]) == (
        {"amount": -300, "currency": "usd"},
        -250,
    )
    failed = {**took, "status": "failed", "failure_balance_transaction": moved(300, txn="txn_2")}
    assert compare_refund(failed, refund_row(status="failed"), payment()) == []
    short = {**failed, "failure_balance_transaction": moved(200, txn="txn_2")}
    assert [d.object_id for d in compare_refund(short, refund_row(status="failed"), payment())] == [
        "txn_2"
    ]
    # A refund's own amount differing says it all: its balance transaction is not reported too.
    assert kinds(compare_refund(took, refund_row(amount=200), payment())) == [
        ("amount_mismatch", "refund", False)
    ]


def test_a_converted_refund_is_compared_by_what_it_took_from_the_balance() -> None:
    converted = payment(presentment_currency="eur", presentment_amount=900)
    in_euros = {**REFUND, "amount": 270, "currency": "eur"}
    assert (
        compare_refund({**in_euros, "balance_transaction": moved(-300)}, refund_row(), converted)
        == []
    )
    assert kinds(
        compare_refund({**in_euros, "balance_transaction": moved(-310)}, refund_row(), converted)
    ) == [("amount_mismatch", "balance_transaction", False)]


def payout(**changes: Any) -> Payout:
    values: dict[str, Any] = {
        "id": 5,
        "merchant_id": 7,
        "stripe_transfer_id": "tr_1",
        "destination": "acct_1",
        "currency": "usd",
        "amount": 2000,
        "amount_reversed": 0,
        "status": "completed",
        "failure_message": None,
        "created_at": NOW,
        "updated_at": NOW,
        **REQUEST,
    }
    return Payout(**{**values, **changes})


def transfer(**changes: Any) -> dict[str, Any]:
    values = {
        "id": "tr_1",
        "object": "transfer",
        "amount": 2000,
        "currency": "usd",
        "destination": "acct_1",
        "amount_reversed": 0,
        "metadata": {"icpay_payout_id": "5"},
    }
    return {**values, **changes}


def merchant(**changes: Any) -> Merchant:
    values: dict[str, Any] = {
        "id": 7,
        "name": "Acme",
        "email": None,
        "stripe_account_id": "acct_1",
        "connect_status": "enabled",
        "charges_enabled": True,
        "payouts_enabled": True,
        "details_submitted": True,
        "capabilities": {"transfers": "active"},
        "requirements": {},
        "created_at": NOW,
        "updated_at": NOW,
    }
    return Merchant(**{**values, **changes})


def test_transfers_compared() -> None:
    assert compare_transfer(transfer(), payout(), merchant()) == []
    [outside] = compare_transfer(transfer(metadata={}), None, merchant())
    assert (outside.kind, outside.healable, outside.merchant_id) == (
        "unattributed_object",
        False,
        7,
    )
    assert kinds(compare_transfer(transfer(), None, merchant())) == [
        ("missing_in_ledger", "transfer", True)
    ]
    assert kinds(compare_transfer(transfer(amount_reversed=500), payout(), merchant())) == [
        ("status_mismatch", "transfer", True)
    ]
    assert kinds(compare_transfer(transfer(amount=2500), payout(), merchant())) == [
        ("amount_mismatch", "transfer", False)
    ]
    assert compare_transfer(transfer(balance_transaction=moved(-2000)), payout(), None) == []
    assert kinds(compare_transfer(transfer(balance_transaction=moved(-1900)), payout(), None)) == [
        ("amount_mismatch", "balance_transaction", False)
    ]
    reversal = {"id": "trr_1", "amount": 500, "currency": "usd"}
    reversed_ = transfer(
        amount_reversed=500,
        reversals={"data": [{**reversal, "balance_transaction": moved(500, txn="txn_9")}]},
    )
    done = payout(status="amount_reversed", amount_reversed=500)
    assert compare_transfer(reversed_, done, None) == []
    reversed_["reversals"]["data"][0]["balance_transaction"] = moved(450, txn="txn_9")
    [off] = compare_transfer(reversed_, done, None)
    assert (off.kind, off.object_id, off.merchant_id) == ("amount_mismatch", "txn_9", 7)
    assert [transfer_status(transfer(amount_reversed=n)) for n in (0, 1, 2000)] == [
        "completed",
        "amount_reversed",
        "reversed",
    ]


def test_accounts_compared() -> None:
    account = {
        "id": "acct_1",
        "charges_enabled": True,
        "payouts_enabled": True,
        "details_submitted": True,
        "capabilities": {"transfers": "active"},
    }
    assert compare_account(account, merchant()) == []
    [differs] = compare_account({**account, "capabilities": {"transfers": "inactive"}}, merchant())
    assert (differs.kind, differs.healable) == ("status_mismatch", True)
    assert "transfers" in differs.detail
    assert compare_account(account, None) == []
    assert (
        compare_account(account, merchant(connect_status="deauthorized", payouts_enabled=False))
        == []
    )
