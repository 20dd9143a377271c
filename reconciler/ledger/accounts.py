"""The chart of accounts. Names are strings so a new merchant needs no new row anywhere.

Assets (debit-normal): what the platform holds at Stripe, available or pending.
Liabilities (credit-normal): what ICPay owes each merchant, and payouts on their way.
Income / expense: ICPay's platform fee, and Stripe's processing fee.
"""

from __future__ import annotations

PLATFORM_AVAILABLE = "platform:stripe_available"
PLATFORM_PENDING = "platform:stripe_pending"
PAYOUTS_IN_FLIGHT = "platform:payouts_in_flight"
FEE_REVENUE = "platform:fee_revenue"
STRIPE_FEES = "platform:stripe_fees"

CREDIT_NORMAL_PREFIXES = ("merchant:", PAYOUTS_IN_FLIGHT, FEE_REVENUE)


def merchant_payable(merchant_id: int) -> str:
    return f"merchant:{merchant_id}:payable"


def is_merchant_account(account: str) -> bool:
    return account.startswith("merchant:")


def is_credit_normal(account: str) -> bool:
    """Liabilities and income grow with credits; assets and expenses with debits."""
    return account.startswith(CREDIT_NORMAL_PREFIXES)
