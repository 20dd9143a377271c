"""The events catch-up against the sandbox's `/v1/events`: nothing skipped, nothing twice."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from reconciler.db.engine import Database
from reconciler.db.tables import discrepancies, event_cursors, inbox_events
from reconciler.gateway import GatewayError
from reconciler.inbox.catchup import (
    RETENTION_SECONDS,
    CatchUpFailed,
    CatchUpPolicy,
    EventsCatchUp,
    event_sources,
)
from reconciler.inbox.cursors import advance_cursor
from reconciler.inbox.envelope import parse_event
from reconciler.inbox.events import NewEvent
from reconciler.inbox.inserts import insert_event
from reconciler.ledger.connected_accounts import link_account, unlink_account
from reconciler.ledger.merchants import create_merchant, mark_deauthorized
from reconciler.ledger.session import ledger_session
from tests.stripe_world import StripeWorld, stripe_world

DAY = 86_400


@pytest.fixture
async def world() -> AsyncIterator[StripeWorld]:
    async with stripe_world(seed=5) as running:
        yield running


def sandbox_now(world: StripeWorld) -> datetime:
    return datetime.fromtimestamp(world.sandbox.sandbox.clock.now(), UTC)


def catch_up(db: Database, world: StripeWorld, *, page_size: int = 2) -> EventsCatchUp:
    policy = CatchUpPolicy(
        overlap_seconds=300,
        retention_margin_seconds=3 * DAY,
        first_lookback_seconds=DAY,
        page_size=page_size,
    )
    return EventsCatchUp(db, world.gateway, policy, livemode=False)


async def make_intents(world: StripeWorld, count: int) -> None:
    """`count` payment_intent.created events, all in the frozen clock's one second."""
    for _ in range(count):
        await world.client.v1.payment_intents.create_async(
            params={"amount": 1000, "currency": "usd", "payment_method_types": ["card"]}
        )


async def stored(db: Database) -> dict[str, tuple[str, str | None, str]]:
    columns = inbox_events.c
    query = select(columns.stripe_event_id, columns.endpoint, columns.account, columns.status)
    async with db.read() as conn:
        return {row[0]: (row[1], row[2], row[3]) for row in await conn.execute(query)}


async def platform_event_ids(world: StripeWorld) -> set[str]:
    return {parse_event(event.payload.encode()).stripe_event_id for event in await world.events()}


async def test_same_second_events_across_page_boundaries_are_all_stored(
    db: Database, world: StripeWorld
) -> None:
    await make_intents(world, 5)  # five events of one second, over three pages of two
    job = catch_up(db, world)
    assert await job.run(sandbox_now(world)) == "platform: 5 new of 5 listed"
    # Three more in the very second the cursor stands at: the next run still finds them,
    # walking on from the cursor's event, having read again the four Stripe lists after it.
    await make_intents(world, 3)
    assert await job.run(sandbox_now(world)) == "platform: 3 new of 7 listed"
    expected = await platform_event_ids(world)
    assert len(expected) == 8
    rows = await stored(db)
    assert set(rows) == expected
    assert set(rows.values()) == {("platform", None, "received")}


async def test_a_second_run_stores_nothing_new(db: Database, world: StripeWorld) -> None:
    await make_intents(world, 3)
    job = catch_up(db, world)
    first = await job.run(sandbox_now(world))
    before = await stored(db)
    assert first == "platform: 3 new of 3 listed"
    # The cursor's event is not listed again; the two Stripe lists after it (same second) are.
    assert await job.run(sandbox_now(world)) == "platform: 0 new of 2 listed"
    assert await stored(db) == before


async def test_an_event_a_webhook_stored_costs_nothing(
    db: Database, world: StripeWorld, now: datetime
) -> None:
    await make_intents(world, 2)
    delivered = parse_event((await world.events())[0].payload.encode())
    webhook = NewEvent(
        stripe_event_id=delivered.stripe_event_id,
        endpoint="platform",
        event_type=delivered.event_type,
        livemode=False,
        account=None,
        stripe_created=delivered.created,
        payload="the webhook's own body",
    )
    async with db.write() as conn:
        await insert_event(conn, webhook, now)
    assert await catch_up(db, world).run(sandbox_now(world)) == "platform: 1 new of 2 listed"
    async with db.read() as conn:
        payload = await conn.scalar(
            select(inbox_events.c.payload).where(
                inbox_events.c.stripe_event_id == delivered.stripe_event_id
            )
        )
    assert payload == "the webhook's own body"


async def test_the_cursor_never_moves_back(db: Database, now: datetime) -> None:
    async with db.write() as conn:
        await advance_cursor(conn, "platform", created=200, event_id="evt_new", now=now)
        await advance_cursor(conn, "platform", created=100, event_id="evt_old", now=now)
    async with db.read() as conn:
        row = (await conn.execute(select(event_cursors))).one()
    assert (row.source, row.created, row.event_id) == ("platform", 200, "evt_new")


