"""The events catch-up: what webhooks missed, read from Stripe's `/v1/events` into the inbox.

Each run lists, for the platform and for each merchant's connected account (as that account:
Stripe shows a connected account's events only under its `Stripe-Account` header), every
event created since the newest one seen before (the cursor), less an overlap: events of one
second, or events Stripe shows a moment late, fall inside it and are not skipped. Stripe lists
newest first; from the cursor's event the catch-up walks the other way (`ending_before`),
oldest first, storing each page and moving the cursor in one commit, so a long backlog is
never held whole and a run cut short goes on from its last page. With no event to walk on
from (a first run, or a cursor event past Stripe's 30 days) the window is read newest first,
whole, and stored oldest first. Pages always follow each other by event id, never by time.
What is listed goes
into the same inbox the webhooks fill, keyed by Stripe's event id (insert on conflict do
nothing): an event a webhook already stored costs nothing, and the worker applies the rest
through the one way in. Safe to run twice or at once: the inbox deduplicates, the cursor only
moves forward.

Stripe keeps events for 30 days. A source not read for nearly that long (the job was down, a
new deployment looks far back) is warned about loudly and reported as an
`events_past_retention` discrepancy: what is older than 30 days cannot be listed any more.

Listed events come from an authenticated API read, not a signed delivery. The inbox has no
column for how a row arrived, so they are stored as Stripe serialised them in the answer,
under the endpoint a webhook of theirs would have reached (`connect` for a connected
account's, `platform` otherwise); an operator tells them apart only by the absence of a
delivery for them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from sqlalchemy import or_, select

from reconciler.config import Settings
from reconciler.db.engine import Database
from reconciler.db.tables import connected_accounts, merchants
from reconciler.gateway import AccessRevoked, GatewayError
from reconciler.inbox.cursors import EventCursor, advance_cursor, mark_read_to_now, read_cursor
from reconciler.inbox.envelope import MalformedEvent, parse_event
from reconciler.inbox.events import NewEvent
from reconciler.inbox.inserts import insert_events
from reconciler.reconcile.discrepancies import record_discrepancy
from reconciler.types import StripeObject

logger = logging.getLogger(__name__)

PLATFORM = "platform"
RETENTION_SECONDS = 30 * 86_400  # how long Stripe lists an event
DETECTED_BY = "events_catch_up"
_INSERT_CHUNK = 500


class EventLister(Protocol):
    """What the catch-up reads from Stripe (`StripeGateway`'s listings)."""

    def event_pages(
        self,
        *,
        created_gte: int,
        stripe_account: str | None,
        page_size: int = 100,
        older_than: str | None = None,
    ) -> AsyncIterator[list[StripeObject]]: ...

    def event_pages_after(
        self, event_id: str, *, created_gte: int, stripe_account: str | None, page_size: int = 100
    ) -> AsyncIterator[list[StripeObject]]: ...

    async def connected_accounts(self, *, created_gte: int) -> list[StripeObject]: ...


@dataclass
class _Counts:
    new: int = 0
    listed: int = 0


class CatchUpFailed(RuntimeError):
    """Some sources could not be read this run (the others were); the message is the
    outcome of every source, so the scheduler's run record says which."""


@dataclass(frozen=True)
class CatchUpPolicy:
    overlap_seconds: int
    retention_margin_seconds: int
    first_lookback_seconds: int
    page_size: int

    @classmethod
    def from_settings(cls, settings: Settings) -> CatchUpPolicy:
        return cls(
            overlap_seconds=settings.catchup_overlap_seconds,
            retention_margin_seconds=settings.catchup_retention_margin_seconds,
            first_lookback_seconds=settings.catchup_first_lookback_seconds,
            page_size=settings.catchup_page_size,
        )


@dataclass(frozen=True)
class Source:
    """Whose events to list: the platform's (`account` None) or one connected account's."""

    name: str
    account: str | None
    merchant_id: int | None = None


async def event_sources(
    database: Database, now: datetime, discovered: Sequence[StripeObject] = ()
) -> list[Source]:
    """The platform, then every account a merchant has linked: linked now, or unlinked within
    Stripe's 30 days (a payout's transfer reversed in the Dashboard after the merchant changed
    accounts is still theirs to book, and Stripe still lists it). Then the `discovered`
    accounts made for a merchant (`icpay_account_id` in their metadata) that the ledger does
    not know yet: the event that would link one (`account.updated`) is itself a connected
    account's event, listed only under that account's header. A merchant whose account
    revoked the platform's access is left out: Stripe answers 403 for its events, every run."""
    recent = now - timedelta(seconds=RETENTION_SECONDS)
    linked = (
        select(merchants.c.id, merchants.c.stripe_account_id)
        .where(merchants.c.stripe_account_id.is_not(None))
        .where(merchants.c.connect_status != "deauthorized")
    )
    history = select(
        connected_accounts.c.merchant_id, connected_accounts.c.stripe_account_id
    ).where(
        or_(connected_accounts.c.unlinked_at.is_(None), connected_accounts.c.unlinked_at >= recent)
    )
    revoked = select(merchants.c.stripe_account_id).where(
        merchants.c.connect_status == "deauthorized", merchants.c.stripe_account_id.is_not(None)
    )
    accounts: dict[str, int | None] = {}
    for account in discovered:
        owner = str((account.get("metadata") or {}).get("icpay_account_id", ""))
        if owner:
            accounts[str(account["id"])] = int(owner) if owner.isdigit() else None
    async with database.read() as conn:
        accounts.update({row[1]: row[0] for row in await conn.execute(history)})
        accounts.update({row[1]: row[0] for row in await conn.execute(linked)})
        for (account,) in await conn.execute(revoked):
            accounts.pop(account, None)
    return [Source(PLATFORM, None)] + [
        Source(account, account, merchant_id) for account, merchant_id in sorted(accounts.items())
    ]


class EventsCatchUp:
    """Reads what webhooks missed into the inbox; `run(now)` is the scheduled job."""

    def __init__(
        self,
        database: Database,
        gateway: EventLister,
        policy: CatchUpPolicy,
        *,
        livemode: bool,
        wake: Callable[[], None] | None = None,
    ) -> None:
        self._database = database
        self._gateway = gateway
        self._policy = policy
        self._livemode = livemode
        self._wake = wake

    async def run(self, now: datetime) -> str:
        """Catch up every source; the outcome, e.g. `platform: 12 new of 40 listed; acct_1: 0
        new of 3 listed`. Raises `CatchUpFailed` (after reading the others) if a source could
        not be read."""
        outcomes: list[str] = []
        failed = False
        created_gte = int(now.timestamp()) - RETENTION_SECONDS
        try:
            discovered = await self._gateway.connected_accounts(created_gte=created_gte)
        except GatewayError as error:  # the linked ones are still read
            logger.warning("events catch-up: connected accounts not listed: %s", error)
            outcomes.append(f"accounts: not listed ({error})")
            discovered, failed = [], True
        for source in await event_sources(self._database, now, discovered):
            try:
                outcomes.append(await self.catch_up(source, now))
            except AccessRevoked:
                outcomes.append(f"{source.name}: access revoked, not read")
            except (GatewayError, MalformedEvent) as error:
                logger.warning("events catch-up of %s failed: %s", source.name, error)
                outcomes.append(f"{source.name}: failed ({error})")
                failed = True
        outcome = "; ".join(outcomes)
        if failed:
            raise CatchUpFailed(outcome)
        return outcome

    async def catch_up(self, source: Source, now: datetime) -> str:
        """One source: list from the cursor less the overlap, store what is new, move on."""
        async with self._database.read() as conn:
            cursor = await read_cursor(conn, source.name)
        since = self._since(cursor, now)
        await self._check_retention(source, cursor, since, now)
        counts = _Counts()
        if cursor is not None and cursor.event_id is not None:
            try:
                await self._walk_on_from(cursor.event_id, source, since, now, counts)
            except GatewayError as error:
                if error.code != "resource_missing":
                    raise
                logger.warning(
                    "events catch-up: %s no longer lists %s; reading its whole window",
                    source.name,
                    cursor.event_id,
                )
                await self._read_window(source, since, now, counts)
        else:
            await self._read_window(source, since, now, counts)
        return f"{source.name}: {counts.new} new of {counts.listed} listed"

    async def _walk_on_from(
        self, anchor: str, source: Source, since: int, now: datetime, counts: _Counts
    ) -> None:
        """Oldest first from the cursor's event, a page (and a commit, and a cursor step) at a
        time, so a long backlog is never held whole and a run cut short resumes where it
        stopped. First the overlap: events since `since` that Stripe lists after the cursor's
        (of its second, or shown late)."""
        older = self._gateway.event_pages(
            created_gte=since,
            stripe_account=source.account,
            page_size=self._policy.page_size,
            older_than=anchor,
        )
        overlap = [event async for page in older for event in page]
        # Listed before the cursor's event: they do not move it.
        await self._store(source, list(reversed(overlap)), since, now, counts, move=False)
        newer = self._gateway.event_pages_after(
            anchor,
            created_gte=since,
            stripe_account=source.account,
            page_size=self._policy.page_size,
        )
        async for page in newer:
            await self._store(source, page, since, now, counts)
        await self._store(source, [], since, now, counts, read_to_now=True)

    async def _read_window(
        self, source: Source, since: int, now: datetime, counts: _Counts
    ) -> None:
        """Everything since `since`, when there is no event to walk on from (a first run, or
        one Stripe no longer lists): Stripe lists newest first, so the window is read whole,
        then stored oldest first, in the order the events were made."""
        pages = self._gateway.event_pages(
            created_gte=since, stripe_account=source.account, page_size=self._policy.page_size
        )
        listed = [event async for page in pages for event in page]
        await self._store(source, list(reversed(listed)), since, now, counts, read_to_now=True)

    async def _store(
        self,
        source: Source,
        listed: list[StripeObject],
        since: int,
        now: datetime,
        counts: _Counts,
        *,
        move: bool = True,
        read_to_now: bool = False,
    ) -> None:
        """Insert what is new of `listed` (oldest first), and in the same commit move the
        cursor to its newest event (the last) and/or mark the source read to the present:
        the cursor never passes an event not stored."""
        events = [self._new_event(event) for event in listed]
        new: set[str] = set()
        async with self._database.write() as conn:
            for start in range(0, len(events), _INSERT_CHUNK):
                new |= await insert_events(conn, events[start : start + _INSERT_CHUNK], now)
            if move and listed:
                await advance_cursor(
                    conn,
                    source.name,
                    created=int(listed[-1]["created"]),
                    event_id=str(listed[-1]["id"]),
                    now=now,
                    read_to_now=read_to_now,
                )
            elif read_to_now:
                await mark_read_to_now(conn, source.name, start=since, now=now)
        counts.new += len(new)
        counts.listed += len(listed)
        if new and self._wake is not None:
            self._wake()

    def _since(self, cursor: EventCursor | None, now: datetime) -> int:
        if cursor is None:
            return int(now.timestamp()) - self._policy.first_lookback_seconds
        return cursor.created - self._policy.overlap_seconds

    def _new_event(self, event: StripeObject) -> NewEvent:
        # Through the webhooks' own envelope reader, so a row reads the same however it came.
        envelope = parse_event(json.dumps(event).encode())
        ignored = None
        if envelope.livemode != self._livemode:
            ignored = (
                f"{'live' if envelope.livemode else 'test'}-mode event on a "
                f"{'live' if self._livemode else 'test'}-mode service"
            )
        return NewEvent(
            stripe_event_id=envelope.stripe_event_id,
            endpoint="connect" if envelope.account else "platform",
            event_type=envelope.event_type,
            livemode=envelope.livemode,
            account=envelope.account,
            stripe_created=envelope.created,
            payload=envelope.payload,
            ignored_reason=ignored,
        )

    async def _check_retention(
        self, source: Source, cursor: EventCursor | None, since: int, now: datetime
    ) -> None:
        """Warn and report when what is still unread began nearly 30 days ago. Unread: from
        the listing's start, or, once a listing finished, from then less the overlap (a
        source quiet for weeks keeps an old cursor, yet nothing of it is unread)."""
        unread_from = since
        if cursor is not None:
            finished = int(cursor.updated_at.timestamp()) - self._policy.overlap_seconds
            unread_from = max(since, finished)
        now_second = int(now.timestamp())
        limit = RETENTION_SECONDS - self._policy.retention_margin_seconds
        if now_second - unread_from < limit:
            return
        lost_before = datetime.fromtimestamp(now_second - RETENTION_SECONDS, UTC)
        unread = datetime.fromtimestamp(unread_from, UTC)
        detail = (
            f"events of {source.name} unread since {unread.isoformat()}: Stripe lists events "
            f"for 30 days, so any made before {lost_before.isoformat()} and never delivered "
            "are lost to the catch-up; reconcile this source's objects"
        )
        logger.error("EVENTS NEAR STRIPE'S 30-DAY RETENTION: %s", detail)
        async with self._database.write() as conn:
            await record_discrepancy(
                conn,
                kind="events_past_retention",
                object_type="event_source",
                object_id=source.name,
                merchant_id=source.merchant_id,
                stripe_value={"unread_since": unread_from, "retention_seconds": RETENTION_SECONDS},
                detail=detail,
                detected_by=DETECTED_BY,
                now=now,
            )
