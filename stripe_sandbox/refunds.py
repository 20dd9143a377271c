"""Refunds: create (by PaymentIntent or charge), retrieve, list, update, cancel.

A refund takes its amount from the platform's available balance at once, with a `refund`
balance transaction, even when that leaves the balance negative. Such a refund waits as
`pending` (`pending_reason: insufficient_funds`) and is sent to the customer (`succeeded`)
once the balance covers it again, oldest first, as Stripe holds refunds "until your balance
is repaid". A refund of the refund-fail card succeeds first and fails a little later,
returning its amount with a `refund_failure` balance transaction. A card refund can be
canceled from the Dashboard while it waits, or for a short while after it succeeded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import money
from .errors import StripeError, invalid_request
from .forms import Params, check_known, get_bool, get_int, get_str, metadata_update
from .state import Sandbox
from .store import paginate

if TYPE_CHECKING:
    from .api import Call

Obj = dict[str, Any]

REASONS = ("duplicate", "fraudulent", "requested_by_customer")
CREATE_PARAMS = {
    "amount",
    "charge",
    "currency",
    "customer",
    "instructions_email",
    "metadata",
    "origin",
    "payment_intent",
    "reason",
    "refund_application_fee",
    "reverse_transfer",
}


def _dollars(amount: int) -> str:
    return f"${amount / 100:,.2f}"


def refund_charge(sb: Sandbox, params: Params) -> Obj:
    """Create a refund from API-style parameters (used by the API and the Dashboard)."""
    # The parameters first, then the charge's state; only then does anything change.
    amount = get_int(params, "amount")
    if amount is not None and amount <= 0:
        raise invalid_request("Invalid positive integer", param="amount")
    reason = get_str(params, "reason")
    if reason is not None and reason not in REASONS:
        raise invalid_request(
            f"Invalid reason: must be one of {', '.join(REASONS)}", param="reason"
        )
    metadata = metadata_update({}, params)
    charge = _target_charge(sb, params)
    remaining = charge["amount"] - charge["amount_refunded"]
    if remaining <= 0:
        raise invalid_request(
            f"Charge {charge['id']} has already been refunded.",
            code="charge_already_refunded",
        )
    if amount is None:
        amount = remaining
    if amount > remaining:
        raise invalid_request(
            f"Refund amount ({_dollars(amount)}) is greater than unrefunded amount on charge "
            f"({_dollars(remaining)})",
            param="amount",
            code="amount_too_large",
        )
    refund: Obj = {
        "id": sb.ids.new("re"),
        "object": "refund",
        "amount": amount,
        "balance_transaction": None,
        "charge": charge["id"],
        "created": sb.clock.timestamp(),
        "currency": charge["currency"],
        "destination_details": {
            "card": {
                "reference": None,
                "reference_status": "pending",
                "reference_type": "acquirer_reference_number",
                "type": "refund",
            },
            "type": "card",
        },
        "metadata": metadata,
        "payment_intent": charge["payment_intent"],
        "reason": reason,
        "receipt_number": None,
        "source_transfer_reversal": None,
        "status": "pending",
        "pending_reason": "insufficient_funds",
        "transfer_reversal": None,
    }
    # Converted at today's rate, as Stripe converts a refund of a converted payment.
    settled_amount, settled_currency, _ = money.settled(sb, amount, refund["currency"])
    covered = not _waiting(sb, settled_currency) and (
        money.available(sb, settled_currency) >= settled_amount
    )
    sb.store.add(refund)
    previous = {"amount_refunded": charge["amount_refunded"], "refunded": charge["refunded"]}
    charge["amount_refunded"] += amount
    charge["refunded"] = charge["amount_refunded"] == charge["amount"]
    _take_funds(sb, refund)
    if covered:
        _send(sb, refund)
    else:
        sb.private.refund_queue.append(refund)
    sb.emit("refund.created", refund)
    sb.emit("charge.refunded", charge, previous=previous)
    return refund


def _target_charge(sb: Sandbox, params: Params) -> Obj:
    charge_id = get_str(params, "charge")
    intent_id = get_str(params, "payment_intent")
    if not charge_id and not intent_id:
        raise invalid_request(
            "One of the following params should be provided for this request: "
            "payment_intent or charge."
        )
    if intent_id:
        intent = sb.store.get("payment_intent", intent_id, param="payment_intent")
        latest = intent["latest_charge"]
        if intent["status"] != "succeeded" or latest is None:
            raise invalid_request(
                f"This PaymentIntent ({intent_id}) does not have a successful charge to refund.",
                param="payment_intent",
            )
        if charge_id and charge_id != latest:
            raise invalid_request(
                f"The charge {charge_id} does not belong to PaymentIntent {intent_id}.",
                param="charge",
            )
        charge_id = latest
    assert charge_id is not None
    charge = sb.store.get("charge", charge_id, param="charge")
    if charge["status"] != "succeeded":
        raise invalid_request(
            f"Charge {charge_id} has a status of {charge['status']} and cannot be refunded.",
            param="charge",
        )
    return charge


def _taken(sb: Sandbox, refund: Obj) -> tuple[int, str]:
    """What the refund took from the balance: amount and currency (after any conversion)."""
    txn = sb.store.get("balance_transaction", refund["balance_transaction"])
    return -int(txn["amount"]), str(txn["currency"])


def _waiting(sb: Sandbox, currency: str) -> bool:
    """Refunds wait in the balance's currency: a converted one waits with the others."""
    return any(_taken(sb, r)[1] == currency for r in sb.private.refund_queue)


