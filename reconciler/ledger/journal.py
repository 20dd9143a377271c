"""The journal: immutable, balanced entries.

An entry is one business fact (a payment completed, a payout released...) identified by an
idempotency key, so posting the same fact twice is a no-op enforced by a unique constraint.
Each leg is a non-negative debit or credit on one account; per currency, debits equal credits.
Mistakes are corrected by posting another entry, never by changing one (the database refuses).
Entries are posted through a `LedgerSession` (`session.post`), which writes them with their
legs, and the running total each merchant's payable account keeps, when it flushes.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.errors import UnbalancedEntry
from reconciler.money import CURRENCY_EXPONENTS, check_currency, check_positive


@dataclass(frozen=True, slots=True)
class Leg:
    account: str
    currency: str
    debit: int = 0
    credit: int = 0


def debit(account: str, amount: int, currency: str) -> Leg:
    return Leg(account, currency, debit=amount)


def credit(account: str, amount: int, currency: str) -> Leg:
    return Leg(account, currency, credit=amount)


def two_legs(*, debit_account: str, credit_account: str, amount: int, currency: str) -> list[Leg]:
    """The common entry: one account debited, one credited, by the same amount."""
    return [debit(debit_account, amount, currency), credit(credit_account, amount, currency)]


def check_balanced(legs: list[Leg]) -> None:
    """Refuse an entry that is not two or more valid legs balancing in each currency."""
    if len(legs) < 2:
        raise UnbalancedEntry("a journal entry needs at least two legs")
    # Every entry a batch posts passes through here: the checks are spelled for the common
    # case (a booked currency, int amounts), each falling back to the full check to refuse.
    totals: dict[str, int] = {}
    for leg in legs:
        currency, debit, credit = leg.currency, leg.debit, leg.credit
        if currency not in CURRENCY_EXPONENTS:
            check_currency(currency)
        if (debit == 0) == (credit == 0):
            raise UnbalancedEntry(f"leg on {leg.account} must be exactly one of debit or credit")
        amount = debit or credit
        if type(amount) is not int or amount <= 0:
            check_positive(amount, f"leg on {leg.account}")
        totals[currency] = totals.get(currency, 0) + debit - credit
    if any(totals.values()):
        unbalanced = {currency: total for currency, total in totals.items() if total}
        raise UnbalancedEntry(f"debits and credits differ by {unbalanced}")
