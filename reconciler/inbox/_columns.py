"""The columns an `InboxEvent` is read from, wherever a row is handed to the worker."""

from __future__ import annotations

from reconciler.db.tables import inbox_events

EVENT_COLUMNS = (
    inbox_events.c.id,
    inbox_events.c.stripe_event_id,
    inbox_events.c.endpoint,
    inbox_events.c.event_type,
    inbox_events.c.livemode,
    inbox_events.c.account,
    inbox_events.c.payload,
    inbox_events.c.attempts,
)
