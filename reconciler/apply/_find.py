"""Finding our rows from Stripe ids."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

from reconciler.apply.context import metadata_int
from reconciler.ledger.rows import LedgerRow, Merchant, Payment, Payout, Refund
from reconciler.ledger.session import LedgerSession
from reconciler.types import StripeObject

Row = TypeVar("Row", bound=LedgerRow)
# A row a batch reads before applying: (row type, column, value).
RowWanted = tuple[type[LedgerRow], str, Any]


async def payment_by_intent(tx: LedgerSession, intent_id: str | None) -> Payment | None:
    return await tx.find(Payment, "payment_intent_id", intent_id)


async def payment_by_charge(tx: LedgerSession, charge_id: str | None) -> Payment | None:
    return await tx.find(Payment, "charge_id", charge_id)


async def payment_by_id(tx: LedgerSession, payment_id: int | None) -> Payment | None:
    return await tx.find(Payment, "id", payment_id)


async def refund_by_id(tx: LedgerSession, refund_id: int | None) -> Refund | None:
    return await tx.find(Refund, "id", refund_id)


async def payout_by_transfer(tx: LedgerSession, transfer_id: str) -> Payout | None:
    return await tx.find(Payout, "stripe_transfer_id", transfer_id)


async def payout_by_id(tx: LedgerSession, payout_id: int | None) -> Payout | None:
    return await tx.find(Payout, "id", payout_id)


async def merchant_by_account(tx: LedgerSession, account_id: str | None) -> Merchant | None:
    return await tx.find(Merchant, "stripe_account_id", account_id)


async def merchant_by_id(tx: LedgerSession, merchant_id: int | None) -> Merchant | None:
    return await tx.find(Merchant, "id", merchant_id)


async def ours(
    tx: LedgerSession,
    kind: type[Row],
    stripe_column: str,
    obj: StripeObject,
    metadata_key: str,
    *,
    now: datetime,
) -> Row | None:
    """Our row for a Stripe object: the one holding its id, else the one its metadata names
    (created by us before Stripe's), which then takes the id. A row that already holds
    another Stripe id is never claimed."""
    row = await tx.find(kind, stripe_column, obj["id"])
    if row is not None:
        return row
    claimed = await tx.find(kind, "id", metadata_int(obj, metadata_key))
    if claimed is None:
        return None
    row = await tx.lock(kind, claimed.id)  # decided on current data: another may claim it first
    held = getattr(row, stripe_column)
    if held is not None:
        return row if held == obj["id"] else None
    tx.update(row, now=now, **{stripe_column: obj["id"]})
    return row
