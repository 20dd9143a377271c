"""Type aliases shared across the core, so no package imports another just for a type."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy.engine import CursorResult, Dialect
from sqlalchemy.sql import Executable

# A Stripe object as the SDK's `to_dict()` or a webhook's `data.object` gives it.
StripeObject = dict[str, Any]

# Where "now" comes from: the wall clock in the service, a fixed or moving one in tests.
Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


class Queryable(Protocol):
    """What a read may run on: a plain connection, or a ledger session (which writes what it
    holds first)."""

    @property
    def dialect(self) -> Dialect: ...

    async def execute(
        self, statement: Executable, parameters: Any = None
    ) -> CursorResult[*tuple[Any, ...]]: ...
