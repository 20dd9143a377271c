"""The ledger's rows, typed: one class per table the unit of work holds.

A row is read-only to everyone but the `LedgerSession` that holds it: callers read its fields
(`payment.amount - payment.platform_fee`, checked by mypy) and change it only through
`LedgerSession.update`, which records what changed so the session knows what to write. The
session updates a held row in place (a re-read after a lock, a change), so every caller
holding it sees the current values.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Self, TypedDict

from sqlalchemy import Table

from reconciler.db.tables import merchants, payments, payouts, refunds


class Requirements(TypedDict, total=False):
    """What Stripe still needs of a connected account, as its `requirements` says."""

    currently_due: list[str]
    eventually_due: list[str]
    past_due: list[str]
    pending_verification: list[str]
    disabled_reason: str | None
    current_deadline: int | None


class LedgerRow:
    """What every row type shares: its table, the columns that name one row (besides the id),
    and the column holding the merchant it belongs to."""

    __slots__ = ()
    # Every concrete row type is a dataclass (this declares it for the type checker).
    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]
    table: ClassVar[Table]
    lookup_columns: ClassVar[tuple[str, ...]]
    owner_column: ClassVar[str]
    singular: ClassVar[str]
    id: int

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return _field_names(cls)

    @classmethod
    def field_set(cls) -> frozenset[str]:
        return _field_set(cls)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Self:
        # Positionally, in field order (every batch builds hundreds of rows this way).
        return cls(*_getters(cls)[0](values))

    @classmethod
    def from_values(cls, values: Sequence[Any]) -> Self:
        """From the values of its fields, in `field_names()` order."""
        return cls(*values)

    def as_dict(self) -> dict[str, Any]:
        return dict(zip(self.field_names(), _getters(type(self))[1](self), strict=True))

    @property
    def merchant(self) -> int:
        """The id of the merchant this row belongs to (the merchant's own id for a merchant)."""
        return int(getattr(self, self.owner_column))

    def _set(self, values: Mapping[str, Any]) -> None:
        """Overwrite fields in place; only the session calls this."""
        for name, value in values.items():
            object.__setattr__(self, name, value)


@dataclass(frozen=True, slots=True, eq=False)
class Merchant(LedgerRow):
    table: ClassVar[Table] = merchants
    lookup_columns: ClassVar[tuple[str, ...]] = ("stripe_account_id",)
    owner_column: ClassVar[str] = "id"
    singular: ClassVar[str] = "merchant"

    id: int
    name: str
    email: str | None
    stripe_account_id: str | None
    connect_status: str
    charges_enabled: bool
    payouts_enabled: bool
    details_submitted: bool
    capabilities: dict[str, str]
    requirements: Requirements
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True, eq=False)
class Payment(LedgerRow):
    table: ClassVar[Table] = payments
    lookup_columns: ClassVar[tuple[str, ...]] = ("payment_intent_id", "charge_id")
    owner_column: ClassVar[str] = "merchant_id"
    singular: ClassVar[str] = "payment"

    id: int
    merchant_id: int
    payment_intent_id: str | None
    charge_id: str | None
    ledger: str
    currency: str
    amount: int
    platform_fee: int
    stripe_fee: int | None
    amount_refunded: int
    status: str
    funds_available: bool
    available_on: int | None
    presentment_amount: int | None
    presentment_currency: str | None
    created_at: datetime
    updated_at: datetime
    request_scope: str | None
    request_key: str | None
    request_digest: str | None


@dataclass(frozen=True, slots=True, eq=False)
class Refund(LedgerRow):
    table: ClassVar[Table] = refunds
    lookup_columns: ClassVar[tuple[str, ...]] = ("stripe_refund_id",)
    owner_column: ClassVar[str] = "merchant_id"
    singular: ClassVar[str] = "refund"

    id: int
    payment_id: int
    merchant_id: int
    stripe_refund_id: str | None
    currency: str
    amount: int
    status: str
    source: str
    reason: str | None
    failure_reason: str | None
    failure_message: str | None
    created_at: datetime
    updated_at: datetime
    request_scope: str | None
    request_key: str | None
    request_digest: str | None


@dataclass(frozen=True, slots=True, eq=False)
class Payout(LedgerRow):
    table: ClassVar[Table] = payouts
    lookup_columns: ClassVar[tuple[str, ...]] = ("stripe_transfer_id",)
    owner_column: ClassVar[str] = "merchant_id"
    singular: ClassVar[str] = "payout"

    id: int
    merchant_id: int
    stripe_transfer_id: str | None
    destination: str | None
    currency: str
    amount: int
    amount_reversed: int
    status: str
    failure_message: str | None
    created_at: datetime
    updated_at: datetime
    request_scope: str | None
    request_key: str | None
    request_digest: str | None


_FIELD_NAMES: dict[type[LedgerRow], tuple[str, ...]] = {}
_FIELD_SETS: dict[type[LedgerRow], frozenset[str]] = {}
_GETTERS: dict[type[LedgerRow], tuple[Any, Any]] = {}


def _getters(
    row_type: type[LedgerRow],
) -> tuple[Callable[[Mapping[str, Any]], tuple[Any, ...]], Callable[[Any], tuple[Any, ...]]]:
    """The row's values, in field order, from a mapping and from a row (each in C)."""
    getters = _GETTERS.get(row_type)
    if getters is None:
        names = _field_names(row_type)  # every row type has several: the getters give tuples
        getters = _GETTERS[row_type] = (
            operator.itemgetter(*names),
            operator.attrgetter(*names),
        )
    return getters


def _field_set(row_type: type[LedgerRow]) -> frozenset[str]:
    names = _FIELD_SETS.get(row_type)
    if names is None:
        names = _FIELD_SETS[row_type] = frozenset(_field_names(row_type))
    return names


def _field_names(row_type: type[LedgerRow]) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(row_type)
    if names is None:
        names = _FIELD_NAMES[row_type] = tuple(f.name for f in dataclasses.fields(row_type))
    return names


# Parents before children: the order new rows are inserted in.
ROW_TYPES: tuple[type[LedgerRow], ...] = (Merchant, Payment, Refund, Payout)
