"""Stripe's test payment methods and what each one does."""

from __future__ import annotations

from .errors import missing
from .state import Card, Sandbox

TEST_CARDS: dict[str, Card] = {
    "pm_card_visa": Card("visa", "4242"),
    "pm_card_visa_debit": Card("visa", "5556", funding="debit"),
    "pm_card_mastercard": Card("mastercard", "4444"),
    "pm_card_amex": Card("amex", "8431"),
    "pm_card_bypassPending": Card("visa", "0077", bypass_pending=True),
    "pm_card_chargeDeclined": Card("visa", "0002", decline_code="generic_decline"),
    "pm_card_chargeDeclinedInsufficientFunds": Card(
        "visa", "9995", decline_code="insufficient_funds"
    ),
    "pm_card_refundFail": Card("visa", "5126", refund_fails=True),
}


def lookup(sb: Sandbox, payment_method: str, param: str = "payment_method") -> Card:
    """The card behind a `pm_...` id or test token, changing nothing (for validation)."""
    card = sb.private.payment_method_cards.get(payment_method) or TEST_CARDS.get(payment_method)
    if card is None:
        raise missing("PaymentMethod", payment_method, param=param)
    return card


def resolve(sb: Sandbox, payment_method: str, param: str = "payment_method") -> tuple[str, Card]:
    """Turn a test token into a concrete `pm_...` id, as Stripe does on confirmation."""
    card = lookup(sb, payment_method, param)
    if payment_method in sb.private.payment_method_cards:
        return payment_method, card
    pm_id = sb.ids.new("pm")
    sb.private.payment_method_cards[pm_id] = card
    return pm_id, card


def method_details(card: Card) -> dict[str, object]:
    return {
        "card": {
            "amount_authorized": None,
            "brand": card.brand,
            "checks": {
                "address_line1_check": None,
                "address_postal_code_check": None,
                "cvc_check": "pass",
            },
            "country": "US",
            "exp_month": 12,
            "exp_year": 2034,
            "fingerprint": "sandbox" + card.last4,
            "funding": card.funding,
            "installments": None,
            "last4": card.last4,
            "mandate": None,
            "network": card.brand,
            "network_token": {"used": False},
            "three_d_secure": None,
            "wallet": None,
        },
        "type": "card",
    }


def empty_billing_details() -> dict[str, object]:
    """Test cards carry no billing details; Stripe still sends every field, as null."""
    address = dict.fromkeys(("city", "country", "line1", "line2", "postal_code", "state"))
    return {"address": address, "email": None, "name": None, "phone": None}


def payment_method_object(pm_id: str, card: Card, created: int) -> dict[str, object]:
    """The `payment_method` Stripe embeds in card errors."""
    details = method_details(card)["card"]
    assert isinstance(details, dict)
    return {
        "id": pm_id,
        "object": "payment_method",
        "billing_details": empty_billing_details(),
        "card": {
            k: details[k]
            for k in (
                "brand",
                "checks",
                "country",
                "exp_month",
                "exp_year",
                "fingerprint",
                "funding",
                "last4",
                "networks",
                "three_d_secure_usage",
                "wallet",
            )
            if k in details
        },
        "created": created,
        "customer": None,
        "livemode": False,
        "metadata": {},
        "type": "card",
    }
