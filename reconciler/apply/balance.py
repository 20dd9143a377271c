"""Applying the platform's Stripe balance: a snapshot, and funds that became available."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sqlalchemy import select

from reconciler.apply.context import ApplyContext
from reconciler.db.tables import payments, platform_balance_snapshots
from reconciler.gateway import StripeObject
from reconciler.ledger.payments import release_funds
from reconciler.ledger.transitions import PAYMENT_CAPTURED


def _totals(entries: list[StripeObject]) -> dict[str, int]:
    totals: dict[str, int] = defaultdict(int)
    for entry in entries:
        totals[entry["currency"]] += int(entry["amount"])
    return totals


async def apply_balance(
    ctx: ApplyContext, balance: StripeObject, *, as_of: datetime, source: str
) -> None:
    """Store what Stripe reports, and release every payment whose funds are available by now."""
    available = _totals(balance.get("available") or [])
    pending = _totals(balance.get("pending") or [])
    now = ctx.clock()
    async with ctx.db.write() as conn:
        for currency in sorted(available.keys() | pending.keys()):
            await conn.execute(
                platform_balance_snapshots.insert().values(
                    currency=currency,
                    available=available.get(currency, 0),
                    pending=pending.get(currency, 0),
                    source=source,
                    taken_at=as_of,
                )
            )
        due = await conn.execute(
            select(payments.c.id).where(
                payments.c.funds_available.is_(False),
                payments.c.stripe_fee.is_not(None),
                payments.c.available_on <= int(as_of.timestamp()),
                payments.c.status.in_(PAYMENT_CAPTURED),
            )
        )
        for (payment_id,) in due.all():
            await release_funds(conn, payment_id, now=now)