async def discrepancy_rows(db: Database) -> list[tuple[str, str, str, datetime]]:
    columns = discrepancies.c
    query = select(columns.kind, columns.object_id, columns.status, columns.updated_at)
    async with db.read() as conn:
        return [tuple(row) for row in await conn.execute(query)]  # type: ignore[misc]


async def test_retention_is_reported_once_then_updated(
    db: Database, world: StripeWorld, caplog: pytest.LogCaptureFixture
) -> None:
    await make_intents(world, 1)
    now = sandbox_now(world)
    last_read = now - timedelta(seconds=RETENTION_SECONDS - 2 * DAY)  # inside the 3-day margin
    stale = {"created": int(last_read.timestamp()), "updated_at": last_read}

    async def leave_unread_since_then() -> None:
        async with db.write() as conn:
            await advance_cursor(conn, "platform", created=0, event_id=None, now=last_read)
            await conn.execute(update(event_cursors).values(**stale))

    job = catch_up(db, world)
    await leave_unread_since_then()
    with caplog.at_level(logging.ERROR, logger="reconciler.inbox.catchup"):
        assert await job.run(now) == "platform: 1 new of 1 listed"
    assert "30-DAY RETENTION" in caplog.text
    [(kind, source, status, first_seen)] = await discrepancy_rows(db)
    assert (kind, source, status) == ("events_past_retention", "platform", "open")

    # Read since: no warning. Left unread that long again: the same discrepancy, updated.
    caplog.clear()
    assert await job.run(now + timedelta(minutes=1)) == "platform: 0 new of 0 listed"
    assert await discrepancy_rows(db) == [(kind, source, status, first_seen)]
    assert "RETENTION" not in caplog.text
    await leave_unread_since_then()
    assert await job.run(now + timedelta(hours=1)) == "platform: 0 new of 0 listed"
    [(_, _, _, updated)] = await discrepancy_rows(db)
    assert updated == now + timedelta(hours=1)


async def test_a_fresh_source_is_not_reported(db: Database, world: StripeWorld) -> None:
    await make_intents(world, 1)
    await catch_up(db, world).run(sandbox_now(world))
    assert await discrepancy_rows(db) == []


async def test_sources_are_the_platform_and_the_accounts_still_listable(
    db: Database, now: datetime
) -> None:
    async with ledger_session(db) as tx:
        linked = await create_merchant(tx, name="Linked", now=now)
        await link_account(tx, linked, "acct_now", country="US", now=now)
        for name, days in (("acct_old", 40), ("acct_recent", 10)):
            merchant = await create_merchant(tx, name=name, now=now)
            await link_account(tx, merchant, name, country="US", now=now - timedelta(days=50))
            await unlink_account(tx, merchant, now=now - timedelta(days=days))
        gone = await create_merchant(tx, name="Gone", now=now, stripe_account_id="acct_gone")
        await mark_deauthorized(tx, gone, now=now)
    discovered = [
        {"id": "acct_new", "metadata": {"icpay_account_id": "9"}},
        {"id": "acct_foreign", "metadata": {}},
        {"id": "acct_gone", "metadata": {"icpay_account_id": str(gone)}},
    ]
    sources = await event_sources(db, now, discovered)
    assert [(s.name, s.account) for s in sources] == [
        ("platform", None),
        ("acct_new", "acct_new"),
        ("acct_now", "acct_now"),
        ("acct_recent", "acct_recent"),
    ]
    assert sources[2].merchant_id == linked


async def test_a_connected_accounts_events_are_stored_as_connect_events(
    db: Database, world: StripeWorld
) -> None:
    account = await world.client.v1.accounts.create_async(
        params={"type": "express", "country": "US", "metadata": {"icpay_account_id": "1"}}
    )
    await world.control_post(f"accounts/{account.id}/onboarding")
    outcome = await catch_up(db, world).run(sandbox_now(world))
    rows = await stored(db)
    connect = {row for row in rows.values() if row[0] == "connect"}
    assert connect == {("connect", account.id, "received")}
    own = await world.client.v1.events.list_async(
        params={"limit": 100}, options={"stripe_account": account.id}
    )
    assert f"{account.id}: {len(own.data)} new of {len(own.data)} listed" in outcome
    assert {event.id for event in own.data} <= set(rows)


async def test_runs_at_once_store_each_event_once(db: Database, world: StripeWorld) -> None:
    await make_intents(world, 7)
    job = catch_up(db, world)
    outcomes = await asyncio.gather(*(job.run(sandbox_now(world)) for _ in range(3)))
    new = sorted(int(outcome.split(": ")[1].split(" new")[0]) for outcome in outcomes)
    assert sum(new) == 7
    assert len(await stored(db)) == 7


