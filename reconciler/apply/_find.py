"""Finding our rows from Stripe ids."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row, Table, select
from sqlalchemy.ext.asyncio import AsyncConnection

from reconciler.apply.context import metadata_int
from reconciler.db.tables import merchants, payments, payouts, refunds
from reconciler.gateway import StripeObject
from reconciler.ledger._rows import update_row


async def _one(conn: AsyncConnection, table: Table, **where: Any) -> Row[Any] | None:
    query = select(table)
    for column, value in where.items():
        query = query.where(table.c[column] == value)
    return (await conn.execute(query)).first()


async def payment_by_intent(conn: AsyncConnection, intent_id: str | None) -> Row[Any] | None:
    return await _one(conn, payments, payment_intent_id=intent_id) if intent_id else None


async def payment_by_charge(conn: AsyncConnection, charge_id: str | None) -> Row[Any] | None:
    return await _one(conn, payments, charge_id=charge_id) if charge_id else None


async def payment_by_id(conn: AsyncConnection, payment_id: int | None) -> Row[Any] | None:
    return await _one(conn, payments, id=payment_id) if payment_id else None


async def refund_by_id(conn: AsyncConnection, refund_id: int | None) -> Row[Any] | None:
    return await _one(conn, refunds, id=refund_id) if refund_id else None


async def payout_by_transfer(conn: AsyncConnection, transfer_id: str) -> Row[Any] | None:
    return await _one(conn, payouts, stripe_transfer_id=transfer_id)


async def payout_by_id(conn: AsyncConnection, payout_id: int | None) -> Row[Any] | None:
    return await _one(conn, payouts, id=payout_id) if payout_id else None


async def merchant_by_account(conn: AsyncConnection, account_id: str | None) -> Row[Any] | None:
    return await _one(conn, merchants, stripe_account_id=account_id) if account_id else None


async def merchant_by_id(conn: AsyncConnection, merchant_id: int | None) -> Row[Any] | None:
    return await _one(conn, merchants, id=merchant_id) if merchant_id else None


async def ours(
    conn: AsyncConnection,
    table: Table,
    stripe_column: str,
    obj: StripeObject,
    metadata_key: str,
    *,
    now: datetime,
) -> Row[Any] | None:
    """Our row for a Stripe object: the one holding its id, else the one its metadata names
    (created by us before Stripe's), which then takes the id. A row that already holds
    another Stripe id is never claimed."""
    row = await _one(conn, table, **{stripe_column: obj["id"]})
    if row is not None:
        return row
    named = metadata_int(obj, metadata_key)
    row = await _one(conn, table, id=named) if named else None
    if row is None or getattr(row, stripe_column) is not None:
        return None
    await update_row(conn, table, row.id, now=now, **{stripe_column: obj["id"]})
    return await _one(conn, table, id=row.id)
