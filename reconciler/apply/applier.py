"""What the inbox worker calls: stored events in, ledger changes out."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Protocol

import msgspec
from sqlalchemy.ext.asyncio import AsyncConnection

from reconciler.apply.batch import Foreseen, Payload, apply_together, read_stripe_first
from reconciler.apply.context import ApplyContext, StripeReader
from reconciler.apply.events import apply_event, stripe_reads
from reconciler.config import Settings
from reconciler.db.engine import Database
from reconciler.ledger.session import LedgerSession
from reconciler.money import FeeSchedule
from reconciler.types import Clock, utcnow


class StoredEvent(Protocol):
    """An event as the inbox keeps it: its row id and the raw JSON it arrived as. Read-only,
    so a frozen row (the inbox's `InboxEvent`) is one."""

    @property
    def id(self) -> int: ...

    @property
    def payload(self) -> str: ...


# The stored body whole, as Python's json would give it (dicts, lists, str, int, float,
# bool, None), in about a quarter of json's time: a 2 KB event is decoded once per apply.
_decode = msgspec.json.Decoder(dict[str, Any]).decode


def _decoded(event: StoredEvent) -> Payload:
    try:
        return _decode(event.payload)
    except (msgspec.DecodeError, UnicodeEncodeError):
        # What msgspec refuses and json reads: a number past a float's range (read as inf),
        # NaN and Infinity, a lone surrogate (escaped or not). The intake refuses them now;
        # events stored before it did, or replayed, are still read as they were.
        payload: Payload = json.loads(event.payload)
        return payload


class PreparedEvents:
    """A batch whose Stripe reads are made: applied, all of it or any part, in the caller's
    transaction."""

    def __init__(
        self, context: ApplyContext, foreseen: Foreseen, payloads: dict[int, Payload]
    ) -> None:
        self._context = context
        self._foreseen = foreseen
        self._payloads = payloads

    async def apply(self, conn: AsyncConnection, events: Sequence[StoredEvent]) -> None:
        """Apply `events` (some or all of those prepared) in `conn`'s transaction, every
        change written before returning. All or nothing: if it raises (`BatchSpoiled`, or
        the error), the caller must roll back; see `apply.batch`."""
        tx = LedgerSession(conn)
        payloads = [self._payloads[event.id] for event in events]
        await apply_together(self._context, tx, self._foreseen, payloads, apply_event)
        await tx.flush()


class EventApplier:
    """Applies stored events, one (`__call__`, in transactions of its own) or a batch
    (`prepare`, then `apply` in the caller's transaction). Idempotent: applying an event
    again changes nothing, so a crash between applying and marking done is harmless."""

    def __init__(
        self,
        database: Database,
        stripe: StripeReader,
        settings: Settings,
        clock: Clock = utcnow,
    ) -> None:
        self.context = ApplyContext(
            db=database,
            stripe=stripe,
            fees=FeeSchedule(settings.platform_fee_percent, settings.platform_fee_fixed),
            detected_by="webhook",
            clock=clock,
        )

    async def __call__(self, event: StoredEvent) -> None:
        await apply_event(self.context, _decoded(event))

    async def prepare(self, events: Sequence[StoredEvent]) -> PreparedEvents:
        """Make the Stripe reads applying `events` will need, outside any transaction."""
        payloads = {event.id: _decoded(event) for event in events}
        foreseen = await read_stripe_first(self.context, list(payloads.values()), stripe_reads)
        return PreparedEvents(self.context, foreseen, payloads)
