from __future__ import annotations

from decimal import Decimal

import pytest

from reconciler.errors import InvalidAmount, UnknownCurrency
from reconciler.money import FeeSchedule, Money


def test_money_is_minor_units_with_a_known_currency() -> None:
    assert str(Money(123456, "USD")) == "1234.56 USD"
    assert str(Money(-5, "usd")) == "-0.05 USD"
    with pytest.raises(UnknownCurrency):
        Money(100, "eur")
    with pytest.raises(InvalidAmount):
        Money(1.5, "usd")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("percent", "fixed", "amount", "fee"),
    [
        ("0", 0, 10000, 0),
        ("10", 0, 10000, 1000),
        ("2.9", 30, 10000, 320),
        ("2.5", 0, 1, 0),  # 0.025 rounds down
        ("2.5", 0, 20, 1),  # 0.5 rounds half up
        ("0", 500, 100, 100),  # never more than the payment
    ],
)
def test_platform_fee(percent: str, fixed: int, amount: int, fee: int) -> None:
    assert FeeSchedule(Decimal(percent), fixed).fee_for(amount) == fee
