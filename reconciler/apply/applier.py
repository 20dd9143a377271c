"""What the inbox worker calls: stored events in, ledger changes out."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol

from reconciler.apply.batch import apply_batch
from reconciler.apply.context import ApplyContext, utcnow
from reconciler.apply.events import apply_event, stripe_reads
from reconciler.config import Settings
from reconciler.db.engine import Database
from reconciler.money import FeeSchedule


class StoredEvent(Protocol):
    @property
    def payload(self) -> str: ...


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

    async def apply_batch(self, events: Sequence[StoredEvent]) -> None:
        """All of `events` or none (`BatchSpoiled`, or the error): see `apply.batch`."""
        payloads = [json.loads(event.payload) for event in events]
        await apply_batch(self.context, payloads, apply_event, stripe_reads)
