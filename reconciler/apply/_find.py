"""Finding our rows from Stripe ids."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Table

from reconciler.apply.context import metadata_int
from reconciler.db.tables import merchants, payments, payouts, refunds
from reconciler.ledger.session import LedgerSession, Record
from reconciler.types import StripeObject


async def payment_by_intent(tx: LedgerSession, intent_id: str | None) -> Record | None:
    return await tx.find(payments, "payment_intent_id", intent_id)


async def payment_by_charge(tx: LedgerSession, charge_id: str | None) -> Record | None:
    return await tx.find(payments, "charge_id", charge_id)


async def payment_by_id(tx: LedgerSession, payment_id: int | None) -> Record | None:
    return await tx.find(payments, "id", payment_id)


async def refund_by_id(tx: LedgerSession, refund_id: int | None) -> Record | None:
    return await tx.find(refunds, "id", refund_id)


async def payout_by_transfer(tx: LedgerSession, transfer_id: str) -> Record | None:
    return await tx.find(payouts, "stripe_transfer_id", transfer_id)


async def payout_by_id(tx: LedgerSession, payout_id: int | None) -> Record | None:
    return await tx.find(payouts, "id", payout_id)


async def merchant_by_account(tx: LedgerSession, account_id: str | None) -> Record | None:
    return await tx.find(merchants, "stripe_account_id", account_id)


async def merchant_by_id(tx: LedgerSession, merchant_id: int | None) -> Record | None:
    return await tx.find(merchants, "id", merchant_id)


async def ours(
    tx: LedgerSession,
    table: Table,
    stripe_column: str,
    obj: StripeObject,
    metadata_key: str,
    *,
    now: datetime,
) -> Record | None:
    """Our row for a Stripe object: the one holding its id, else the one its metadata names
    (created by us before Stripe's), which then takes the id. A row that already holds
    another Stripe id is never claimed."""
    row = await tx.find(table, stripe_column, obj["id"])
    if row is not None:
        return row
    row = await tx.find(table, "id", metadata_int(obj, metadata_key))
    if row is None:
        return None
    row = await tx.lock(table, row.id)  # decided on current data: another may claim it first
    if getattr(row, stripe_column) is not None:
        return row if getattr(row, stripe_column) == obj["id"] else None
    tx.update(row, now=now, **{stripe_column: obj["id"]})
    return row
