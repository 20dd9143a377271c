"""Inserting new events as inbox rows, each Stripe event once."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from reconciler.db.bulk import insert_new
from reconciler.db.tables import inbox_events
from reconciler.inbox.events import IGNORED, RECEIVED, NewEvent

UNIQUE_COLUMN = "stripe_event_id"


def row_values(event: NewEvent, now: datetime) -> dict[str, object]:
    """The row a new event becomes, received at `now` (or already ignored, with the reason)."""
    return {
        "stripe_event_id": event.stripe_event_id,
        "endpoint": event.endpoint,
        "event_type": event.event_type,
        "livemode": event.livemode,
        "account": event.account,
        "stripe_created": event.stripe_created,
        "payload": event.payload,
        "status": IGNORED if event.ignored_reason else RECEIVED,
        "attempts": 0,
        "next_attempt_at": now,
        "locked_until": None,
        "last_error": event.ignored_reason,
        "received_at": now,
        "processed_at": now if event.ignored_reason else None,
    }


async def insert_events(
    conn: AsyncConnection, events: Sequence[NewEvent], now: datetime
) -> set[str]:
    """Insert each event unless its Stripe id is already there; return the ids that were new.

    Deduplication is the unique constraint's job (ON CONFLICT DO NOTHING), never a prior read:
    two deliveries of one event racing each other make exactly one row.
    """
    rows = [row_values(event, now) for event in events]
    return set(await insert_new(conn, inbox_events, rows, unique=UNIQUE_COLUMN))


async def insert_event(conn: AsyncConnection, event: NewEvent, now: datetime) -> bool:
    """Insert one event; True if it was new."""
    return bool(await insert_events(conn, [event], now))
