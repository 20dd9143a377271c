"""PaymentIntents: create, confirm with a test card, retrieve, list, update, cancel."""

from __future__ import annotations

import copy
import re
from typing import TYPE_CHECKING, Any

from . import money
from .cards import lookup, payment_method_object, resolve
from .charges import DECLINE_MESSAGES, new_charge
from .errors import StripeError, invalid_request, missing
from .forms import (
    Params,
    check_known,
    get_bool,
    get_dict,
    get_int,
    get_list,
    get_str,
    metadata_update,
    require_str,
)
from .state import Sandbox
from .store import paginate

if TYPE_CHECKING:
    from .api import Call

Obj = dict[str, Any]

CURRENCIES = frozenset({"usd", "eur", "gbp", "cad", "aud", "jpy", "chf", "sek", "nok", "dkk"})
# Stripe's minimum charge amounts, in minor units.
MINIMUMS = {"usd": 50, "eur": 50, "gbp": 30, "cad": 50, "aud": 50, "jpy": 50, "chf": 50}

CREATE_PARAMS = {
    "amount",
    "amount_details",
    "application_fee_amount",
    "automatic_payment_methods",
    "capture_method",
    "confirm",
    "confirmation_method",
    "confirmation_token",
    "currency",
    "customer",
    "customer_account",
    "description",
    "error_on_requires_action",
    "excluded_payment_method_types",
    "hooks",
    "mandate",
    "mandate_data",
    "off_session",
    "on_behalf_of",
    "payment_details",
    "payment_method",
    "payment_method_configuration",
    "payment_method_data",
    "payment_method_options",
    "payment_method_types",
    "radar_options",
    "receipt_email",
    "return_url",
    "setup_future_usage",
    "shipping",
    "statement_descriptor",
    "statement_descriptor_suffix",
    "transfer_data",
    "transfer_group",
    "use_stripe_sdk",
    "metadata",
    "allowed_payment_method_types",
}
CONFIRM_PARAMS = {
    "allowed_payment_method_types",
    "amount_details",
    "amount_to_confirm",
    "capture_method",
    "confirmation_token",
    "error_on_requires_action",
    "excluded_payment_method_types",
    "hooks",
    "mandate",
    "mandate_data",
    "off_session",
    "payment_details",
    "payment_method",
    "payment_method_data",
    "payment_method_options",
    "payment_method_types",
    "radar_options",
    "receipt_email",
    "return_url",
    "setup_future_usage",
    "shipping",
    "use_stripe_sdk",
}
UPDATE_PARAMS = {
    "amount",
    "currency",
    "description",
    "metadata",
    "payment_method",
    "receipt_email",
    "statement_descriptor",
    "statement_descriptor_suffix",
    "transfer_group",
}
UNSUPPORTED = ("application_fee_amount", "transfer_data", "on_behalf_of", "confirmation_token")
STRING_FIELDS = (
    "description",
    "receipt_email",
    "statement_descriptor",
    "statement_descriptor_suffix",
    "transfer_group",
)
CAPTURE_METHODS = ("automatic", "automatic_async", "manual")
CONFIRMATION_METHODS = ("automatic", "manual")
SETUP_FUTURE_USAGES = ("off_session", "on_session")
CANCELLATION_REASONS = ("duplicate", "fraudulent", "requested_by_customer", "abandoned")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://\S+$")

REDIRECT_MESSAGE = (
    "This PaymentIntent is configured to accept payment methods enabled in your Dashboard, "
    "some of which may require a full page redirect to succeed. If you do not want to accept "
    "redirect-based payment methods, set `automatic_payment_methods[enabled]` to `true` and "
    "`automatic_payment_methods[allow_redirects]` to `never` when creating Setup Intents and "
    "Payment Intents."
)


def _currency(params: Params) -> str:
    currency = require_str(params, "currency").lower()
    if currency not in CURRENCIES:
        raise invalid_request(f"Invalid currency: {currency}.", param="currency")
    return currency


def _check_settles(sb: Sandbox, currency: str) -> None:
    """A charge in another currency converts into the platform's usd: it needs a rate."""
    if not money.has_rate(sb, currency):
        raise invalid_request(
            f"The sandbox has no exchange rate from {currency} to "
            f"{money.SETTLEMENT_CURRENCY}, the platform's settlement currency: set one with "
            'POST /_sandbox/settings {"exchange_rates": {...}}.',
            param="currency",
        )


