"""A batch of events in one transaction: all or nothing, and the worker falls back to one at a
time, so an event that cannot be applied fails alone."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from reconciler.apply import EventApplier
from reconciler.apply.batch import BatchSpoiled, StripeMemo
from reconciler.apply.context import ApplyContext
from reconciler.apply.events import stripe_reads
from reconciler.config import Settings
from reconciler.db.engine import Database
from reconciler.db.tables import inbox_events, journal_entries, payments
from reconciler.errors import IllegalTransition
from reconciler.gateway import GatewayError, StripeNotFound
from reconciler.inbox import inserts
from reconciler.inbox.events import InboxPolicy, NewEvent
from reconciler.inbox.worker import InboxWorker
from reconciler.ledger.payments import create_payment
from reconciler.ledger.session import ledger_reader, ledger_session
from reconciler.money import FeeSchedule
from tests.factories import payable_merchant
from tests.scenarios import FEE_PERCENT
from tests.stripe_world import StoredEvent, StripeWorld, stripe_world


@pytest.fixture
async def world() -> AsyncIterator[StripeWorld]:
    async with stripe_world() as running:
        yield running


def missing_charge_event() -> dict[str, Any]:
    """A charge of a payment intent Stripe does not have: applying it must fail."""
    return {
        "id": "evt_missing",
        "object": "event",
        "type": "charge.succeeded",
        "created": 1,
        "livemode": False,
        "data": {
            "object": {
                "id": "ch_missing",
                "object": "charge",
                "status": "succeeded",
                "payment_intent": "pi_missing",
                "amount": 1000,
                "currency": "usd",
            }
        },
    }


async def store(db: Database, now: datetime, events: list[dict[str, Any]]) -> None:
    rows = [NewEvent(e["id"], "platform", e["type"], False, None, 1, json.dumps(e)) for e in events]
    async with db.write() as conn:
        await inserts.insert_events(conn, rows, now)


async def count(db: Database, table: Any) -> int:
    async with ledger_reader(db) as conn:
        return int(await conn.scalar(select(func.count()).select_from(table)))


async def test_one_event_that_fails_fails_alone_and_the_batch_is_applied_one_at_a_time(
    db: Database, world: StripeWorld, now: datetime
) -> None:
    async with ledger_session(db) as conn:
        merchant_id = await payable_merchant(conn, now)
    await world.pay(merchant_id, 10000, "pm_card_bypassPending")
    events = [json.loads(event.payload) for event in await world.events()]
    await store(db, now, [*events, missing_charge_event()])
    settings = Settings(platform_fee_percent=FEE_PERCENT)
    applier = EventApplier(db, world.gateway, settings)
    policy = InboxPolicy.from_settings(settings)
    worker = InboxWorker(db, applier, policy=policy, batch_size=settings.inbox_batch_size)

    await worker.run_once(now)

    async with db.read() as conn:
        query = select(inbox_events.c.stripe_event_id, inbox_events.c.status)
        rows = {event_id: status for event_id, status in await conn.execute(query)}
    assert rows.pop("evt_missing") == "failed"
    assert set(rows.values()) == {"done"}
    assert await count(db, payments) == 1
    # Paid, Stripe's fee, funds available: each once, though the batch was tried first.
    assert await count(db, journal_entries) == 3


async def test_a_failed_batch_leaves_nothing_behind(
    db: Database, world: StripeWorld, now: datetime
) -> None:
    async with ledger_session(db) as conn:
        merchant_id = await payable_merchant(conn, now)
    await world.pay(merchant_id, 10000, "pm_card_bypassPending")
    events = [*await world.events()]
    bad = StoredEvent(json.dumps(missing_charge_event()), id=len(events) + 1)
    applier = EventApplier(db, world.gateway, Settings(platform_fee_percent=FEE_PERCENT))

    prepared = await applier.prepare([*events, bad])
    with pytest.raises(StripeNotFound):
        async with db.write() as conn:
            await prepared.apply(conn, [*events, bad])
    assert await count(db, payments) == 0
    assert await count(db, journal_entries) == 0


async def test_an_error_handled_inside_a_batch_still_spoils_it(db: Database) -> None:
    ctx = ApplyContext(db=db, stripe=None, fees=FeeSchedule())  # type: ignore[arg-type]
    async with ledger_session(db) as tx:
        together = ctx.in_batch(tx, ctx.stripe)
        assert not together.spoiled
        try:
            async with together.write():
                raise IllegalTransition("half an event may be held")
        except IllegalTransition:
            pass  # a handler that handles it (as apply_object once did) must not hide it
        assert together.spoiled


class FlakyCharges:
    """Charges by id; `ch_missing` is not at Stripe the first time, `ch_down` is unreachable."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def charge(self, charge_id: str) -> dict[str, Any]:
        self.calls.append(charge_id)
        if charge_id == "ch_missing" and self.calls.count(charge_id) == 1:
            raise StripeNotFound("no such charge", retryable=False, http_status=404)
        if charge_id == "ch_down":
            raise GatewayError("Stripe is down", retryable=True, http_status=503)
        return {"id": charge_id}


