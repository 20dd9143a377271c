"""Charges: made by confirming a PaymentIntent; retrieved, listed and updated here."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .cards import empty_billing_details, method_details
from .errors import invalid_request, missing
from .forms import check_known, get_dict, get_str, metadata_update
from .state import Card, Sandbox
from .store import paginate

if TYPE_CHECKING:
    from .api import Call

Obj = dict[str, Any]

DECLINE_MESSAGES = {
    "generic_decline": "Your card was declined.",
    "insufficient_funds": "Your card has insufficient funds.",
}


def new_charge(sb: Sandbox, intent: Obj, pm_id: str, card: Card) -> Obj:
    """A charge for `intent`, succeeded or failed according to the card."""
    declined = card.decline_code is not None
    charge_id = sb.ids.new("ch")
    charge: Obj = {
        "id": charge_id,
        "object": "charge",
        "amount": intent["amount"],
        "amount_captured": 0 if declined else intent["amount"],
        "amount_refunded": 0,
        "application": None,
        "application_fee": None,
        "application_fee_amount": None,
        "balance_transaction": None,
        "billing_details": empty_billing_details(),
        "calculated_statement_descriptor": "ICPAY SANDBOX",
        "captured": not declined,
        "created": sb.clock.timestamp(),
        "currency": intent["currency"],
        "customer": intent["customer"],
        "description": intent["description"],
        "disputed": False,
        "failure_balance_transaction": None,
        "failure_code": "card_declined" if declined else None,
        "failure_message": DECLINE_MESSAGES.get(card.decline_code or "") if declined else None,
        "fraud_details": {},
        "livemode": False,
        "metadata": dict(intent["metadata"]),
        "on_behalf_of": None,
        "outcome": _outcome(card, sb),
        "paid": not declined,
        "payment_intent": intent["id"],
        "payment_method": pm_id,
        "payment_method_details": method_details(card),
        "receipt_email": intent["receipt_email"],
        "receipt_number": None,
        "receipt_url": f"https://pay.stripe.com/receipts/payment/{charge_id}",
        "refunded": False,
        "review": None,
        "shipping": None,
        "source": None,
        "source_transfer": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": "failed" if declined else "succeeded",
        "transfer_data": None,
        "transfer_group": intent["transfer_group"],
    }
    sb.private.charge_cards[charge_id] = card
    return sb.store.add(charge)


def _outcome(card: Card, sb: Sandbox) -> Obj:
    if card.decline_code is not None:
        return {
            "network_status": "declined_by_network",
            "reason": card.decline_code,
            "risk_level": "normal",
            "risk_score": sb.ids.randint(0, 60),
            "seller_message": "The bank did not return any further details with this decline.",
            "type": "issuer_declined",
        }
    return {
        "network_status": "approved_by_network",
        "reason": None,
        "risk_level": "normal",
        "risk_score": sb.ids.randint(0, 60),
        "seller_message": "Payment complete.",
        "type": "authorized",
    }


def list_charges(sb: Sandbox, call: Call) -> Obj:
    params = call.params
    check_known(
        params,
        {
            "created",
            "customer",
            "ending_before",
            "limit",
            "payment_intent",
            "starting_after",
            "transfer_group",
        },
    )
    rows = sb.store.newest_first("charge")
    for name in ("payment_intent", "customer", "transfer_group"):
        wanted = get_str(params, name)
        if wanted is not None:
            rows = [c for c in rows if c[name] == wanted]
    return paginate(rows, params, "/v1/charges")


def retrieve_charge(sb: Sandbox, call: Call) -> Obj:
    check_known(call.params, set())
    return sb.store.get("charge", call.path["id"])


def update_charge(sb: Sandbox, call: Call) -> Obj:
    params = call.params
    check_known(
        params,
        {
            "customer",
            "description",
            "fraud_details",
            "metadata",
            "receipt_email",
            "shipping",
            "transfer_group",
        },
    )
    charge = sb.store.get("charge", call.path["id"])
    customer = get_str(params, "customer")
    if customer:
        raise missing("customer", customer, param="customer")
    if "shipping" in params:
        raise invalid_request("The sandbox does not support `shipping`.", param="shipping")
    changes: Obj = {}
    metadata = metadata_update(charge["metadata"], params)
    if metadata != charge["metadata"]:
        changes["metadata"] = metadata
    for name in ("description", "receipt_email", "transfer_group"):
        value = get_str(params, name)
        if value is not None and (value or None) != charge[name]:
            changes[name] = value or None
    if "fraud_details" in params:
        report = get_str(get_dict(params, "fraud_details"), "user_report")
        if report not in (None, "", "fraudulent", "safe"):
            raise invalid_request(
                "Invalid user_report: must be one of fraudulent or safe",
                param="fraud_details[user_report]",
            )
        fraud_details = {"user_report": report} if report else {}
        if fraud_details != charge["fraud_details"]:
            changes["fraud_details"] = fraud_details

    if changes:
        previous = {name: charge[name] for name in changes}
        charge.update(changes)
        sb.emit("charge.updated", charge, previous=previous)
    return charge


ROUTES = [
    ("GET", "/v1/charges", list_charges, "list:charge"),
    ("GET", "/v1/charges/{id}", retrieve_charge, "charge"),
    ("POST", "/v1/charges/{id}", update_charge, "charge"),
]
