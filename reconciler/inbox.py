"""The webhook inbox: every Stripe event, stored before it is acknowledged, then applied.

A row's life: `received -> processing -> done | failed | dead` (and `ignored` for events of the
other mode). Failed rows come back after an exponential backoff; after `max_attempts` they are
dead, with the error kept, until an operator replays them. A claim is a lease: a row left in
`processing` by a worker that died is claimed again once `locked_until` has passed.

Every function takes `now`: the caller owns the clock, so tests can run each step twice and
move time on by hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, func, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from reconciler.config import Settings
from reconciler.db.bulk import insert_new
from reconciler.db.dialect import is_postgres
from reconciler.db.engine import Database
from reconciler.db.tables import inbox_events
from reconciler.errors import NotFound, ReconcilerError
from reconciler.types import Queryable

RECEIVED, PROCESSING, DONE, FAILED, DEAD, IGNORED = (
    "received",
    "processing",
    "done",
    "failed",
    "dead",
    "ignored",
)
STATUSES = (RECEIVED, PROCESSING, DONE, FAILED, DEAD, IGNORED)
PENDING_STATUSES = (RECEIVED, PROCESSING, FAILED)
REPLAYABLE_STATUSES = (FAILED, DEAD)
_MAX_ERROR = 2000


class ReplayRefused(ReconcilerError):
    """Only failed or dead events can be replayed."""

    code = "replay_refused"


@dataclass(frozen=True)
class InboxPolicy:
    """How often and how patiently the worker retries."""

    max_attempts: int = 8
    backoff_base_seconds: int = 10
    backoff_cap_seconds: int = 3600
    lease_seconds: int = 300

    @classmethod
    def from_settings(cls, settings: Settings) -> InboxPolicy:
        return cls(
            max_attempts=settings.inbox_max_attempts,
            backoff_base_seconds=settings.inbox_backoff_base_seconds,
            backoff_cap_seconds=settings.inbox_backoff_cap_seconds,
            lease_seconds=settings.inbox_lease_seconds,
        )

    def backoff(self, attempts: int) -> timedelta:
        """Delay before the next try after `attempts` failed tries: base * 2^(n-1), capped."""
        exponent = max(attempts - 1, 0)
        # Cap the exponent too, so a large attempt count cannot build a huge integer.
        seconds = self.backoff_base_seconds * 2 ** min(exponent, 32)
        return timedelta(seconds=min(seconds, self.backoff_cap_seconds))


@dataclass(frozen=True)
class NewEvent:
    """A verified delivery, ready to be stored."""

    stripe_event_id: str
    endpoint: str
    event_type: str
    livemode: bool
    account: str | None
    stripe_created: int
    payload: str
    ignored_reason: str | None = None


@dataclass(frozen=True)
class InboxEvent:
    """A claimed row, as the worker hands it to the applier. `payload` is the raw JSON text;
    `attempts` counts this try."""

    id: int
    stripe_event_id: str
    endpoint: str
    event_type: str
    livemode: bool
    account: str | None
    payload: str
    attempts: int


@dataclass(frozen=True)
class InboxSummary:
    """One row for operators (no payload)."""

    id: int
    stripe_event_id: str
    endpoint: str
    event_type: str
    status: str
    attempts: int
    received_at: datetime
    next_attempt_at: datetime
    last_error: str | None


def row_values(event: NewEvent, now: datetime) -> dict[str, object]:
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


async def store_events(
    conn: AsyncConnection, events: Sequence[NewEvent], now: datetime
) -> set[str]:
    """Insert each event unless its Stripe id is already stored; return the ids that were new.

    Deduplication is the unique constraint's job (ON CONFLICT DO NOTHING), never a prior read:
    two deliveries of one event racing each other store exactly one row.
    """
    rows = [row_values(event, now) for event in events]
    return set(await insert_new(conn, inbox_events, rows, unique="stripe_event_id"))


async def store_event(conn: AsyncConnection, event: NewEvent, now: datetime) -> bool:
    """Store one event; True if it was new."""
    return bool(await store_events(conn, [event], now))


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
            .returning(
                columns.id,
                columns.stripe_event_id,
                columns.endpoint,
                columns.event_type,
                columns.livemode,
                columns.account,
                columns.payload,
                columns.attempts,
            )
        )
        events = [InboxEvent(**row._asdict()) for row in claimed]
    order = {row_id: position for position, row_id in enumerate(ids)}
    return sorted(events, key=lambda event: order[event.id])


_EVENT_COLUMNS = (
    inbox_events.c.id,
    inbox_events.c.stripe_event_id,
    inbox_events.c.endpoint,
    inbox_events.c.event_type,
    inbox_events.c.livemode,
    inbox_events.c.account,
    inbox_events.c.payload,
    inbox_events.c.attempts,
)


def _fresh(now: datetime) -> ColumnElement[bool]:
    columns = inbox_events.c
    return and_(columns.status == RECEIVED, columns.attempts == 0, columns.next_attempt_at <= now)


async def peek_fresh(conn: AsyncConnection, now: datetime, *, limit: int) -> list[InboxEvent]:
    """Up to `limit` events received and never tried, oldest first, claiming nothing.

    These are for a batch that takes and finishes its rows inside its own transaction
    (`take_fresh`, `mark_applied`): they go from received to done in one commit, or stay
    received if it fails, and never need a lease. Events tried before (failed, or left in
    processing by a worker that died) are claimed one at a time (`claim_due`).
    """
    query = (
        select(*_EVENT_COLUMNS)
        .where(_fresh(now))
        .order_by(inbox_events.c.next_attempt_at, inbox_events.c.id)
        .limit(limit)
    )
    rows = await conn.execute(query)
    return [InboxEvent(**{**row._asdict(), "attempts": row.attempts + 1}) for row in rows]


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
        columns.id.in_([event.id for event in events])
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
    """Fresh events applied in this transaction: done, at their first try."""
    if not events:
        return
    await conn.execute(
        update(inbox_events)
        .where(inbox_events.c.id.in_([event.id for event in events]))
        .values(status=DONE, attempts=1, locked_until=None, last_error=None, processed_at=now)
    )


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
) -> str:
    """Record the error; retry after a backoff, or declare the row dead after the last try.
    Returns the new status."""
    status = DEAD if event.attempts >= policy.max_attempts else FAILED
    await conn.execute(
        update(inbox_events)
        .where(inbox_events.c.id == event.id, inbox_events.c.status == PROCESSING)
        .values(
            status=status,
            locked_until=None,
            last_error=error[:_MAX_ERROR],
            next_attempt_at=now + policy.backoff(event.attempts),
        )
    )
    return status


async def release(conn: AsyncConnection, ids: Sequence[int], now: datetime) -> None:
    """Give back rows claimed but not started (shutdown); the try does not count."""
    if not ids:
        return
    await conn.execute(
        update(inbox_events)
        .where(inbox_events.c.id.in_(ids), inbox_events.c.status == PROCESSING)
        .values(
            status=RECEIVED,
            locked_until=None,
            next_attempt_at=now,
            attempts=inbox_events.c.attempts - 1,
        )
    )


async def mark_ignored(conn: AsyncConnection, inbox_id: int, reason: str, now: datetime) -> None:
    """Record a row as not ours to apply (e.g. the other mode's event), with the reason."""
    await conn.execute(
        update(inbox_events)
        .where(inbox_events.c.id == inbox_id)
        .values(status=IGNORED, locked_until=None, last_error=reason[:_MAX_ERROR], processed_at=now)
    )


def _by_reference(reference: str) -> ColumnElement[bool]:
    if reference.isdigit():
        return inbox_events.c.id == int(reference)
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
    conn: AsyncConnection, *, status: str | None = None, limit: int = 100
) -> list[InboxSummary]:
    """Newest first, optionally only one status."""
    query = select(*_SUMMARY_COLUMNS).order_by(inbox_events.c.id.desc()).limit(limit)
    if status is not None:
        query = query.where(inbox_events.c.status == status)
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
