"""Fetching and updating one row by id, the same way for every ledger table."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row, Table, select
from sqlalchemy.ext.asyncio import AsyncConnection

from reconciler.db.engine import lock_merchant
from reconciler.errors import NotFound

SINGULAR = {
    "merchants": "merchant",
    "payments": "payment",
    "refunds": "refund",
    "payouts": "payout",
}


async def get_row(conn: AsyncConnection, table: Table, row_id: int) -> Row[Any]:
    row = (await conn.execute(select(table).where(table.c.id == row_id))).first()
    if row is None:
        raise NotFound(f"{SINGULAR.get(table.name, table.name)} {row_id} does not exist")
    return row


async def lock_row(conn: AsyncConnection, table: Table, row_id: int) -> Row[Any]:
    """The row as it is once its merchant is locked: every change to one merchant's money
    (a status, a reversal, a refund's give-back) happens one at a time, decided on fresh data.
    One merchant per transaction, always merchant first, so these locks cannot deadlock."""
    row = await get_row(conn, table, row_id)
    await lock_merchant(conn, row.id if table.name == "merchants" else row.merchant_id)
    return await get_row(conn, table, row_id)


async def update_row(
    conn: AsyncConnection, table: Table, row_id: int, *, now: datetime, **values: Any
) -> None:
    await conn.execute(table.update().where(table.c.id == row_id).values(updated_at=now, **values))