def _check_amount(amount: int, currency: str) -> None:
    """Stripe's charge limits: the currency's minimum, and no more than $999,999.99."""
    minimum = MINIMUMS.get(currency, 1)
    if amount < minimum:
        raise invalid_request(
            f"Amount must be at least {minimum} {currency} minor units.",
            param="amount",
            code="amount_too_small",
        )
    if amount > 99_999_999:
        raise invalid_request(
            "Amount must be no more than $999,999.99", param="amount", code="amount_too_large"
        )


def _choice(params: Params, name: str, allowed: tuple[str, ...]) -> str | None:
    value = get_str(params, name)
    if value is not None and value not in allowed:
        raise invalid_request(f"Invalid {name}: must be one of {', '.join(allowed)}", param=name)
    return value


def _capture_method(params: Params) -> str:
    capture_method = _choice(params, "capture_method", CAPTURE_METHODS) or "automatic_async"
    if capture_method == "manual":
        raise invalid_request(
            "The sandbox does not support capture_method=manual.", param="capture_method"
        )
    return capture_method


def _return_url(params: Params) -> str | None:
    # Any scheme: apps pass their own (`myapp://done`) to come back after a redirect.
    url = get_str(params, "return_url") or None
    if url is not None and not _URL.match(url):
        raise invalid_request("Not a valid URL", param="return_url")
    return url


def _check_redirect(automatic: Obj | None, return_url: str | None) -> None:
    redirects = bool(automatic and automatic["enabled"] and automatic["allow_redirects"] != "never")
    if redirects and not return_url:
        raise invalid_request(REDIRECT_MESSAGE)


def _missing_payment_method(intent: Obj | None) -> StripeError:
    return StripeError(
        400,
        "invalid_request_error",
        "You cannot confirm this PaymentIntent because it's missing a payment method. To "
        "confirm the PaymentIntent with cus_XXX, specify a payment method attached to this "
        "customer along with the customer ID.",
        code="payment_intent_unexpected_state",
        param="payment_method",
        extra={} if intent is None else {"payment_intent": copy.deepcopy(intent)},
    )


def create_intent(sb: Sandbox, call: Call) -> Obj:
    params = call.params
    # Everything is checked before the first id is drawn: a refused call leaves no trace.
    check_known(params, CREATE_PARAMS)
    for name in UNSUPPORTED:
        if name in params:
            raise invalid_request(f"The sandbox does not support `{name}`.", param=name)
    amount = get_int(params, "amount", required=True)
    assert amount is not None
    currency = _currency(params)
    _check_amount(amount, currency)
    _check_settles(sb, currency)
    capture_method = _capture_method(params)
    confirmation_method = _choice(params, "confirmation_method", CONFIRMATION_METHODS)
    setup_future_usage = _choice(params, "setup_future_usage", SETUP_FUTURE_USAGES)
    customer = get_str(params, "customer")
    if customer:
        raise missing("customer", customer, param="customer")
    types = get_list(params, "payment_method_types")
    automatic = get_dict(params, "automatic_payment_methods")
    if types and automatic:
        raise invalid_request(
            "You may only specify one of these parameters: automatic_payment_methods, "
            "payment_method_types.",
            param="automatic_payment_methods",
        )
    automatic_obj = None
    if not types:
        automatic_obj = {
            "allow_redirects": _choice(automatic, "allow_redirects", ("always", "never"))
            or "always",
            "enabled": get_bool(automatic, "enabled", True),
        }
    strings = {name: get_str(params, name) for name in STRING_FIELDS}
    metadata = metadata_update({}, params)
    confirm = get_bool(params, "confirm")
    return_url = _return_url(params)
    if return_url and not confirm:
        raise invalid_request(
            "You can only provide `return_url` when `confirm` is true.", param="return_url"
        )
    payment_method = get_str(params, "payment_method") or None
    if payment_method is not None:
        lookup(sb, payment_method)
    if confirm:
        if payment_method is None:
            raise _missing_payment_method(None)
        _check_redirect(automatic_obj, return_url)

    intent_id = sb.ids.new("pi")
    intent: Obj = {
        "id": intent_id,
        "object": "payment_intent",
        "amount": amount,
        "amount_capturable": 0,
        "amount_details": {"tip": {}},
        "amount_received": 0,
        "application": None,
        "application_fee_amount": None,
        "automatic_payment_methods": automatic_obj,
        "canceled_at": None,
        "cancellation_reason": None,
        "capture_method": capture_method,
        "client_secret": f"{intent_id}_secret_{sb.ids.token(25)}",
        "confirmation_method": confirmation_method or "automatic",
        "created": sb.clock.timestamp(),
        "currency": currency,
        "customer": None,
        "description": strings["description"],
        "last_payment_error": None,
        "latest_charge": None,
        "livemode": False,
        "metadata": metadata,
        "next_action": None,
        "on_behalf_of": None,
        "payment_method": None,
        "payment_method_configuration_details": None,
        "payment_method_options": {
            "card": {
                "installments": None,
                "mandate_options": None,
                "network": None,
                "request_three_d_secure": "automatic",
            }
        },
        "payment_method_types": types or ["card"],
        "processing": None,
        "receipt_email": strings["receipt_email"],
        "review": None,
        "setup_future_usage": setup_future_usage,
        "shipping": None,
        "source": None,
        "statement_descriptor": strings["statement_descriptor"],
        "statement_descriptor_suffix": strings["statement_descriptor_suffix"],
        "status": "requires_payment_method",
        "transfer_data": None,
        "transfer_group": strings["transfer_group"],
    }
    if payment_method is not None:
        intent["payment_method"], _ = resolve(sb, payment_method)
        intent["status"] = "requires_confirmation"
    sb.private.return_urls[intent_id] = return_url or ""
    sb.store.add(intent)
    sb.emit("payment_intent.created", intent)
    if confirm:
        return _confirm(sb, intent, None)
    return intent


