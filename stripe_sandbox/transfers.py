"""Connect transfers and their reversals. A transfer spends only the available balance."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from . import money
from .errors import StripeError, invalid_request, missing, missing_parameter
from .forms import (
    Params,
    check_known,
    get_bool,
    get_int,
    get_str,
    metadata_update,
    require_str,
)
from .payment_intents import CURRENCIES
from .state import Sandbox
from .store import paginate

if TYPE_CHECKING:
    from .api import Call

Obj = dict[str, Any]

INSUFFICIENT_FUNDS = (
    "Insufficient funds in your Stripe account. One likely reason you have insufficient funds "
    "is that your funds are automatically being paid out; try enabling manual payouts by going "
    "to https://dashboard.stripe.com/account/payouts."
)
SOURCE_TYPES = ("bank_account", "card", "fpx")
CREATE_PARAMS = {
    "amount",
    "currency",
    "description",
    "destination",
    "metadata",
    "source_transaction",
    "source_type",
    "transfer_group",
}


def create_transfer(sb: Sandbox, call: Call) -> Obj:
    params = call.params
    # The parameters first, then the destination and the funds; only then the money moves.
    check_known(params, CREATE_PARAMS)
    amount = get_int(params, "amount")
    if amount is None:
        raise missing_parameter("amount")
    if amount <= 0:
        raise invalid_request("Invalid positive integer", param="amount")
    currency = require_str(params, "currency").lower()
    if currency not in CURRENCIES:
        raise invalid_request(f"Invalid currency: {currency}.", param="currency")
    destination = require_str(params, "destination")
    description = get_str(params, "description")
    transfer_group = get_str(params, "transfer_group")
    source_type = get_str(params, "source_type") or "card"
    if source_type not in SOURCE_TYPES:
        raise invalid_request(
            f"Invalid source_type: must be one of {', '.join(SOURCE_TYPES)}", param="source_type"
        )
    metadata = metadata_update({}, params)
    source_transaction = get_str(params, "source_transaction")
    account = sb.store.find(destination)
    if account is None or account.get("object") != "account":
        raise StripeError(
            400,
            "invalid_request_error",
            f"No such destination: '{destination}'",
            code="resource_missing",
            param="destination",
        )
    if (account.get("capabilities") or {}).get("transfers") != "active":
        raise invalid_request(
            "Your destination account needs to have at least one of the following "
            "capabilities enabled: transfers, crypto_transfers, legacy_payments",
            param="destination",
            code="insufficient_capabilities_for_transfer",
        )
    available_on = None
    if source_transaction:
        available_on = _source_charge_available_on(sb, source_transaction, amount, currency)
    elif money.available(sb, currency) < amount:
        raise invalid_request(INSUFFICIENT_FUNDS, code="balance_insufficient")

    transfer_id = sb.ids.new("tr")
    txn = money.add_transaction(
        sb,
        type_="transfer",
        amount=-amount,
        currency=currency,
        source=transfer_id,
        available_on=available_on,
    )
    transfer: Obj = {
        "id": transfer_id,
        "object": "transfer",
        "amount": amount,
        "amount_reversed": 0,
        "balance_transaction": txn["id"],
        "created": sb.clock.timestamp(),
        "currency": currency,
        "description": description,
        "destination": destination,
        "destination_payment": sb.ids.new("py"),
        "livemode": False,
        "metadata": metadata,
        "reversals": _reversal_list(transfer_id, []),
        "reversed": False,
        "source_transaction": source_transaction,
        "source_type": source_type,
        "transfer_group": transfer_group,
    }
    sb.store.add(transfer)
    sb.emit("transfer.created", transfer)
    return transfer


def _source_charge_available_on(sb: Sandbox, charge_id: str, amount: int, currency: str) -> int:
    """Funds of a pending charge may be transferred, leaving when that charge settles."""
    charge = sb.store.get("charge", charge_id, param="source_transaction")
    txn_id = sb.private.charge_transactions.get(charge_id)
    txn = sb.store.get("balance_transaction", txn_id) if txn_id else None
    if charge["status"] != "succeeded" or txn is None or txn["currency"] != currency:
        raise invalid_request(
            "The source_transaction charge must have succeeded and share the transfer's currency.",
            param="source_transaction",
        )
    spent = sum(
        t["amount"]
        for t in sb.store.newest_first("transfer")
        if t["source_transaction"] == charge_id
    )
    # What the charge settled as (a converted charge's usd), less what was refunded of it.
    refunded, _, _ = money.settled(sb, charge["amount_refunded"], charge["currency"])
    if spent + amount > txn["amount"] - refunded:
        raise invalid_request(
            "Transfer amount exceeds the remaining amount of the source_transaction charge.",
            param="amount",
        )
    return int(txn["available_on"])


def _reversal_list(transfer_id: str, reversals: list[Obj]) -> Obj:
    return {
        "object": "list",
        "data": [copy.deepcopy(r) for r in reversals[:10]],
        "has_more": len(reversals) > 10,
        "total_count": len(reversals),
        "url": f"/v1/transfers/{transfer_id}/reversals",
    }


def _reversals_of(sb: Sandbox, transfer_id: str) -> list[Obj]:
    return [r for r in sb.store.newest_first("transfer_reversal") if r["transfer"] == transfer_id]


def reverse_transfer(sb: Sandbox, transfer_id: str, params: Params) -> Obj:
    """Reverse all or part of a transfer (used by the API and the Dashboard)."""
    amount = get_int(params, "amount")
    if amount is not None and amount <= 0:
        raise invalid_request("Invalid positive integer", param="amount")
    get_str(params, "description")  # accepted, and not shown on reversals, as at Stripe
    get_bool(params, "refund_application_fee")  # no application fees here: only checked
    metadata = metadata_update({}, params)
    transfer = sb.store.get("transfer", transfer_id)
    remaining = transfer["amount"] - transfer["amount_reversed"]
    if remaining <= 0:
        raise invalid_request(f"Transfer {transfer_id} has already been fully reversed.")
    if amount is None:
        amount = remaining
    if amount > remaining:
        raise invalid_request(
            f"You have attempted to reverse {amount} cents, but only {remaining} cents "
            "remain on this transfer.",
            param="amount",
        )

    reversal_id = sb.ids.new("trr")
    # Money a transfer took from a charge's pending funds comes back pending too: a reversal
    # cannot make unsettled money spendable.
    spent = sb.store.get("balance_transaction", transfer["balance_transaction"])
    txn = money.add_transaction(
        sb,
        type_="transfer_refund",
        amount=amount,
        currency=transfer["currency"],
        source=reversal_id,
        description="REFUND FOR TRANSFER",
        available_on=max(sb.clock.timestamp(), int(spent["available_on"])),
    )
    reversal: Obj = {
        "id": reversal_id,
        "object": "transfer_reversal",
        "amount": amount,
        "balance_transaction": txn["id"],
        "created": sb.clock.timestamp(),
        "currency": transfer["currency"],
        "destination_payment_refund": sb.ids.new("pyr"),
        "metadata": metadata,
        "source_refund": None,
        "transfer": transfer_id,
    }
    sb.store.add(reversal)
    previous = {
        "amount_reversed": transfer["amount_reversed"],
        "reversed": transfer["reversed"],
        "reversals": copy.deepcopy(transfer["reversals"]),
    }
    transfer["amount_reversed"] += amount
    transfer["reversed"] = transfer["amount_reversed"] == transfer["amount"]
    transfer["reversals"] = _reversal_list(transfer_id, _reversals_of(sb, transfer_id))
    sb.emit("transfer.reversed", transfer, previous=previous)
    return reversal


def create_reversal(sb: Sandbox, call: Call) -> Obj:
    check_known(call.params, {"amount", "description", "metadata", "refund_application_fee"})
    return reverse_transfer(sb, call.path["id"], call.params)


def list_reversals(sb: Sandbox, call: Call) -> Obj:
    check_known(call.params, {"ending_before", "limit", "starting_after"})
    transfer_id = call.path["id"]
    sb.store.get("transfer", transfer_id)
    return paginate(
        _reversals_of(sb, transfer_id), call.params, f"/v1/transfers/{transfer_id}/reversals"
    )


def retrieve_reversal(sb: Sandbox, call: Call) -> Obj:
    check_known(call.params, set())
    reversal = sb.store.get("transfer_reversal", call.path["reversal"])
    if reversal["transfer"] != call.path["id"]:
        raise missing("transfer_reversal", call.path["reversal"])
    return reversal


def retrieve_transfer(sb: Sandbox, call: Call) -> Obj:
    check_known(call.params, set())
    return sb.store.get("transfer", call.path["id"])


def list_transfers(sb: Sandbox, call: Call) -> Obj:
    params = call.params
    check_known(
        params,
        {"created", "destination", "ending_before", "limit", "starting_after", "transfer_group"},
    )
    rows = sb.store.newest_first("transfer")
    for name in ("destination", "transfer_group"):
        wanted = get_str(params, name)
        if wanted is not None:
            rows = [t for t in rows if t[name] == wanted]
    return paginate(rows, params, "/v1/transfers")


def update_transfer(sb: Sandbox, call: Call) -> Obj:
    params = call.params
    check_known(params, {"description", "metadata"})
    transfer = sb.store.get("transfer", call.path["id"])
    changes: Obj = {}
    metadata = metadata_update(transfer["metadata"], params)
    if metadata != transfer["metadata"]:
        changes["metadata"] = metadata
    if "description" in params:
        description = get_str(params, "description") or None
        if description != transfer["description"]:
            changes["description"] = description

    if changes:
        previous = {name: transfer[name] for name in changes}
        transfer.update(changes)
        sb.emit("transfer.updated", transfer, previous=previous)
    return transfer


ROUTES = [
    ("POST", "/v1/transfers", create_transfer, "transfer"),
    ("GET", "/v1/transfers", list_transfers, "list:transfer"),
    ("GET", "/v1/transfers/{id}", retrieve_transfer, "transfer"),
    ("POST", "/v1/transfers/{id}", update_transfer, "transfer"),
    ("POST", "/v1/transfers/{id}/reversals", create_reversal, "transfer_reversal"),
    ("GET", "/v1/transfers/{id}/reversals", list_reversals, "list:transfer_reversal"),
    ("GET", "/v1/transfers/{id}/reversals/{reversal}", retrieve_reversal, "transfer_reversal"),
]
