"""What every apply function is given: the database, a way to read Stripe, fees, a clock.

Apply functions open their transactions through the context (`write()`, `read()`). Applying
one event, each is a transaction of its own. Applying a batch (`in_batch`), every one of them
is the batch's single transaction, and an error passing through any of them spoils the batch:
the caller must throw it away (roll back) rather than commit half an event.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Protocol

from reconciler.db.engine import Database
from reconciler.ledger.session import LedgerSession, ledger_reader, ledger_session
from reconciler.money import FeeSchedule
from reconciler.types import Clock, StripeObject, utcnow


class StripeReader(Protocol):
    """The gateway's read side, as the apply functions use it."""

    async def payment_intent(self, intent_id: str) -> StripeObject: ...
    async def charge(self, charge_id: str) -> StripeObject:
        """With its balance transaction expanded."""
        ...

    async def refund(self, refund_id: str) -> StripeObject:
        """With its balance transaction expanded."""
        ...

    async def refunds_for_charge(self, charge_id: str) -> list[StripeObject]: ...
    async def transfer(self, transfer_id: str) -> StripeObject: ...
    async def transfer_reversals(self, transfer_id: str) -> list[StripeObject]: ...
    async def account(self, account_id: str) -> StripeObject: ...
    async def balance(self) -> StripeObject: ...


# A read applying will make: a fresh copy of the object of this kind and id, or one of
# these lists (every refund of a charge, every reversal of a transfer).
StripeRead = tuple[str, str]
CHARGE_REFUNDS = "charge.refunds"
TRANSFER_REVERSALS = "transfer.reversals"


@dataclass
class SharedTransaction:
    """The one transaction a batch is applied in, and whether an error has spoiled it."""

    session: LedgerSession
    spoiled: bool = False


@dataclass(frozen=True)
class ApplyContext:
    db: Database
    stripe: StripeReader
    fees: FeeSchedule
    # Who noticed, for discrepancies: "webhook", "poller", "reconcile:<run id>"...
    detected_by: str = "webhook"
    clock: Clock = utcnow
    shared: SharedTransaction | None = field(default=None, compare=False)

    def in_batch(self, session: LedgerSession, stripe: StripeReader) -> ApplyContext:
        """This context with every transaction being `session`, reading Stripe via `stripe`."""
        return replace(self, shared=SharedTransaction(session), stripe=stripe)

    @property
    def spoiled(self) -> bool:
        """In a batch: an error has passed through its transaction."""
        return self.shared is not None and self.shared.spoiled

    def write(self) -> AbstractAsyncContextManager[LedgerSession]:
        """A transaction for ledger changes."""
        if self.shared is None:
            return ledger_session(self.db)
        return _InShared(self.shared)

    def read(self) -> AbstractAsyncContextManager[LedgerSession]:
        """A transaction for looking rows up."""
        if self.shared is None:
            return ledger_reader(self.db)
        return _InShared(self.shared)


class _InShared:
    """The batch's transaction, entered by one apply step: an error passing through it means
    part of this event's changes may be held, so the batch must not commit. (A class, not a
    generator: a batch enters it several times per event.)"""

    __slots__ = ("_shared",)

    def __init__(self, shared: SharedTransaction) -> None:
        self._shared = shared

    async def __aenter__(self) -> LedgerSession:
        return self._shared.session

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if kind is not None:
            self._shared.spoiled = True


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
