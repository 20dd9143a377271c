"""What the inbox worker calls: stored events in, ledger changes out."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol, TypeVar

from reconciler.apply.batch import apply_together, read_stripe_first
from reconciler.apply.context import ApplyContext
from reconciler.apply.events import apply_event, stripe_reads
from reconciler.config import Settings
from reconciler.db.engine import Database
from reconciler.ledger.session import LedgerSession, ledger_session
from reconciler.money import FeeSchedule
from reconciler.types import utcnow


class StoredEvent(Protocol):
    @property
    def payload(self) -> str: ...


Event = TypeVar("Event", bound=StoredEvent)


class Rows(Protocol[Event]):
    """How the caller's rows are taken and finished in the batch's transaction (the inbox
    worker's `BatchRows`)."""

    async def take(self, tx: LedgerSession, events: Sequence[Event]) -> list[Event]: ...
    async def finish(self, tx: LedgerSession, events: Sequence[Event]) -> None: ...


class EventApplier:
    """Applies stored events, one (`__call__`) or a batch in one transaction (`apply_batch`).
    Idempotent: applying an event again changes nothing, so a crash between applying and
    marking done is harmless."""

    def __init__(
        self,
        database: Database,
        stripe: Any,
        settings: Settings,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.context = ApplyContext(
            db=database,
            stripe=stripe,
            fees=FeeSchedule(settings.platform_fee_percent, settings.platform_fee_fixed),
            detected_by="webhook",
            clock=clock,
        )

    async def __call__(self, event: StoredEvent) -> None:
        await apply_event(self.context, json.loads(event.payload))

    async def apply_batch(self, events: Sequence[Event], rows: Rows[Event]) -> list[Event]:
        """Apply, in one transaction, the events `rows.take` gives there, and finish them;
        return them. All or nothing (`BatchSpoiled`, or the error): see `apply.batch`."""
        payloads = [json.loads(event.payload) for event in events]
        stripe = await read_stripe_first(self.context, payloads, stripe_reads)
        async with ledger_session(self.context.db) as tx:
            taken = await rows.take(tx, events)
            chosen = {id(event) for event in taken}
            mine = [
                payload
                for event, payload in zip(events, payloads, strict=True)
                if id(event) in chosen
            ]
            await apply_together(self.context, tx, stripe, mine, apply_event)
            await rows.finish(tx, taken)
        return taken