def _take_funds(sb: Sandbox, refund: Obj) -> None:
    # Taken at once, covered or not: money owed to a customer must not stay spendable.
    amount, currency, rate = money.settled(sb, refund["amount"], refund["currency"])
    txn = money.add_transaction(
        sb,
        type_="refund",
        amount=-amount,
        currency=currency,
        source=refund["id"],
        description="REFUND FOR CHARGE",
        exchange_rate=rate,
    )
    refund["balance_transaction"] = txn["id"]


def _send(sb: Sandbox, refund: Obj) -> None:
    """The refund goes to the card network: `succeeded`, and cancelable only for a while."""
    refund["status"] = "succeeded"
    refund.pop("pending_reason", None)
    refund["destination_details"]["card"]["reference_status"] = "available"
    refund["destination_details"]["card"]["reference"] = sb.ids.token(23)
    sb.private.refund_sent_at[refund["id"]] = sb.clock.now()
    card = sb.private.charge_cards.get(refund["charge"])
    if card is not None and card.refund_fails:
        sb.schedule(
            sb.clock.now() + sb.settings.refund_failure_delay, lambda: _fail(sb, refund["id"])
        )


def process_queue(sb: Sandbox) -> None:
    """Send refunds waiting for funds, oldest first, as the balance comes to cover them.

    Their amounts have already left the available balance. A waiting refund is covered when
    that balance, leaving out what the refunds that started waiting after it took, is not
    negative; so the oldest is paid first and, once the balance is back at zero or above,
    every one of them is.
    """
    waiting = [r for r in sb.private.refund_queue if r["status"] == "pending"]
    taken = {r["id"]: _taken(sb, r) for r in waiting}
    newer: dict[str, int] = {}  # per currency: what the refunds after this one took
    for amount, currency in taken.values():
        newer[currency] = newer.get(currency, 0) + amount
    available: dict[str, int] = {}
    still: list[Obj] = []
    for refund in waiting:
        amount, currency = taken[refund["id"]]
        newer[currency] -= amount
        if currency not in available:
            available[currency] = money.available(sb, currency)
        if available[currency] + newer[currency] < 0:
            still.append(refund)  # and so will every newer one of its currency
            continue
        _send(sb, refund)
        previous = {"status": "pending", "pending_reason": "insufficient_funds"}
        sb.emit("refund.updated", refund, previous=previous)
        sb.emit("charge.refund.updated", refund, previous=previous)
    sb.private.refund_queue = still


def _fail(sb: Sandbox, refund_id: str) -> None:
    refund = sb.store.get("refund", refund_id)
    if refund["status"] != "succeeded":
        return  # canceled from the Dashboard meanwhile
    previous = _closing(refund)
    refund["status"] = "failed"
    _return_funds(sb, refund, "expired_or_canceled_card", "REFUND FAILURE")
    sb.emit("refund.updated", refund, previous=previous)
    sb.emit("charge.refund.updated", refund, previous=previous)
    sb.emit("refund.failed", refund)


def _closing(refund: Obj) -> Obj:
    """`previous_attributes` of a refund about to fail or be canceled."""
    previous: Obj = {
        "status": refund["status"],
        "failure_balance_transaction": None,
        "failure_reason": None,
    }
    if "pending_reason" in refund:
        previous["pending_reason"] = refund["pending_reason"]
    return previous


def _return_funds(sb: Sandbox, refund: Obj, reason: str, description: str) -> None:
    """Give a failed or canceled refund's amount back to the balance (what it took, at the
    refund's own rate) and to its charge."""
    taken = sb.store.get("balance_transaction", refund["balance_transaction"])
    txn = money.add_transaction(
        sb,
        type_="refund_failure",
        amount=-taken["amount"],
        currency=taken["currency"],
        source=refund["id"],
        description=description,
        exchange_rate=taken["exchange_rate"],
    )
    refund.pop("pending_reason", None)
    refund.update(failure_balance_transaction=txn["id"], failure_reason=reason)
    sb.private.refund_queue = [r for r in sb.private.refund_queue if r["id"] != refund["id"]]
    charge = sb.store.get("charge", refund["charge"])
    charge["amount_refunded"] -= refund["amount"]
    charge["refunded"] = charge["amount_refunded"] == charge["amount"]


