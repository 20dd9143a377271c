"""Merchant accounts and the state of their Stripe Connect (Express) account."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from reconciler.db.tables import merchants
from reconciler.ledger._rows import get_row, lock_row, update_row

CONNECT_STATUSES = ("not_connected", "onboarding", "enabled", "restricted", "deauthorized")


def connect_status(
    *,
    stripe_account_id: str | None,
    charges_enabled: bool,
    payouts_enabled: bool,
    details_submitted: bool,
) -> str:
    """Summarise Stripe's account flags into the one status operators read."""
    if stripe_account_id is None:
        return "not_connected"
    if charges_enabled and payouts_enabled:
        return "enabled"
    if not details_submitted:
        return "onboarding"
    return "restricted"


async def create_merchant(
    conn: AsyncConnection, *, name: str, now: datetime, stripe_account_id: str | None = None
) -> int:
    values: dict[str, Any] = {
        "name": name,
        "stripe_account_id": stripe_account_id,
        "charges_enabled": False,
        "payouts_enabled": False,
        "details_submitted": False,
        "requirements_due": [],
        "created_at": now,
        "updated_at": now,
    }
    values["connect_status"] = connect_status(
        stripe_account_id=stripe_account_id,
        charges_enabled=False,
        payouts_enabled=False,
        details_submitted=False,
    )
    result = await conn.execute(merchants.insert().values(values).returning(merchants.c.id))
    return int(result.scalar_one())


async def get_merchant(conn: AsyncConnection, merchant_id: int) -> Row[Any]:
    return await get_row(conn, merchants, merchant_id)


async def set_connect_state(
    conn: AsyncConnection,
    merchant_id: int,
    *,
    now: datetime,
    charges_enabled: bool,
    payouts_enabled: bool,
    details_submitted: bool,
    requirements_due: list[str],
) -> None:
    """Record what Stripe says of the merchant's connected account. A merchant who
    disconnected stays disconnected: a late account snapshot cannot turn payouts back on."""
    merchant = await lock_row(conn, merchants, merchant_id)
    if merchant.connect_status == "deauthorized":
        return
    await update_row(
        conn,
        merchants,
        merchant_id,
        now=now,
        charges_enabled=charges_enabled,
        payouts_enabled=payouts_enabled,
        details_submitted=details_submitted,
        requirements_due=sorted(requirements_due),
        connect_status=connect_status(
            stripe_account_id=merchant.stripe_account_id,
            charges_enabled=charges_enabled,
            payouts_enabled=payouts_enabled,
            details_submitted=details_submitted,
        ),
    )


async def mark_deauthorized(conn: AsyncConnection, merchant_id: int, *, now: datetime) -> None:
    """The merchant disconnected their account from the platform."""
    await update_row(
        conn,
        merchants,
        merchant_id,
        now=now,
        connect_status="deauthorized",
        charges_enabled=False,
        payouts_enabled=False,
    )