async def test_stripe_reads_are_made_once_and_one_found_missing_stays_the_events() -> None:
    stripe = FlakyCharges()
    memo = StripeMemo(stripe)  # type: ignore[arg-type]
    await memo.warm([("charge", "ch_1"), ("charge", "ch_1"), ("charge", "ch_missing")])
    memo.seal()
    assert await memo.charge("ch_1") == {"id": "ch_1"}
    # The answer "no such object" is the event's to handle, as it would be alone.
    with pytest.raises(StripeNotFound):
        await memo.charge("ch_missing")
    assert sorted(stripe.calls) == ["ch_1", "ch_missing"]


async def test_once_sealed_a_read_not_made_before_spoils_the_batch() -> None:
    """No call to Stripe while the batch's transaction holds its locks: the events are
    applied one at a time instead, each reading Stripe outside its transactions."""
    stripe = FlakyCharges()
    memo = StripeMemo(stripe)  # type: ignore[arg-type]
    await memo.warm([("charge", "ch_1")])
    memo.seal()
    for read in (memo.charge("ch_2"), memo.refunds_for_charge("ch_1")):
        with pytest.raises(BatchSpoiled):
            await read
    assert stripe.calls == ["ch_1"]


async def test_a_warm_read_that_fails_otherwise_fails_the_batch() -> None:
    memo = StripeMemo(FlakyCharges())  # type: ignore[arg-type]
    # Not dropped in silence: the batch is given up and its events meet the error alone.
    with pytest.raises(GatewayError, match="Stripe is down"):
        await memo.warm([("charge", "ch_1"), ("charge", "ch_down")])


def event_of(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    return {"id": f"evt_{obj['id']}", "object": "event", "type": kind, "data": {"object": obj}}


async def test_the_stripe_reads_a_batch_will_make_are_told_beforehand(
    db: Database, now: datetime
) -> None:
    async with ledger_session(db) as tx:
        merchant_id = await payable_merchant(tx, now)
        await create_payment(
            tx,
            merchant_id=merchant_id,
            amount=1000,
            currency="usd",
            fees=FeeSchedule(),
            now=now,
            payment_intent_id="pi_pending",
        )
    succeeded = {"object": "payment_intent", "status": "succeeded", "latest_charge": "ch_1"}
    cases: list[tuple[dict[str, Any], list[tuple[str, ...]]]] = [
        (event_of("payment_intent.succeeded", {"id": "pi_new", **succeeded}), [("charge", "ch_1")]),
        (
            event_of(
                "charge.succeeded",
                {"id": "ch_2", "object": "charge", "status": "succeeded", "payment_intent": "pi_2"},
            ),
            [("payment_intent", "pi_2"), ("charge", "ch_2")],  # unknown payment; no fee yet
        ),
        (
            event_of(
                "refund.created",
                {"id": "re_1", "object": "refund", "payment_intent": "pi_pending"},
            ),
            [("payment_intent", "pi_pending")],  # the payment is brought up to date first
        ),
        (
            event_of("account.updated", {"id": "acct_1", "object": "account"}),
            [("account", "acct_1")],
        ),
        (
            {
                **event_of("charge.succeeded", {"id": "ch_3", "object": "charge"}),
                "account": "acct_9",
            },
            [],  # a connected account's own object is not ours
        ),
        (
            {
                "id": "evt_thin",
                "object": "v2.core.event",
                "related_object": {"type": "refund", "id": "re_2"},
            },
            [("refund", "re_2")],
        ),
        (
            {
                "id": "evt_thin_account",
                "object": "v2.core.event",
                "type": "v1.account.updated",
                "context": "acct_1",
                "related_object": {"type": "account", "id": "acct_1"},
            },
            [("account", "acct_1")],  # a connected account's, yet ours: fetched as the platform
        ),
        (
            {
                "id": "evt_thin_balance",
                "object": "v2.core.event",
                "type": "v1.balance.available",
                "related_object": {"type": "balance", "url": "/v1/balance"},
            },
            [("balance", "")],
        ),
        (
            {
                "id": "evt_thin_deauthorized",
                "object": "v2.core.event",
                "type": "v1.account.application.deauthorized",
                "context": "acct_1",
            },
            [],  # nothing to fetch: the context is the account
        ),
        (
            {
                "id": "evt_thin_connected_charge",
                "object": "v2.core.event",
                "type": "v1.charge.succeeded",
                "context": "acct_9",
                "related_object": {"type": "charge", "id": "ch_9"},
            },
            [],
        ),
    ]
    async with ledger_reader(db) as tx:
        for payload, expected in cases:
            assert await stripe_reads(tx, payload) == expected, payload["id"]
