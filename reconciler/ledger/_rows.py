"""Fetching and updating one row by id, the same way for every ledger table."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row, Table, select
from sqlalchemy.ext.asyncio import AsyncConnection

from reconciler.db.tables import merchants
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

    PostgreSQL: the owning merchant's row is taken `FOR UPDATE` first (one merchant per
    transaction, always merchant first, so these locks cannot deadlock). SQLite: the
    `BEGIN IMMEDIATE` of `Database.write` already holds the only write lock.
    """
    if conn.dialect.name != "sqlite":
        owner = table.c.id if table.name == "merchants" else table.c.merchant_id
        merchant_id = select(owner).where(table.c.id == row_id).scalar_subquery()
        await conn.execute(
            select(merchants.c.id).where(merchants.c.id == merchant_id).with_for_update()
        )
    return await get_row(conn, table, row_id)


async def update_row(
    conn: AsyncConnection, table: Table, row_id: int, *, now: datetime, **values: Any
) -> None:
    await conn.execute(table.update().where(table.c.id == row_id).values(updated_at=now, **values))
