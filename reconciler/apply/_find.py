"""Finding our rows from Stripe ids."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, Table, select
from sqlalchemy.ext.asyncio import AsyncConnection

from reconciler.db.tables import merchants, payments, payouts, refunds


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


async def refund_by_stripe_id(conn: AsyncConnection, refund_id: str) -> Row[Any] | None:
    return await _one(conn, refunds, stripe_refund_id=refund_id)


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