def _cancel(sb: Sandbox, refund: Obj) -> None:
    previous = _closing(refund)
    refund["status"] = "canceled"
    # Stripe's own example of a canceled refund carries `failure_reason: merchant_request`
    # and a `failure_balance_transaction` (docs.stripe.com/api/refunds/cancel).
    _return_funds(sb, refund, "merchant_request", "REFUND CANCELED")
    sb.emit("refund.updated", refund, previous=previous)
    sb.emit("charge.refund.updated", refund, previous=previous)
    process_queue(sb)  # the money given back may cover refunds still waiting


def dashboard_cancel(sb: Sandbox, refund_id: str) -> Obj:
    """Cancel a card refund from the Dashboard: while it waits for funds, or for
    `refund_cancel_window` seconds after it succeeded."""
    refund = sb.store.get("refund", refund_id)
    status = refund["status"]
    if status == "succeeded":
        if refund["destination_details"]["type"] != "card":
            raise _not_cancelable(refund, "only card refunds can be canceled from the Dashboard")
        closes = sb.private.refund_sent_at[refund_id] + sb.settings.refund_cancel_window
        if sb.clock.now() >= closes:
            raise _not_cancelable(
                refund,
                f"the window to cancel it closed {int(sb.clock.now() - closes)} seconds ago",
            )
    elif status != "pending":
        raise _not_cancelable(refund, f"it has a status of {status}")
    _cancel(sb, refund)
    return refund


def _not_cancelable(refund: Obj, why: str) -> StripeError:
    return invalid_request(f"Refund {refund['id']} can no longer be canceled: {why}.")


def create_refund(sb: Sandbox, call: Call) -> Obj:
    params = call.params
    check_known(params, CREATE_PARAMS)
    for name in ("customer", "origin", "instructions_email", "reverse_transfer"):
        if name in params:
            raise invalid_request(f"The sandbox does not support `{name}`.", param=name)
    get_bool(params, "refund_application_fee")  # no application fees here: only checked
    currency = get_str(params, "currency")
    if currency is not None:
        charge = _target_charge(sb, params)
        if currency.lower() != charge["currency"]:
            raise invalid_request(
                f"The currency must be the charge's currency ({charge['currency']}).",
                param="currency",
            )
    return refund_charge(sb, params)


def retrieve_refund(sb: Sandbox, call: Call) -> Obj:
    check_known(call.params, set())
    return sb.store.get("refund", call.path["id"])


def list_refunds(sb: Sandbox, call: Call) -> Obj:
    params = call.params
    check_known(
        params, {"charge", "created", "ending_before", "limit", "payment_intent", "starting_after"}
    )
    rows = sb.store.newest_first("refund")
    for name in ("charge", "payment_intent"):
        wanted = get_str(params, name)
        if wanted is not None:
            rows = [r for r in rows if r[name] == wanted]
    return paginate(rows, params, "/v1/refunds")


def update_refund(sb: Sandbox, call: Call) -> Obj:
    check_known(call.params, {"metadata"})
    refund = sb.store.get("refund", call.path["id"])
    metadata = metadata_update(refund["metadata"] or {}, call.params)
    if metadata != refund["metadata"]:
        previous = {"metadata": refund["metadata"]}
        refund["metadata"] = metadata
        sb.emit("refund.updated", refund, previous=previous)
        sb.emit("charge.refund.updated", refund, previous=previous)
    return refund


def cancel_refund(sb: Sandbox, call: Call) -> Obj:
    check_known(call.params, set())
    refund = sb.store.get("refund", call.path["id"])
    if refund["status"] != "requires_action":
        raise StripeError(
            400,
            "invalid_request_error",
            f"Refund {refund['id']} cannot be canceled because it has a status of "
            f"{refund['status']}. Only refunds with a status of `requires_action` can be "
            "canceled.",
        )
    _cancel(sb, refund)
    return refund


ROUTES = [
    ("POST", "/v1/refunds", create_refund, "refund"),
    ("GET", "/v1/refunds", list_refunds, "list:refund"),
    ("GET", "/v1/refunds/{id}", retrieve_refund, "refund"),
    ("POST", "/v1/refunds/{id}", update_refund, "refund"),
    ("POST", "/v1/refunds/{id}/cancel", cancel_refund, "refund"),
]
