"""Inbox rows for the inbox's tests: new events, inserted as the webhook would, and what
became of them."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime

from sqlalchemy import select

from reconciler.config import Settings
from reconciler.db.engine import Database
from reconciler.db.tables import inbox_events
from reconciler.inbox import inserts
from reconciler.inbox.events import InboxPolicy, NewEvent

DEFAULT_POLICY = InboxPolicy.from_settings(Settings())
# Few tries and short backoffs, so a test walks a row to its end in a few steps.
POLICY = replace(DEFAULT_POLICY, max_attempts=3, backoff_base_seconds=10, backoff_cap_seconds=25)


def new_event(stripe_id: str = "evt_1", *, ignored: str | None = None) -> NewEvent:
    return NewEvent(
        stripe_event_id=stripe_id,
        endpoint="platform",
        event_type="charge.succeeded",
        livemode=False,
        account=None,
        stripe_created=1_790_000_000,
        payload=json.dumps({"id": stripe_id}),
        ignored_reason=ignored,
    )


async def insert(db: Database, now: datetime, *ids: str) -> None:
    async with db.write() as conn:
        await inserts.insert_events(conn, [new_event(i) for i in ids], now)


async def statuses(db: Database) -> dict[str, tuple[str, int]]:
    async with db.read() as conn:
        rows = await conn.execute(
            select(inbox_events.c.stripe_event_id, inbox_events.c.status, inbox_events.c.attempts)
        )
        return {row[0]: (row[1], row[2]) for row in rows}
