"""The platform's Stripe balance as the ledger last heard it from Stripe.

Stripe's own figures, never ours: `available` is what transfers and refunds may spend, and it
can be negative (Stripe takes a refund from it at once, even below zero, and holds the refund
until the balance is positive again). The newest snapshot by the time Stripe reported it wins,
so a late `balance.available` cannot bring back an older figure.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from reconciler.db.tables import platform_balance_snapshots as snapshots
from reconciler.types import Queryable


@dataclass(frozen=True, slots=True)
class PlatformBalance:
    currency: str
    available: int
    pending: int
    as_of: datetime
    source: str

    @property
    def refunds_held(self) -> bool:
        """Stripe is holding refunds for want of funds (and refusing transfers)."""
        return self.available < 0


async def platform_balance(conn: Queryable, currency: str) -> PlatformBalance | None:
    """The newest snapshot of the platform's balance in `currency`, or None before any."""
    query = (
        select(
            snapshots.c.currency,
            snapshots.c.available,
            snapshots.c.pending,
            snapshots.c.taken_at,
            snapshots.c.source,
        )
        .where(snapshots.c.currency == currency)
        .order_by(snapshots.c.taken_at.desc(), snapshots.c.id.desc())
        .limit(1)
    )
    row = (await conn.execute(query)).first()
    if row is None:
        return None
    return PlatformBalance(
        currency=row.currency,
        available=int(row.available),
        pending=int(row.pending),
        as_of=row.taken_at,
        source=row.source,
    )
