"""Money: an integer count of minor units and a currency. Never a float."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from reconciler.errors import InvalidAmount, UnknownCurrency

# Currencies this service books, with their minor-unit exponent. ICPay's Stripe rail is USD only
# (the `stripe_usd` ledger); adding one here is a product decision, not a code change elsewhere.
CURRENCY_EXPONENTS: dict[str, int] = {"usd": 2}
LEDGER_FOR_CURRENCY: dict[str, str] = {"usd": "stripe_usd"}


def is_booked(currency: str) -> bool:
    """Whether the ledger holds money in this currency."""
    return currency.lower() in CURRENCY_EXPONENTS


def check_currency(currency: str) -> str:
    """Return the currency in Stripe's lowercase form, or refuse one we do not book."""
    code = currency.lower()
    if code not in CURRENCY_EXPONENTS:
        raise UnknownCurrency(f"unknown currency {currency!r}: this ledger books only usd")
    return code


def check_positive(amount: int, what: str = "amount") -> int:
    """Refuse anything but a positive whole number of minor units (bools and floats included)."""
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise InvalidAmount(f"{what} must be a whole number of minor units, got {amount!r}")
    if amount <= 0:
        raise InvalidAmount(f"{what} must be positive, got {amount}")
    return amount


@dataclass(frozen=True, slots=True)
class Money:
    amount: int
    currency: str

    def __post_init__(self) -> None:
        if isinstance(self.amount, bool) or not isinstance(self.amount, int):
            raise InvalidAmount(f"money amount must be an int of minor units, got {self.amount!r}")
        object.__setattr__(self, "currency", check_currency(self.currency))

    def __str__(self) -> str:
        exponent = CURRENCY_EXPONENTS[self.currency]
        sign = "-" if self.amount < 0 else ""
        whole, minor = divmod(abs(self.amount), 10**exponent)
        return f"{sign}{whole}.{minor:0{exponent}d} {self.currency.upper()}"


@dataclass(frozen=True, slots=True)
class FeeSchedule:
    """ICPay's platform fee: a percentage of the payment plus a fixed amount, in minor units."""

    percent: Decimal = Decimal(0)
    fixed: int = 0

    def fee_for(self, amount: int) -> int:
        """The platform fee on a payment, rounded half up and never more than the payment."""
        if not self.percent:  # the default: no Decimal arithmetic for every payment booked
            return min(amount, self.fixed)
        variable = (Decimal(amount) * self.percent / 100).quantize(Decimal(1), ROUND_HALF_UP)
        return min(amount, int(variable) + self.fixed)
