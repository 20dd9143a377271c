"""Claims and leases: how the worker takes rows tried before (or any row, when no batch
runs), and every change it makes to a row it claimed.

A claim counts an attempt and leases the row until `locked_until`. The claim is named by the
row id and its attempt count (`InboxEvent.id`, `.attempts`): a worker whose lease ran out and
whose row was claimed again holds a claim that no longer matches, and changes nothing.

Every function takes `now`: the caller owns the clock, so tests can run each step twice and
move time on by hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from reconciler.db.dialect import is_postgres
from reconciler.db.engine import Database
from reconciler.db.tables import inbox_events
from reconciler.inbox._columns import EVENT_COLUMNS
from reconciler.inbox.events import (
    DEAD,
    DONE,
    FAILED,
    IGNORED,
    MAX_ERROR,
    PROCESSING,
    RECEIVED,
    InboxEvent,
    InboxPolicy,
)


def _due(now: datetime) -> ColumnElement[bool]:
    columns = inbox_events.c
    return or_(
        and_(columns.status.in_((RECEIVED, FAILED)), columns.next_attempt_at <= now),
        and_(columns.status == PROCESSING, columns.locked_until <= now),
    )


async def claim_due(
    database: Database,
    now: datetime,
    *,
    limit: int,
    policy: InboxPolicy,
    tried_only: bool = False,
) -> list[InboxEvent]:
    """Take up to `limit` due rows for this worker, leasing them for `policy.lease_seconds`;
    with `tried_only`, only rows tried before (those never tried go in batches instead).

    PostgreSQL skips rows another instance holds (FOR UPDATE SKIP LOCKED), so instances share
    the work; SQLite takes the database's write lock (BEGIN IMMEDIATE): one worker at a time.
    A row whose lease ran out `max_attempts` times (its worker keeps dying) is declared dead
    instead of being claimed again.
    """
    columns = inbox_events.c
    query = (
        select(columns.id, columns.status, columns.attempts)
        .where(_due(now))
        .order_by(columns.next_attempt_at, columns.id)
        .limit(limit)
    )
    if tried_only:
        query = query.where(or_(columns.attempts > 0, columns.status != RECEIVED))
    async with database.write() as conn:
        if is_postgres(database):
            query = query.with_for_update(skip_locked=True)
        rows = (await conn.execute(query)).all()
        lost = [
            row.id
            for row in rows
            if row.status == PROCESSING and row.attempts >= policy.max_attempts
        ]
        if lost:
            await conn.execute(
                update(inbox_events)
                .where(columns.id.in_(lost))
                .values(
                    status=DEAD,
                    locked_until=None,
                    last_error="the worker applying this event stopped before finishing "
                    f"({policy.max_attempts} times)",
                )
            )
        ids = [row.id for row in rows if row.id not in set(lost)]
        if not ids:
            return []
        claimed = await conn.execute(
            update(inbox_events)
            .where(columns.id.in_(ids))
            .values(
                status=PROCESSING,
                attempts=columns.attempts + 1,
                locked_until=now + timedelta(seconds=policy.lease_seconds),
            )
            .returning(*EVENT_COLUMNS)
        )
        events = [InboxEvent(**row._asdict()) for row in claimed]
    order = {row_id: position for position, row_id in enumerate(ids)}
    return sorted(events, key=lambda event: order[event.id])


def _still_ours(events: Sequence[InboxEvent]) -> ColumnElement[bool]:
    """Rows whose claim is still the one these events came from: every claim counts an
    attempt, so a row reclaimed by another worker after our lease ran out no longer matches."""
    claims = [(event.id, event.attempts) for event in events]
    return and_(
        inbox_events.c.status == PROCESSING,
        tuple_(inbox_events.c.id, inbox_events.c.attempts).in_(claims),
    )


async def mark_done(conn: AsyncConnection, events: Sequence[InboxEvent], now: datetime) -> None:
    """The applier finished these rows (those still under this worker's claim)."""
    if not events:
        return
    await conn.execute(
        update(inbox_events)
        .where(_still_ours(events))
        .values(status=DONE, locked_until=None, last_error=None, processed_at=now)
    )


async def renew_lease(
    conn: AsyncConnection, events: Sequence[InboxEvent], now: datetime, policy: InboxPolicy
) -> None:
    """Keep rows still waiting in a long batch from being reclaimed by another instance."""
    if not events:
        return
    await conn.execute(
        update(inbox_events)
        .where(_still_ours(events))
        .values(locked_until=now + timedelta(seconds=policy.lease_seconds))
    )


async def mark_failed(
    conn: AsyncConnection, event: InboxEvent, error: str, now: datetime, policy: InboxPolicy
) -> str | None:
    """Record the error; retry after a backoff, or declare the row dead after the last try.
    Returns the new status, or None if the claim was lost (the row is another worker's now)."""
    status = DEAD if event.attempts >= policy.max_attempts else FAILED
    result = await conn.execute(
        update(inbox_events)
        .where(_still_ours([event]))
        .values(
            status=status,
            locked_until=None,
            last_error=error[:MAX_ERROR],
            next_attempt_at=now + policy.backoff(event.attempts),
        )
    )
    return status if result.rowcount else None


async def release(conn: AsyncConnection, events: Sequence[InboxEvent], now: datetime) -> None:
    """Give back rows claimed but not started (shutdown); the try does not count."""
    if not events:
        return
    await conn.execute(
        update(inbox_events)
        .where(_still_ours(events))
        .values(
            status=RECEIVED,
            locked_until=None,
            next_attempt_at=now,
            attempts=inbox_events.c.attempts - 1,
        )
    )


async def mark_ignored(
    conn: AsyncConnection, event: InboxEvent, reason: str, now: datetime
) -> None:
    """Record a claimed row as not ours to apply (e.g. the other mode's event), with the
    reason."""
    await conn.execute(
        update(inbox_events)
        .where(_still_ours([event]))
        .values(status=IGNORED, locked_until=None, last_error=reason[:MAX_ERROR], processed_at=now)
    )
