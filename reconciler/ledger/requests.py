"""The API request a payment, payout or refund was made for, so a repeat never makes another."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import select

from reconciler.ledger.rows import Payment, Payout, Refund
from reconciler.ledger.session import LedgerSession

Made = TypeVar("Made", Payment, Payout, Refund)


@dataclass(frozen=True, slots=True)
class RequestKey:
    """Who asked (`scope`), their Idempotency-Key, and a digest of what they asked, so a
    repeat is told from a different request under the same key."""

    scope: str
    key: str
    digest: str

    def columns(self) -> dict[str, str]:
        return {"request_scope": self.scope, "request_key": self.key, "request_digest": self.digest}


NO_REQUEST = {"request_scope": None, "request_key": None, "request_digest": None}


async def made_for(tx: LedgerSession, kind: type[Made], request: RequestKey) -> Made | None:
    """The row this caller's Idempotency-Key already made, if any."""
    table = kind.table
    found = await tx.execute(
        select(table.c.id).where(
            table.c.request_scope == request.scope, table.c.request_key == request.key
        )
    )
    row_id = found.scalar_one_or_none()
    return None if row_id is None else await tx.get(kind, int(row_id))
