"""Refunds: create (by PaymentIntent or charge), retrieve, list, update, cancel.

A refund spends the platform's available balance. Without enough, it waits as `pending`
(`pending_reason: insufficient_funds`) and succeeds once funds become available. A refund of
the refund-fail card succeeds first and fails a little later, returning its amount with a
`refund_failure` balance transaction.
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
    sb.store.add(refund)
    previous = {"amount_refunded": charge["amount_refunded"], "refunded": charge["refunded"]}
    charge["amount_refunded"] += amount
    charge["refunded"] = charge["amount_refunded"] == charge["amount"]
    if not sb.private.refund_queue and _covered(sb, refund):
        _take_funds(sb, refund)
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


def _covered(sb: Sandbox, refund: Obj) -> bool:
    """Whether the available balance pays the refund (converted at today's rate, as Stripe
    converts a refund of a converted payment)."""
    amount, currency, _ = money.settled(sb, refund["amount"], refund["currency"])
    return money.available(sb, currency) >= amount


def _take_funds(sb: Sandbox, refund: Obj) -> None:
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
    refund["status"] = "succeeded"
    refund.pop("pending_reason", None)
    refund["destination_details"]["card"]["reference_status"] = "available"
    refund["destination_details"]["card"]["reference"] = sb.ids.token(23)
    card = sb.private.charge_cards.get(refund["charge"])
    if card is not None and card.refund_fails:
        sb.schedule(
            sb.clock.now() + sb.settings.refund_failure_delay, lambda: _fail(sb, refund["id"])
        )


def process_queue(sb: Sandbox) -> None:
    """Pay refunds waiting for funds, oldest first, while the available balance covers them."""
    # Every refund is paid from the one usd balance: the oldest waiting blocks the others.
    waiting: list[Obj] = []
    for refund in sb.private.refund_queue:
        if refund["status"] != "pending":
            continue
        if waiting or not _covered(sb, refund):
            waiting.append(refund)
            continue
        _take_funds(sb, refund)
        previous = {"status": "pending", "balance_transaction": None}
        sb.emit("refund.updated", refund, previous=previous)
        sb.emit("charge.refund.updated", refund, previous=previous)
    sb.private.refund_queue = waiting


def _fail(sb: Sandbox, refund_id: str) -> None:
    refund = sb.store.get("refund", refund_id)
    if refund["status"] != "succeeded":
        return
    # The failure gives back what the refund took, at the refund's rate.
    taken = sb.store.get("balance_transaction", refund["balance_transaction"])
    txn = money.add_transaction(
        sb,
        type_="refund_failure",
        amount=-taken["amount"],
        currency=taken["currency"],
        source=refund["id"],
        description="REFUND FAILURE",
        exchange_rate=taken["exchange_rate"],
    )
    refund.update(
        status="failed",
        failure_reason="expired_or_canceled_card",
        failure_balance_transaction=txn["id"],
    )
    _give_back(sb, refund)
    previous = {"status": "succeeded"}
    sb.emit("refund.updated", refund, previous=previous)
    sb.emit("charge.refund.updated", refund, previous=previous)
    sb.emit("refund.failed", refund)


def _give_back(sb: Sandbox, refund: Obj) -> None:
    charge = sb.store.get("charge", refund["charge"])
    charge["amount_refunded"] -= refund["amount"]
    charge["refunded"] = charge["amount_refunded"] == charge["amount"]


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
    previous = {"status": refund["status"]}
    refund["status"] = "canceled"
    refund.pop("pending_reason", None)
    sb.private.refund_queue = [r for r in sb.private.refund_queue if r["id"] != refund["id"]]
    _give_back(sb, refund)
    sb.emit("refund.updated", refund, previous=previous)
    sb.emit("charge.refund.updated", refund, previous=previous)
    return refund


ROUTES = [
    ("POST", "/v1/refunds", create_refund, "refund"),
    ("GET", "/v1/refunds", list_refunds, "list:refund"),
    ("GET", "/v1/refunds/{id}", retrieve_refund, "refund"),
    ("POST", "/v1/refunds/{id}", update_refund, "refund"),
    ("POST", "/v1/refunds/{id}/cancel", cancel_refund, "refund"),
]
