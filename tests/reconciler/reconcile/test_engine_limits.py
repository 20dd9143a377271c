"""A reconcile run against the sandbox on its own gateway: interrupted after some pages it goes
on from its last page to the same result; at a 25/s limit it never sends more than 25
requests in any second; injected 429s with Retry-After are waited out, not hammered."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from reconciler.config import Secret, Settings
from reconciler.db.engine import Database
from reconciler.db.tables import discrepancies
from reconciler.gateway import RetryPolicy, StripeGateway
from reconciler.ledger.merchants import create_merchant
from reconciler.ledger.session import ledger_session
from reconciler.ratelimit import TokenBucket
from reconciler.reconcile.engine import Reconciler
from reconciler.reconcile.progress import ProgressUpdate
from reconciler.reconcile.runs import ReconcileRun, get_run, queue_run
from reconciler.reconcile.scope import Scope
from reconciler.runtime import paths_context
from reconciler.types import utcnow
from tests.reconciler.test_gateway_rate_limit import arrivals, busiest_second
from tests.stripe_world import API_KEY, START, StripeWorld, stripe_world


@pytest.fixture
async def world() -> Any:
    async with stripe_world() as running:
        yield running


def engine(db: Database, gateway: StripeGateway, *, page_size: int) -> Reconciler:
    settings = Settings(database_url=db.url, stripe_api_key=Secret(API_KEY))
    return Reconciler(
        db,
        gateway,
        paths_context(db, gateway, settings),
        stale_after=timedelta(minutes=15),
        page_size=page_size,
    )


async def merchant(db: Database) -> int:
    async with ledger_session(db) as tx:
        return await create_merchant(tx, name="Acme", now=utcnow())


async def intents(world: StripeWorld, merchant_id: int | None, count: int) -> None:
    """`count` payments made at Stripe that the ledger never heard of."""
    pending = iter(range(count))

    async def make() -> None:
        for _ in pending:
            if merchant_id is None:
                await world.pay(0, 1000, "pm_card_bypassPending", metadata={})
            else:
                await world.pay(merchant_id, 1000, "pm_card_bypassPending")

    await asyncio.gather(*(make() for _ in range(8)))


async def queued(db: Database, *, dry_run: bool = True) -> int:
    async with db.write() as conn:
        return await queue_run(conn, Scope(), dry_run=dry_run, started_by="test", now=utcnow())


async def open_rows(db: Database) -> list[tuple[str, str]]:
    async with db.read() as conn:
        rows = await conn.execute(
            select(discrepancies.c.kind, discrepancies.c.object_id)
            .where(discrepancies.c.status == "open")
            .order_by(discrepancies.c.object_id)
        )
        return [(kind, object_id) for kind, object_id in rows]


async def test_an_interrupted_run_resumes_from_its_last_page_to_the_same_result(
    db: Database, world: StripeWorld
) -> None:
    merchant_id = await merchant(db)
    await intents(world, merchant_id, 9)
    reconciler = engine(db, world.gateway, page_size=2)

    whole = await reconciler.run(await queued(db))
    found_whole = await open_rows(db)
    assert (whole.examined, whole.found) == (9, 9), (whole.status, whole.error)
    assert {kind for kind, _ in found_whole} == {"missing_in_ledger"}
    async with db.write() as conn:  # forget them, so the second run finds them anew
        await conn.execute(update(discrepancies).values(status="dismissed"))

    run_id = await queued(db)
    pages: list[ProgressUpdate] = []
    task: asyncio.Task[ReconcileRun] | None = None

    def cut_after_two_pages(update: ProgressUpdate) -> None:
        pages.append(update)
        if len(pages) == 2 and task is not None:
            task.cancel()

    task = asyncio.create_task(reconciler.run(run_id, progress=cut_after_two_pages))
    with pytest.raises(asyncio.CancelledError):
        await task
    async with db.read() as conn:
        cut = await get_run(conn, run_id)
    assert cut is not None and cut.status == "interrupted"
    assert cut.examined == 4 and cut.resume_from is not None
    assert cut.resume_from["phase"] == "payment_intents"
    newest_first = (await world.client.v1.payment_intents.list_async(params={"limit": 4})).data
    assert cut.resume_from["after"] == newest_first[-1].id

    await world.control.delete("/_sandbox/requests")
    resumed = await reconciler.run(run_id)
    listed = [e for e in await arrivals(world) if e["path"] == "/v1/payment_intents"]
    assert len(listed) == 3  # the pages after the fourth intent: 2 + 2 + 1, none again
    assert (resumed.status, resumed.examined, resumed.found) == ("succeeded", 9, 9)
    assert await open_rows(db) == found_whole


async def test_the_next_lists_first_page_is_asked_for_while_the_last_page_is_worked_on(
    db: Database, world: StripeWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the last page of the intents is compared, the refunds' first page is on its way:
    the comparing of that page waits here until the sandbox has the refunds request, which
    (if it were asked for only once the intents were done) would never come."""
    merchant_id = await merchant(db)
    await intents(world, merchant_id, 3)
    reconciler = engine(db, world.gateway, page_size=2)
    compare_page = reconciler._page
    waited: list[tuple[int, list[str]]] = []

    async def paths() -> list[str]:
        return [entry["path"] for entry in await arrivals(world)]

    async def page_waiting_for_the_next_list(
        work: Any, stripe_list: Any, items: list[Any], resume: Any
    ) -> None:
        if stripe_list.phase == "payment_intents" and resume is None:  # its last page
            for _ in range(500):  # the sandbox's request log, read until it shows up (5 s)
                if "/v1/refunds" in (asked := await paths()):
                    break
                await asyncio.sleep(0.01)
            waited.append((len(items), asked))
        await compare_page(work, stripe_list, items, resume)

    monkeypatch.setattr(reconciler, "_page", page_waiting_for_the_next_list)
    await world.control.delete("/_sandbox/requests")
    run = await reconciler.run(await queued(db))
    assert (run.status, run.examined, run.found) == ("succeeded", 3, 3), run.error
    [(last_page, asked)] = waited
    assert last_page == 1 and "/v1/refunds" in asked
    assert asked.count("/v1/payment_intents") == 2  # and nothing of the lists after refunds
    assert "/v1/transfers" not in asked
    listed = [path for path in await paths() if path.startswith("/v1/") and path != "/v1/balance"]
    assert listed == [
        "/v1/payment_intents",
        "/v1/payment_intents",
        "/v1/refunds",
        "/v1/transfers",
        "/v1/accounts",
    ]