def confirm_intent(sb: Sandbox, call: Call) -> Obj:
    params = call.params
    check_known(params, CONFIRM_PARAMS)
    if "confirmation_token" in params:
        raise invalid_request(
            "The sandbox does not support `confirmation_token`.", param="confirmation_token"
        )
    _capture_method(params)
    intent = sb.store.get("payment_intent", call.path["id"])
    return_url = _return_url(params)
    payment_method = get_str(params, "payment_method") or None
    if payment_method is not None:
        lookup(sb, payment_method)
    if intent["status"] not in ("requires_payment_method", "requires_confirmation"):
        raise _unexpected_state(intent, "confirm")
    if payment_method is None and not intent["payment_method"]:
        raise _missing_payment_method(intent)
    _check_redirect(
        intent["automatic_payment_methods"],
        return_url or sb.private.return_urls.get(intent["id"]),
    )
    if return_url:
        sb.private.return_urls[intent["id"]] = return_url
    if "capture_method" in params:
        intent["capture_method"] = get_str(params, "capture_method")
    return _confirm(sb, intent, payment_method)


def _unexpected_state(intent: Obj, action: str) -> StripeError:
    return StripeError(
        400,
        "invalid_request_error",
        f"You cannot {action} this PaymentIntent because it has a status of {intent['status']}.",
        code="payment_intent_unexpected_state",
        extra={"payment_intent": copy.deepcopy(intent)},
    )


def _confirm(sb: Sandbox, intent: Obj, payment_method: str | None) -> Obj:
    """Charge the card of a confirmable, validated intent.

    A decline still changes state (a failed charge, `payment_intent.payment_failed`) before
    answering 402: that is the payment's outcome, not a refused request, as at Stripe.
    """
    if payment_method is not None:
        intent["payment_method"], _ = resolve(sb, payment_method)
    pm_id, card = resolve(sb, intent["payment_method"])
    charge = new_charge(sb, intent, pm_id, card)
    intent["latest_charge"] = charge["id"]
    if card.decline_code is not None:
        return _decline(sb, intent, charge, pm_id, card.decline_code)
    _settle_charge(sb, intent, charge, card.bypass_pending)
    intent.update(status="succeeded", amount_received=intent["amount"])
    sb.emit("charge.succeeded", charge)
    sb.emit("payment_intent.succeeded", intent)
    return intent


def _settle_charge(sb: Sandbox, intent: Obj, charge: Obj, bypass_pending: bool) -> None:
    """The charge's balance transaction: in usd (converted, with Stripe's conversion fee, when
    the charge is in another currency), its funds pending until `available_on` unless the
    card bypasses that. Captured asynchronously, the transaction exists and the funds move at
    once, but the charge shows it only a moment later (`charge.updated`), as at Stripe."""
    now = sb.clock.timestamp()
    available_on = (
        now
        if bypass_pending
        else money.available_on_for_charge(now, sb.settings.available_after_days)
    )
    amount, currency, rate = money.settled(sb, charge["amount"], charge["currency"])
    fee = money.card_fee(amount) + (money.conversion_fee(amount) if rate is not None else 0)
    txn = money.add_transaction(
        sb,
        type_="charge",
        amount=amount,
        currency=currency,
        source=charge["id"],
        description=intent["description"],
        fee=fee,
        available_on=available_on,
        exchange_rate=rate,
    )
    sb.private.charge_transactions[charge["id"]] = txn["id"]
    if sb.settings.async_capture and intent["capture_method"] == "automatic_async":
        due = sb.clock.now() + sb.settings.balance_transaction_delay
        sb.schedule(due, lambda: _attach_transaction(sb, charge["id"], txn["id"]))
    else:
        charge["balance_transaction"] = txn["id"]


