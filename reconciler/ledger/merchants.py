"""Merchant accounts and the state of their Stripe Connect (Express) account."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from reconciler.ledger.rows import Merchant
from reconciler.ledger.session import LedgerSession

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
    tx: LedgerSession, *, name: str, now: datetime, stripe_account_id: str | None = None
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
    merchant = await tx.insert(Merchant, **values)
    return merchant.id


async def get_merchant(tx: LedgerSession, merchant_id: int) -> Merchant:
    return await tx.get(Merchant, merchant_id)


async def set_connect_state(
    tx: LedgerSession,
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
    merchant = await tx.lock_merchant(merchant_id)
    if merchant.connect_status == "deauthorized":
        return
    tx.update(
        merchant,
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


async def mark_deauthorized(tx: LedgerSession, merchant_id: int, *, now: datetime) -> None:
    """The merchant disconnected their account from the platform."""
    merchant = await tx.lock_merchant(merchant_id)
    tx.update(
        merchant,
        now=now,
        connect_status="deauthorized",
        charges_enabled=False,
        payouts_enabled=False,
    )