async def test_a_reconcile_of_a_thousand_objects_keeps_to_25_requests_a_second(
    db: Database, world: StripeWorld
) -> None:
    await intents(world, None, 1000)  # no ICPay metadata: each one is unattributed
    gateway = StripeGateway(Secret(API_KEY), world.url, limiter=TokenBucket.for_limit(25))
    # Pages of 10, so the run makes over a hundred calls, enough to meet the limit.
    reconciler = engine(db, gateway, page_size=10)
    await world.control.delete("/_sandbox/requests")
    try:
        run = await reconciler.run(await queued(db))
    finally:
        await gateway.aclose()
    assert (run.status, run.examined, run.found) == ("succeeded", 1000, 1000)
    logged = await arrivals(world)
    assert len(logged) > 100 and {entry["status"] for entry in logged} == {200}
    # Never over the limit. (How close to it depends on how fast the database takes each
    # page's writes: the gateway's own test shows the limiter reaching it.)
    assert busiest_second([entry["at"] for entry in logged]) <= 25


async def test_injected_429s_are_waited_out_not_hammered(db: Database, world: StripeWorld) -> None:
    merchant_id = await merchant(db)
    await intents(world, merchant_id, 3)
    gateway = StripeGateway(
        Secret(API_KEY),
        world.url,
        limiter=TokenBucket.for_limit(25),
        retry=RetryPolicy(attempts=5),
    )
    await world.control_post(
        "faults/api", {"kind": "rate_limit", "count": 3, "seconds": 1, "path": "/v1/refunds"}
    )
    await world.control.delete("/_sandbox/requests")
    try:
        run = await engine(db, gateway, page_size=100).run(await queued(db))
    finally:
        await gateway.aclose()
    assert (run.status, run.found) == ("succeeded", 3)
    logged = await arrivals(world)
    refunds = [e for e in logged if e["path"] == "/v1/refunds"]
    assert [e["status"] for e in refunds] == [429, 429, 429, 200]
    times = [e["at"] for e in refunds]
    assert all(later - earlier >= 1.0 for earlier, later in itertools.pairwise(times))
    # While Stripe said to wait (Retry-After: 1 s), nothing else was sent either: the run's
    # other calls (the balance, read beside the walk) wait it out too. A call already on its
    # way when the 429 came back cannot be held: 50 ms of grace.
    others = [e["at"] for e in logged if e not in refunds]
    assert not [at for at in others for held in times[:-1] if held + 0.05 <= at < held + 1.0]
    assert "/v1/balance" in {e["path"] for e in logged}


async def test_runs_started_in_the_background_end_interrupted_when_the_engine_closes(
    db: Database, world: StripeWorld
) -> None:
    merchant_id = await merchant(db)
    await intents(world, merchant_id, 9)
    gateway = StripeGateway(
        Secret(API_KEY), world.url, limiter=TokenBucket(rate=5, burst=1)
    )  # slow enough to be caught halfway
    reconciler = engine(db, gateway, page_size=2)
    try:
        run_id = await queued(db)
        reconciler.start(run_id)
        await asyncio.sleep(0.7)
        await reconciler.aclose()
        async with db.read() as conn:
            stopped = await get_run(conn, run_id)
        assert stopped is not None and stopped.status == "interrupted"
        assert stopped.resume_from is not None and 0 < stopped.examined < 9
        finished = await reconciler.run(run_id)
    finally:
        await gateway.aclose()
    assert (finished.status, finished.examined, finished.found) == ("succeeded", 9, 9)


async def test_a_window_lists_only_what_stripe_made_in_it_and_a_merchant_only_its_own(
    db: Database, world: StripeWorld
) -> None:
    acme, other = await merchant(db), await merchant(db)
    await intents(world, acme, 3)
    await intents(world, other, 2)
    reconciler = engine(db, world.gateway, page_size=100)

    async def run(scope: Scope) -> ReconcileRun:
        async with db.write() as conn:
            run_id = await queue_run(conn, scope, dry_run=True, started_by="test", now=utcnow())
        return await reconciler.run(run_id)

    made = datetime.fromtimestamp(START, UTC)  # the sandbox's clock stands still there
    before = await run(Scope(since=made - timedelta(hours=1), until=made))
    assert (before.status, before.examined, before.found) == ("succeeded", 0, 0)
    during = await run(Scope(since=made, until=made + timedelta(seconds=1)))
    assert (during.examined, during.found) == (5, 5)
    own = await run(Scope(account_id=acme))
    assert (own.examined, own.found) == (3, 3)
    async with db.read() as conn:
        rows = await conn.execute(
            select(discrepancies.c.merchant_id, discrepancies.c.last_run_id).where(
                discrepancies.c.status == "open"
            )
        )
        assert sorted(rows) == [(acme, own.id)] * 3 + [(other, during.id)] * 2