def _attach_transaction(sb: Sandbox, charge_id: str, txn_id: str) -> None:
    charge = sb.store.get("charge", charge_id)
    charge["balance_transaction"] = txn_id
    sb.emit("charge.updated", charge, previous={"balance_transaction": None})


def _decline(sb: Sandbox, intent: Obj, charge: Obj, pm_id: str, decline_code: str) -> Obj:
    message = DECLINE_MESSAGES.get(decline_code, "Your card was declined.")
    error: Obj = {
        "charge": charge["id"],
        "code": "card_declined",
        "decline_code": decline_code,
        "doc_url": "https://stripe.com/docs/error-codes/card-declined",
        "message": message,
        "payment_method": payment_method_object(
            pm_id, sb.private.payment_method_cards[pm_id], sb.clock.timestamp()
        ),
        "type": "card_error",
    }
    intent.update(status="requires_payment_method", last_payment_error=error, payment_method=None)
    sb.emit("charge.failed", charge)
    sb.emit("payment_intent.payment_failed", intent)
    raise StripeError(
        402,
        "card_error",
        message,
        code="card_declined",
        extra={
            "charge": charge["id"],
            "decline_code": decline_code,
            "payment_intent": copy.deepcopy(intent),
            "payment_method": error["payment_method"],
        },
    )


def retrieve_intent(sb: Sandbox, call: Call) -> Obj:
    check_known(call.params, {"client_secret"})
    return sb.store.get("payment_intent", call.path["id"])


def list_intents(sb: Sandbox, call: Call) -> Obj:
    check_known(call.params, {"created", "customer", "ending_before", "limit", "starting_after"})
    return paginate(sb.store.newest_first("payment_intent"), call.params, "/v1/payment_intents")


def update_intent(sb: Sandbox, call: Call) -> Obj:
    params = call.params
    check_known(params, UPDATE_PARAMS)
    intent = sb.store.get("payment_intent", call.path["id"])
    metadata = metadata_update(intent["metadata"], params)
    strings = {name: get_str(params, name) or None for name in STRING_FIELDS if name in params}
    amount, currency = intent["amount"], intent["currency"]
    if "amount" in params:
        amount = get_int(params, "amount", required=True)
        assert amount is not None
    if "currency" in params:
        currency = _currency(params)
        _check_settles(sb, currency)
    if "amount" in params or "currency" in params:
        _check_amount(amount, currency)
    payment_method = get_str(params, "payment_method") or None
    if payment_method is not None:
        lookup(sb, payment_method)
    settled = intent["status"] in ("succeeded", "canceled")
    if settled and ("amount" in params or "currency" in params or payment_method is not None):
        raise _unexpected_state(intent, "update")

    intent.update(metadata=metadata, amount=amount, currency=currency, **strings)
    if payment_method is not None:
        intent["payment_method"], _ = resolve(sb, payment_method)
        intent["status"] = "requires_confirmation"
    return intent


def cancel_intent(sb: Sandbox, call: Call) -> Obj:
    check_known(call.params, {"cancellation_reason"})
    reason = _choice(call.params, "cancellation_reason", CANCELLATION_REASONS)
    intent = sb.store.get("payment_intent", call.path["id"])
    if intent["status"] in ("succeeded", "canceled"):
        raise _unexpected_state(intent, "cancel")
    intent.update(status="canceled", canceled_at=sb.clock.timestamp(), cancellation_reason=reason)
    sb.emit("payment_intent.canceled", intent)
    return intent


ROUTES = [
    ("POST", "/v1/payment_intents", create_intent, "payment_intent"),
    ("GET", "/v1/payment_intents", list_intents, "list:payment_intent"),
    ("GET", "/v1/payment_intents/{id}", retrieve_intent, "payment_intent"),
    ("POST", "/v1/payment_intents/{id}", update_intent, "payment_intent"),
    ("POST", "/v1/payment_intents/{id}/confirm", confirm_intent, "payment_intent"),
    ("POST", "/v1/payment_intents/{id}/cancel", cancel_intent, "payment_intent"),
]
