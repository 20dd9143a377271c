"""Balance transactions, the platform balance, Stripe's US card fee and currency conversion.

The platform is a US account settling in usd: money in another currency (a charge, its
refunds) enters and leaves the balance converted, its balance transaction in usd with the
`exchange_rate` used.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .state import Sandbox

Obj = dict[str, Any]

DAY = 86_400
SETTLEMENT_CURRENCY = "usd"
ZERO_DECIMAL = frozenset({"jpy"})

REPORTING_CATEGORY = {
    "charge": "charge",
    "payment": "charge",
    "refund": "refund",
    "refund_failure": "refund_failure",
    "transfer": "transfer",
    "transfer_refund": "transfer_reversal",
    "payout": "payout",
    "adjustment": "other_adjustment",
    "topup": "topup",
}


def card_fee(amount: int) -> int:
    """2.9% + 30 cents, rounded half up to the cent."""
    return (amount * 29 + 500) // 1000 + 30


def conversion_fee(amount: int) -> int:
    """Stripe's US fee for converting a payment's currency: 1%, rounded half up."""
    return (amount + 50) // 100


def has_rate(sb: Sandbox, currency: str) -> bool:
    return currency == SETTLEMENT_CURRENCY or currency in sb.settings.exchange_rates


def settled(sb: Sandbox, amount: int, currency: str) -> tuple[int, str, float | None]:
    """`amount` minor units of `currency` in the settlement currency at today's rate: amount,
    currency and the rate (None when there was nothing to convert). Callers checked the rate
    exists (`has_rate`) before changing anything."""
    if currency == SETTLEMENT_CURRENCY:
        return amount, currency, None
    rate = sb.settings.exchange_rates[currency]
    major = Decimal(amount) / (1 if currency in ZERO_DECIMAL else 100)
    cents = (major * Decimal(str(rate)) * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return int(cents), SETTLEMENT_CURRENCY, rate


def available_on_for_charge(created: int, days: int) -> int:
    return (created // DAY + days) * DAY


def add_transaction(
    sb: Sandbox,
    *,
    type_: str,
    amount: int,
    currency: str,
    source: str | None,
    description: str | None = None,
    fee: int = 0,
    available_on: int | None = None,
    exchange_rate: float | None = None,
) -> Obj:
    """Record a movement of the platform balance and return its balance transaction."""
    now = sb.clock.timestamp()
    on = now if available_on is None else available_on
    txn: Obj = {
        "id": sb.ids.new("txn"),
        "object": "balance_transaction",
        "amount": amount,
        "available_on": on,
        "balance_type": "payments",
        "created": now,
        "currency": currency,
        "description": description,
        "exchange_rate": exchange_rate,
        "fee": fee,
        "fee_details": (
            [
                {
                    "amount": fee,
                    "application": None,
                    "currency": currency,
                    "description": "Stripe processing fees",
                    "type": "stripe_fee",
                }
            ]
            if fee
            else []
        ),
        "net": amount - fee,
        "reporting_category": REPORTING_CATEGORY.get(type_, "other_adjustment"),
        "source": source,
        "status": "available" if on <= now else "pending",
        "type": type_,
    }
    sb.store.add(txn)
    _bucket(sb, txn["currency"])[txn["status"]] += txn["net"]
    if txn["status"] == "pending":
        sb.pending_transactions.append(txn["id"])
    elif txn["net"] > 0:
        announce_available(sb)
    return txn


def totals(sb: Sandbox) -> dict[str, dict[str, int]]:
    """Per currency: available and pending sums of `net`."""
    _bucket(sb, "usd")
    return {currency: dict(sums) for currency, sums in sb.private.balance_totals.items()}


def _bucket(sb: Sandbox, currency: str) -> dict[str, int]:
    return sb.private.balance_totals.setdefault(currency, {"available": 0, "pending": 0})


def available(sb: Sandbox, currency: str) -> int:
    return totals(sb).get(currency, {"available": 0})["available"]


def balance_object(sb: Sandbox) -> Obj:
    sums = totals(sb)
    return {
        "object": "balance",
        "available": [
            {"amount": v["available"], "currency": c, "source_types": {"card": v["available"]}}
            for c, v in sums.items()
        ],
        "connect_reserved": [{"amount": 0, "currency": c} for c in sums],
        "livemode": False,
        "pending": [
            {"amount": v["pending"], "currency": c, "source_types": {"card": v["pending"]}}
            for c, v in sums.items()
        ],
        # Funds set aside ahead for refunds and disputes (API 2025-05-28.basil): the sandbox
        # never sets any aside, so they are always zero.
        "refund_and_dispute_prefunding": {
            side: [{"amount": 0, "currency": c, "source_types": {"card": 0}} for c in sums]
            for side in ("available", "pending")
        },
    }


def announce_available(sb: Sandbox) -> None:
    sb.emit("balance.available", balance_object(sb))


def settle(sb: Sandbox) -> bool:
    """Move pending transactions whose `available_on` has passed to available."""
    now = sb.clock.timestamp()
    still: list[str] = []
    moved = False
    for txn_id in sb.pending_transactions:
        txn = sb.store.get("balance_transaction", txn_id)
        if txn["available_on"] <= now:
            txn["status"] = "available"
            bucket = _bucket(sb, txn["currency"])
            bucket["pending"] -= txn["net"]
            bucket["available"] += txn["net"]
            moved = True
        else:
            still.append(txn_id)
    sb.pending_transactions = still
    if moved:
        announce_available(sb)
    return moved
