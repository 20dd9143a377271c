"""What every apply function is given: the database, a way to read Stripe, fees, a clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from reconciler.db.engine import Database
from reconciler.gateway import StripeObject
from reconciler.money import FeeSchedule


class StripeReader(Protocol):
    """The gateway's read side, as the apply functions use it."""

    async def charge(self, charge_id: str) -> StripeObject: ...
    async def payment_intent(self, intent_id: str) -> StripeObject: ...
    async def refunds_for_charge(self, charge_id: str) -> list[StripeObject]: ...
    async def account(self, account_id: str) -> StripeObject: ...
    async def retrieve(self, object_type: str, object_id: str) -> StripeObject: ...


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ApplyContext:
    db: Database
    stripe: StripeReader
    fees: FeeSchedule
    # Who noticed, for discrepancies: "webhook", "poller", "reconcile:<run id>"...
    detected_by: str = "webhook"
    clock: Callable[[], datetime] = utcnow


def stripe_id(value: object) -> str | None:
    """An expandable field's id, whether Stripe sent the id or the expanded object."""
    if isinstance(value, dict):
        found = value.get("id")
        return found if isinstance(found, str) else None
    return value if isinstance(value, str) else None


def metadata_int(obj: StripeObject, key: str) -> int | None:
    """Our id from an object's metadata, or None if absent or not a whole number."""
    value = (obj.get("metadata") or {}).get(key)
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None
