"""Rows never tried, taken by a batch inside its own transaction: no lease, no claim.

They go from received to done in one commit (`peek_fresh`, then in the transaction
`take_fresh` and `mark_applied`), or stay received if it fails. Rows tried before (failed, or
left in processing by a worker that died) are claimed one at a time (`claims`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, and_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from reconciler.db.dialect import is_postgres, one_of
from reconciler.db.tables import inbox_events
from reconciler.inbox._columns import EVENT_COLUMNS
from reconciler.inbox.events import DONE, RECEIVED, InboxEvent
from reconciler.types import Queryable


def _fresh(now: datetime) -> ColumnElement[bool]:
    columns = inbox_events.c
    return and_(columns.status == RECEIVED, columns.attempts == 0, columns.next_attempt_at <= now)


async def peek_fresh(conn: AsyncConnection, now: datetime, *, limit: int) -> list[InboxEvent]:
    """Up to `limit` events received and never tried, oldest first, claiming nothing; each
    as it will be at its first try."""
    query = (
        select(*EVENT_COLUMNS)
        .where(_fresh(now))
        .order_by(inbox_events.c.next_attempt_at, inbox_events.c.id)
        .limit(limit)
    )
    rows = await conn.execute(query)
    return [
        InboxEvent(
            id=row.id,
            stripe_event_id=row.stripe_event_id,
            endpoint=row.endpoint,
            event_type=row.event_type,
            livemode=row.livemode,
            account=row.account,
            payload=row.payload,
            attempts=row.attempts + 1,
        )
        for row in rows
    ]


async def take_fresh(
    conn: Queryable, events: Sequence[InboxEvent], now: datetime
) -> list[InboxEvent]:
    """Those of `events` still fresh, held by the caller's transaction until it ends:
    PostgreSQL locks them, skipping rows another instance holds; SQLite's write lock already
    keeps every other writer out."""
    columns = inbox_events.c
    # By id alone, so the primary key finds them (a condition on status could lead the
    # planner down the status index, through every row waiting); freshness is checked here.
    query = select(columns.id, columns.status, columns.attempts, columns.next_attempt_at).where(
        one_of(columns.id, [event.id for event in events], conn.dialect)
    )
    if is_postgres(conn):
        query = query.with_for_update(skip_locked=True)
    taken = {
        row.id
        for row in await conn.execute(query)
        if row.status == RECEIVED and row.attempts == 0 and row.next_attempt_at <= now
    }
    return [event for event in events if event.id in taken]


async def mark_applied(conn: Queryable, events: Sequence[InboxEvent], now: datetime) -> None:
    """Events taken and applied in this transaction: done, at their first try. The
    transaction holding them (`take_fresh`) is what keeps every other worker off them."""
    if not events:
        return
    await conn.execute(
        update(inbox_events)
        .where(one_of(inbox_events.c.id, [event.id for event in events], conn.dialect))
        .values(status=DONE, attempts=1, locked_until=None, last_error=None, processed_at=now)
    )
