"""Applying the platform's Stripe balance: a snapshot, and funds that became available."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sqlalchemy import select

from reconciler.apply.context import ApplyContext
from reconciler.db.tables import payments, platform_balance_snapshots
from reconciler.ledger.payments import release_funds
from reconciler.ledger.platform_balance import PlatformBalance, platform_balance
from reconciler.ledger.rows import Payment
from reconciler.ledger.session import LedgerSession
from reconciler.ledger.transitions import PAYMENT_CAPTURED
from reconciler.reconcile.discrepancies import record_discrepancy, resolve_discrepancy
from reconciler.types import StripeObject


def _totals(entries: list[StripeObject]) -> dict[str, int]:
    totals: dict[str, int] = defaultdict(int)
    for entry in entries:
        totals[entry["currency"]] += int(entry["amount"])
    return totals


async def apply_balance(
    ctx: ApplyContext, balance: StripeObject, *, as_of: datetime, source: str
) -> dict[str, PlatformBalance]:
    """Store what Stripe reports, and release every payment whose funds are available by now.
    Returns the newest snapshot of each currency Stripe reported, this one or a later one."""
    available = _totals(balance.get("available") or [])
    pending = _totals(balance.get("pending") or [])
    now = ctx.clock()
    newest_of: dict[str, PlatformBalance] = {}
    async with ctx.write() as tx:
        for currency in sorted(available.keys() | pending.keys()):
            await tx.execute(
                platform_balance_snapshots.insert().values(
                    currency=currency,
                    available=available.get(currency, 0),
                    pending=pending.get(currency, 0),
                    source=source,
                    taken_at=as_of,
                )
            )
            newest = await platform_balance(tx, currency)
            assert newest is not None  # just stored
            await _follow_negative(ctx, tx, newest)
            newest_of[currency] = newest
        due = await tx.execute(
            select(payments.c.id, payments.c.merchant_id).where(
                payments.c.funds_available.is_(False),
                payments.c.stripe_fee.is_not(None),
                payments.c.available_on <= int(as_of.timestamp()),
                payments.c.status.in_(PAYMENT_CAPTURED),
            )
        )
        released = due.all()
        # Every merchant concerned locked at once, in one order, then their payments read once.
        await tx.lock_merchants(merchant_id for _, merchant_id in released)
        await tx.load(Payment, "id", [payment_id for payment_id, _ in released])
        for payment_id, _ in released:
            await release_funds(tx, payment_id, now=now)
    return newest_of


async def _follow_negative(ctx: ApplyContext, tx: LedgerSession, newest: PlatformBalance) -> None:
    """Stripe takes refunds from the available balance at once, even below zero, and holds
    them (the customer unpaid) until the balance is positive again; no transfer can be made
    meanwhile. A person must add funds, so a negative balance stays open until the newest
    snapshot is not negative (a late, older one changes nothing)."""
    currency, available, as_of = newest.currency, newest.available, newest.as_of
    if not newest.refunds_held:
        await resolve_discrepancy(
            tx,
            kind="negative_platform_balance",
            object_type="balance",
            object_id=currency,
            resolution=f"available {available} {currency} as of {as_of.isoformat()}",
            resolved_by=ctx.detected_by,
            now=ctx.clock(),
        )
        return
    await record_discrepancy(
        tx,
        kind="negative_platform_balance",
        object_type="balance",
        object_id=currency,
        detail=(
            f"the platform's available Stripe balance is {available} {currency}: refunds "
            "wait for funds and no payout can be made until it is topped up"
        ),
        detected_by=ctx.detected_by,
        now=ctx.clock(),
        stripe_value={"available": available, "currency": currency, "as_of": as_of.isoformat()},
    )


async def apply_fetched_balance(ctx: ApplyContext, balance: StripeObject) -> None:
    """A balance just read from Stripe: as of now."""
    await apply_balance(ctx, balance, as_of=ctx.clock(), source="fetched")
