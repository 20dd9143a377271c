"""Thin (v2) events carry only a reference: applying one fetches the object from Stripe."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from reconciler.apply import EventApplier
from reconciler.config import Settings
from reconciler.db.engine import Database
from reconciler.db.tables import payments, platform_balance_snapshots
from reconciler.ledger.merchants import create_merchant, get_merchant
from reconciler.ledger.session import ledger_reader, ledger_session
from tests.factories import payable_merchant
from tests.scenarios import FEE_PERCENT
from tests.stripe_world import StoredEvent, StripeWorld, stripe_world


@pytest.fixture
async def world() -> AsyncIterator[StripeWorld]:
    async with stripe_world() as running:
        yield running


def thin_event(object_type: str, object_id: str) -> StoredEvent:
    return StoredEvent(
        json.dumps(
            {
                "id": "evt_thin_1",
                "object": "v2.core.event",
                "type": f"v1.{object_type}.succeeded",
                "created": "2026-01-01T00:00:00.000Z",
                "livemode": False,
                "context": None,
                "related_object": {
                    "id": object_id,
                    "type": object_type,
                    "url": f"/v1/{object_type}s/{object_id}",
                },
                "reason": None,
            }
        )
    )


async def test_a_thin_event_applies_the_object_fetched_fresh(
    db: Database, world: StripeWorld, now: datetime
) -> None:
    async with ledger_session(db) as conn:
        merchant_id = await payable_merchant(conn, now)
    intent = await world.pay(merchant_id, 10000, "pm_card_bypassPending")
    applier = EventApplier(db, world.gateway, Settings(platform_fee_percent=FEE_PERCENT))

    await applier(thin_event("payment_intent", intent.id))
    await applier(thin_event("payment_intent", intent.id))

    async with ledger_reader(db) as conn:
        found = (
            await conn.execute(
                select(payments.c.payment_intent_id, payments.c.status, payments.c.stripe_fee)
            )
        ).all()
    assert [tuple(row) for row in found] == [(intent.id, "succeeded", 320)]


async def test_a_thin_event_about_an_object_we_do_not_apply_changes_nothing(
    db: Database, world: StripeWorld
) -> None:
    applier = EventApplier(db, world.gateway, Settings())
    await applier(thin_event("invoice", "in_123"))
    async with ledger_reader(db) as conn:
        assert (await conn.execute(select(payments.c.id))).all() == []


async def test_a_thin_event_about_a_connected_accounts_object_is_not_ours(
    db: Database, world: StripeWorld, now: datetime
) -> None:
    async with ledger_session(db) as conn:
        merchant_id = await payable_merchant(conn, now)
    intent = await world.pay(merchant_id, 10000, "pm_card_bypassPending")
    event = json.loads(thin_event("payment_intent", intent.id).payload)
    event["context"] = "acct_someone"
    await EventApplier(db, world.gateway, Settings())(StoredEvent(json.dumps(event)))
    async with ledger_reader(db) as conn:
        assert (await conn.execute(select(payments.c.id))).all() == []


async def test_a_connected_accounts_thin_account_updated_fetches_it_as_the_platform(
    db: Database, world: StripeWorld, now: datetime
) -> None:
    account = await world.client.v1.accounts.create_async(
        params={"type": "express", "country": "US"}
    )
    await world.control_post(f"accounts/{account.id}/onboarding")
    async with ledger_session(db) as conn:
        merchant_id = await create_merchant(
            conn, name="Acme", now=now, stripe_account_id=account.id
        )
    event = json.loads(thin_event("account", account.id).payload)
    event.update(type="v1.account.updated", context=account.id)

    await EventApplier(db, world.gateway, Settings())(StoredEvent(json.dumps(event)))

    async with ledger_reader(db) as conn:
        merchant = await get_merchant(conn, merchant_id)
    assert (merchant.connect_status, merchant.payouts_enabled) == ("enabled", True)


async def test_a_thin_balance_available_stores_the_balance_fetched_as_of_the_event(
    db: Database, world: StripeWorld, now: datetime
) -> None:
    async with ledger_session(db) as conn:
        merchant_id = await payable_merchant(conn, now)
    await world.pay(merchant_id, 10000, "pm_card_bypassPending")
    event = {
        "id": "evt_thin_balance",
        "object": "v2.core.event",
        "type": "v1.balance.available",
        "created": "2026-01-03T01:00:00.000Z",
        "livemode": False,
        "related_object": {"type": "balance", "url": "/v1/balance"},
        "reason": None,
    }

    await EventApplier(db, world.gateway, Settings())(StoredEvent(json.dumps(event)))

    async with ledger_reader(db) as conn:
        found = (
            await conn.execute(
                select(
                    platform_balance_snapshots.c.available,
                    platform_balance_snapshots.c.source,
                    platform_balance_snapshots.c.taken_at,
                )
            )
        ).all()
    [(available, source, taken_at)] = found
    assert (available, source) == (9680, "balance.available")
    assert taken_at.replace(tzinfo=UTC) == datetime(2026, 1, 3, 1, 0, tzinfo=UTC)
