"""What operators ask of the inbox: one row, a listing, a replay, the backlog."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, false, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from reconciler.db.tables import inbox_events
from reconciler.errors import NotFound, ReconcilerError
from reconciler.inbox.events import (
    PENDING_STATUSES,
    RECEIVED,
    REPLAYABLE_STATUSES,
    InboxSummary,
)


class ReplayRefused(ReconcilerError):
    """Only failed or dead events can be replayed."""

    code = "replay_refused"


# Row ids are 64-bit: a longer number names no row (and the database could not be asked).
_MAX_ID = 2**63 - 1


def _by_reference(reference: str) -> ColumnElement[bool]:
    # ASCII only: str.isdigit() says yes to "²", which int() refuses.
    if reference.isascii() and reference.isdigit():
        row_id = int(reference)
        return inbox_events.c.id == row_id if row_id <= _MAX_ID else false()
    return inbox_events.c.stripe_event_id == reference


async def replay(conn: AsyncConnection, reference: str, now: datetime) -> InboxSummary:
    """Put a failed or dead event back in the queue, due now, with a fresh set of attempts.
    `reference` is the Stripe event id (`evt_...`) or the inbox row id."""
    current = await find(conn, reference)
    if current.status not in REPLAYABLE_STATUSES:
        raise ReplayRefused(
            f"event {current.stripe_event_id} is {current.status}; only failed or dead events "
            "can be replayed"
        )
    await conn.execute(
        update(inbox_events)
        .where(inbox_events.c.id == current.id, inbox_events.c.status.in_(REPLAYABLE_STATUSES))
        .values(status=RECEIVED, attempts=0, next_attempt_at=now, locked_until=None)
    )
    return await find(conn, reference)


_SUMMARY_COLUMNS = (
    inbox_events.c.id,
    inbox_events.c.stripe_event_id,
    inbox_events.c.endpoint,
    inbox_events.c.event_type,
    inbox_events.c.status,
    inbox_events.c.attempts,
    inbox_events.c.received_at,
    inbox_events.c.next_attempt_at,
    inbox_events.c.last_error,
)


async def find(conn: AsyncConnection, reference: str) -> InboxSummary:
    """One row by Stripe event id or inbox id; `NotFound` if there is none."""
    row = (await conn.execute(select(*_SUMMARY_COLUMNS).where(_by_reference(reference)))).first()
    if row is None:
        raise NotFound(f"no inbox event {reference!r}")
    return InboxSummary(**row._asdict())


async def list_events(
    conn: AsyncConnection,
    *,
    status: str | None = None,
    limit: int = 100,
    starting_after: int | None = None,
) -> list[InboxSummary]:
    """Newest first, optionally only one status; after `starting_after` (a row id) for the
    next page."""
    query = select(*_SUMMARY_COLUMNS).order_by(inbox_events.c.id.desc()).limit(limit)
    if status is not None:
        query = query.where(inbox_events.c.status == status)
    if starting_after is not None:
        query = query.where(inbox_events.c.id < starting_after)
    return [InboxSummary(**row._asdict()) for row in await conn.execute(query)]


@dataclass(frozen=True)
class Backlog:
    depth: int
    oldest_age_seconds: float


async def backlog(conn: AsyncConnection, now: datetime) -> Backlog:
    """How many rows still wait to be applied, and how long the oldest has waited."""
    row = (
        await conn.execute(
            select(func.count(), func.min(inbox_events.c.received_at)).where(
                inbox_events.c.status.in_(PENDING_STATUSES)
            )
        )
    ).one()
    depth, oldest = row
    if oldest is None:
        return Backlog(depth=0, oldest_age_seconds=0.0)
    return Backlog(depth=int(depth), oldest_age_seconds=max((now - oldest).total_seconds(), 0.0))