async def test_an_account_that_revoked_access_does_not_stop_the_others(
    db: Database, world: StripeWorld, now: datetime
) -> None:
    account = await world.client.v1.accounts.create_async(
        params={"type": "express", "country": "US"}
    )
    async with ledger_session(db) as tx:
        merchant = await create_merchant(tx, name="Acme", now=now)
        await link_account(tx, merchant, account.id, country="US", now=now)
    await world.control_post(f"accounts/{account.id}/deauthorize")
    await make_intents(world, 1)
    outcome = await catch_up(db, world).run(sandbox_now(world))
    assert outcome.startswith("platform: ") and outcome.endswith(
        f"{account.id}: access revoked, not read"
    )


async def test_a_source_that_cannot_be_read_fails_the_run_after_the_others(
    db: Database, world: StripeWorld, now: datetime
) -> None:
    await make_intents(world, 2)
    await world.control_post(
        "faults/api", {"kind": "server_error", "count": 10, "path": "/v1/events"}
    )
    with pytest.raises(CatchUpFailed, match="platform: failed"):
        await catch_up(db, world).run(sandbox_now(world))
    async with db.read() as conn:
        assert (await conn.execute(select(event_cursors))).all() == []


async def made_over_seconds(world: StripeWorld, count: int) -> None:
    for _ in range(count):
        await world.control_post("clock/advance", {"seconds": 1})
        await make_intents(world, 1)


async def inbox_order(db: Database) -> list[str]:
    query = select(inbox_events.c.stripe_event_id).order_by(inbox_events.c.id)
    async with db.read() as conn:
        return list((await conn.execute(query)).scalars())


async def creation_order(world: StripeWorld) -> list[str]:
    return [parse_event(event.payload.encode()).stripe_event_id for event in await world.events()]


async def test_a_backlog_is_walked_oldest_first_from_the_cursor(
    db: Database, world: StripeWorld
) -> None:
    await make_intents(world, 1)
    job = catch_up(db, world)
    await job.run(sandbox_now(world))
    await made_over_seconds(world, 7)
    assert await job.run(sandbox_now(world)) == "platform: 7 new of 7 listed"
    assert await inbox_order(db) == await creation_order(world)


class CutShort:
    """The gateway, failing after `pages` pages of a walk (Stripe down part way through)."""

    def __init__(self, world: StripeWorld, pages: int) -> None:
        self._gateway = world.gateway
        self._pages = pages

    def event_pages(self, **listing: Any) -> AsyncIterator[list[dict[str, Any]]]:
        return self._gateway.event_pages(**listing)

    async def event_pages_after(
        self, event_id: str, **listing: Any
    ) -> AsyncIterator[list[dict[str, Any]]]:
        given = 0
        async for page in self._gateway.event_pages_after(event_id, **listing):
            if given == self._pages:
                raise GatewayError("stripe went away", retryable=True)
            given += 1
            yield page

    async def connected_accounts(self, *, created_gte: int) -> list[dict[str, Any]]:
        return await self._gateway.connected_accounts(created_gte=created_gte)


async def test_a_walk_cut_short_keeps_its_pages_and_goes_on_from_them(
    db: Database, world: StripeWorld
) -> None:
    await make_intents(world, 1)
    first_run = sandbox_now(world)
    await catch_up(db, world).run(first_run)
    await made_over_seconds(world, 6)
    policy = CatchUpPolicy(
        overlap_seconds=300, retention_margin_seconds=DAY, first_lookback_seconds=DAY, page_size=2
    )
    cut = EventsCatchUp(db, CutShort(world, pages=1), policy, livemode=False)
    with pytest.raises(CatchUpFailed, match="platform: failed"):
        await cut.run(sandbox_now(world))
    made = await creation_order(world)
    assert await inbox_order(db) == made[:3]
    async with db.read() as conn:
        cursor = (await conn.execute(select(event_cursors))).one()
    # On from the last event stored; not read to the present, so still unread since then.
    assert (cursor.event_id, cursor.updated_at) == (made[2], first_run)
    outcome = await catch_up(db, world).run(sandbox_now(world))
    assert outcome.startswith("platform: 4 new of ")
    assert await inbox_order(db) == made


async def test_a_cursor_event_stripe_no_longer_lists_reads_the_whole_window(
    db: Database, world: StripeWorld, caplog: pytest.LogCaptureFixture
) -> None:
    await make_intents(world, 3)
    now = sandbox_now(world)
    async with db.write() as conn:
        created = int(now.timestamp())
        await advance_cursor(conn, "platform", created=created, event_id="evt_gone", now=now)
    with caplog.at_level(logging.WARNING, logger="reconciler.inbox.catchup"):
        assert await catch_up(db, world).run(now) == "platform: 3 new of 3 listed"
    assert "no longer lists evt_gone" in caplog.text
    assert await inbox_order(db) == await creation_order(world)
