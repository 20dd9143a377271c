"""Where the events catch-up stands, per source (`platform`, or a connected account's id).

A cursor holds the newest event the catch-up has seen (its `created` second and id) and when
a listing last reached the present (`updated_at`): the first says where the next listing
starts (less the overlap) and the event it walks on from, the second how much of Stripe's 30
days is still unread.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, select

from reconciler.db.dialect import insert_for
from reconciler.db.tables import event_cursors
from reconciler.types import Queryable


@dataclass(frozen=True)
class EventCursor:
    source: str
    created: int
    event_id: str | None
    updated_at: datetime


async def read_cursor(conn: Queryable, source: str) -> EventCursor | None:
    columns = event_cursors.c
    row = (await conn.execute(select(event_cursors).where(columns.source == source))).first()
    return None if row is None else EventCursor(**row._asdict())


async def advance_cursor(
    conn: Queryable,
    source: str,
    *,
    created: int,
    event_id: str | None,
    now: datetime,
    read_to_now: bool = True,
) -> None:
    """Record events read up to (`created`, `event_id`), and with `read_to_now` that the
    listing reached the present (`updated_at`); a listing part way through its pages moves
    only the position. One atomic upsert that never moves the cursor back: two runs
    finishing in either order leave the newer of their two positions."""
    statement = insert_for(conn, event_cursors).values(
        source=source, created=created, event_id=event_id, updated_at=now
    )
    seen = statement.excluded
    # Of one second, the event read last is the one Stripe lists first: the place to go on from.
    newer = seen.created >= event_cursors.c.created
    await conn.execute(
        statement.on_conflict_do_update(
            index_elements=["source"],
            set_={
                "created": case((newer, seen.created), else_=event_cursors.c.created),
                "event_id": case((newer, seen.event_id), else_=event_cursors.c.event_id),
                "updated_at": seen.updated_at if read_to_now else event_cursors.c.updated_at,
            },
        )
    )


async def mark_read_to_now(conn: Queryable, source: str, *, start: int, now: datetime) -> None:
    """A listing reached the present: `updated_at` moves, the position stays (a source never
    read before starts its cursor at `start`, with no event yet)."""
    statement = insert_for(conn, event_cursors).values(
        source=source, created=start, event_id=None, updated_at=now
    )
    await conn.execute(
        statement.on_conflict_do_update(
            index_elements=["source"], set_={"updated_at": statement.excluded.updated_at}
        )
    )
