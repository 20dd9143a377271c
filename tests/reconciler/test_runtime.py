"""The composition root's resources: built once, started, and closed in order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from reconciler.config import ConfigError, Secret, Settings
from reconciler.db.engine import Database
from reconciler.errors import SchemaNotCurrent
from reconciler.gateway import call_priority
from reconciler.inbox.appliers import noop_applier, open_applier
from reconciler.inbox.events import InboxEvent, NewEvent
from reconciler.inbox.worker import POLL_INTERVAL_SECONDS, Applier
from reconciler.inbox.writer import WriterClosed
from reconciler.ratelimit import ARRIVAL_JITTER, Priority
from reconciler.runtime import open_runtime
from tests.stripe_world import API_KEY, stripe_world

EVENT = NewEvent("evt_1", "platform", "charge.succeeded", False, None, 1, "{}")
closed: list[str] = []


@asynccontextmanager
async def tracked_applier(database: Database, settings: Settings) -> AsyncIterator[Applier]:
    """A `<module>:<factory>` applier that notes when it is closed, and what was open then."""

    async def applier(event: InboxEvent) -> None:
        return None

    try:
        yield applier
    finally:
        async with database.read() as conn:  # the database outlives the applier
            await conn.execute(text("SELECT 1"))
        closed.append("applier")


async def test_runtime_runs_the_inbox_and_closes_it_in_order(database_url: str) -> None:
    closed.clear()
    settings = Settings(database_url=database_url, inbox_applier=f"{__name__}:tracked_applier")
    async with open_runtime(settings) as runtime:
        assert runtime.worker is not None and runtime.settings is settings
        assert await runtime.inbox_writer.submit(EVENT) is True
        assert closed == []
    assert closed == ["applier"]
    with pytest.raises(WriterClosed):  # the writer takes no more rows
        await runtime.inbox_writer.submit(EVENT)


async def test_runtime_without_a_worker_only_takes_rows(database_url: str) -> None:
    settings = Settings(database_url=database_url, inbox_worker_enabled=False)
    async with open_runtime(settings) as runtime:
        assert runtime.worker is None
        assert await runtime.inbox_writer.submit(EVENT) is True


async def test_the_worker_calls_stripe_as_background_work(database_url: str) -> None:
    seen: list[Priority] = []

    async def applier(event: InboxEvent) -> None:
        seen.append(call_priority())

    settings = Settings(database_url=database_url)
    async with open_runtime(settings, applier=applier) as runtime:
        assert await runtime.inbox_writer.submit(EVENT) is True
        for _ in range(500):
            if seen:
                break
            await asyncio.sleep(0.01)
        assert call_priority() is Priority.USER  # the runtime's own caller is untouched
    assert seen == [Priority.BACKGROUND]


async def test_the_runtime_gateway_is_limited_as_the_settings_say(database_url: str) -> None:
    settings = Settings(database_url=database_url, inbox_worker_enabled=False)
    async with open_runtime(settings) as runtime:
        bucket = runtime.gateway.rate_limiter
        assert bucket is not None  # a test key: Stripe's test-mode 25 a second
        assert (bucket.burst, bucket.rate) == (1, pytest.approx(24 / (1 + ARRIVAL_JITTER)))
    off = Settings(database_url=database_url, inbox_worker_enabled=False, stripe_rate_limit=0)
    async with open_runtime(off) as runtime:
        assert runtime.gateway.rate_limiter is None


async def test_runtime_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")
    with pytest.raises(SchemaNotCurrent):
        async with open_runtime(settings):
            pass


async def test_open_applier_names_ledger_noop_or_a_factory() -> None:
    database = Database("sqlite+aiosqlite://")
    settings = Settings()

    @asynccontextmanager
    async def ledger(database: Database, settings: Settings) -> AsyncIterator[Applier]:
        yield noop_applier

    try:
        async with open_applier("noop", database, settings, ledger=ledger) as applier:
            assert applier is noop_applier
        async with open_applier("ledger", database, settings, ledger=ledger) as applier:
            assert applier is noop_applier
        with pytest.raises(ConfigError, match="ledger, noop or <module>:<factory>"):
            open_applier("nothing", database, settings, ledger=ledger)
        # `record:<file>` is gone from the service: it is a test seam now, loaded as a factory.
        for spec in ("record:/tmp/applied.txt", "tests.no_such_module:factory"):
            with pytest.raises(ConfigError, match="cannot import"):
                open_applier(spec, database, settings, ledger=ledger)
    finally:
        await database.dispose()


async def test_runtime_catch_up_stores_what_webhooks_missed_and_wakes_the_worker(
    database_url: str,
) -> None:
    applied: list[str] = []
    done = asyncio.Event()

    async def applier(event: InboxEvent) -> None:
        applied.append(event.event_type)
        done.set()

    async with stripe_world() as world:
        await world.client.v1.payment_intents.create_async(
            params={"amount": 1000, "currency": "usd", "payment_method_types": ["card"]}
        )
        settings = Settings(
            database_url=database_url,
            stripe_api_key=Secret(API_KEY),
            stripe_api_base=world.url,
            payout_executor_enabled=False,
        )
        async with open_runtime(settings, applier=applier) as runtime:
            now = datetime.fromtimestamp(world.sandbox.sandbox.clock.now(), UTC)
            assert await runtime.catch_up.run(now) == "platform: 1 new of 1 listed"
            # Woken, not polled: well inside the worker's poll interval.
            await asyncio.wait_for(done.wait(), POLL_INTERVAL_SECONDS / 2)
    assert applied == ["payment_intent.created"]
