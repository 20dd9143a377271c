"""Stored webhook events (the inbox), for operators: find the failed and dead ones, look at
one, and replay it: the HTTP form of `reconciler events replay`, the same core function."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, cast

from pydantic import Field

from handlers.api.endpoints import STAFF, Call, Endpoint
from handlers.api.errors import ApiError
from handlers.api.models import Answer, Page, PageQuery
from reconciler.inbox.events import InboxSummary
from reconciler.inbox.queries import find, list_events, replay
from reconciler.types import utcnow

# Stripe event ids are at most this long (the column's width).
MAX_REFERENCE = 255
InboxStatus = Literal["received", "processing", "done", "failed", "dead", "ignored"]
InboxEndpoint = Literal["platform", "connect"]


class EventAnswer(Answer):
    id: int = Field(description="the inbox row id")
    stripe_event_id: str
    type: str
    endpoint: InboxEndpoint
    status: InboxStatus
    attempts: int
    last_error: str | None
    received_at: datetime
    next_attempt_at: datetime

    @classmethod
    def of(cls, row: InboxSummary) -> EventAnswer:
        return cls(
            id=row.id,
            stripe_event_id=row.stripe_event_id,
            type=row.event_type,
            endpoint=cast(InboxEndpoint, row.endpoint),
            status=cast(InboxStatus, row.status),
            attempts=row.attempts,
            last_error=row.last_error,
            received_at=row.received_at,
            next_attempt_at=row.next_attempt_at,
        )


class EventQuery(PageQuery):
    status: InboxStatus | None = None


def _reference(call: Call) -> str:
    """The event named in the path: its Stripe id (`evt_...`) or its inbox row id."""
    reference: str = call.path["event_id"]
    if len(reference) > MAX_REFERENCE or "\x00" in reference:
        raise ApiError("not_found", f"no event {reference[:40]!r}", param="event_id")
    return reference


async def list_inbox(call: Call) -> Page[EventAnswer]:
    query: EventQuery = call.query
    async with call.runtime.database.read() as conn:
        rows = await list_events(
            conn, status=query.status, limit=query.limit + 1, starting_after=query.starting_after
        )
    return Page[EventAnswer](
        data=[EventAnswer.of(row) for row in rows[: query.limit]], has_more=len(rows) > query.limit
    )


async def get_event(call: Call) -> EventAnswer:
    async with call.runtime.database.read() as conn:
        return EventAnswer.of(await find(conn, _reference(call)))


async def replay_event(call: Call) -> EventAnswer:
    """Only a failed or dead event: anything else is `replay_refused` (409)."""
    reference = _reference(call)
    async with call.runtime.database.write() as conn:
        row = await replay(conn, reference, utcnow())
    if call.runtime.worker is not None:
        call.runtime.worker.wake()
    return EventAnswer.of(row)


EVENT = {"event_id": str}
ENDPOINTS = [
    Endpoint(
        "GET",
        "/events",
        list_inbox,
        "List stored webhook events, newest first (e.g. status=dead)",
        Page[EventAnswer],
        roles=STAFF,
        query=EventQuery,
    ),
    Endpoint(
        "GET",
        "/events/{event_id}",
        get_event,
        "A stored webhook event, by Stripe event id (evt_...) or inbox row id",
        EventAnswer,
        roles=STAFF,
        path_params=EVENT,
    ),
    Endpoint(
        "POST",
        "/events/{event_id}/replay",
        replay_event,
        "Replay a failed or dead event now, with a fresh set of attempts",
        EventAnswer,
        roles=STAFF,
        path_params=EVENT,
        errors=("replay_refused",),
    ),
]
