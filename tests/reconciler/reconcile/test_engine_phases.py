"""The order of a run's phases, and its ledger checks read beside the walk: each list is
followed by the check for the ledger rows of its kind no page showed; the checks' reading is
used when its phase comes unless it failed, is too old, or a heal may have changed the
ledger under it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from reconciler.config import Secret, Settings
from reconciler.db.engine import Database
from reconciler.gateway import StripeGateway
from reconciler.ledger.payments import create_payment
from reconciler.ledger.session import ledger_session
from reconciler.money import FeeSchedule
from reconciler.reconcile import ledger_checks
from reconciler.reconcile.engine import PHASE_ORDER, PHASES, Reconciler
from reconciler.reconcile.progress import ProgressUpdate
from reconciler.reconcile.runs import interrupt_abandoned, save_progress, take_run
from reconciler.runtime import paths_context
from reconciler.types import utcnow
from tests.reconciler.reconcile.test_engine_limits import (
    intents,
    merchant,
    open_rows,
    queued,
    world,
)
from tests.stripe_world import API_KEY, StripeWorld

__all__ = ["world"]


class Clock:
    """The run's clock, moved on by hand."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


def engine(db: Database, gateway: StripeGateway, clock: Clock) -> Reconciler:
    settings = Settings(database_url=db.url, stripe_api_key=Secret(API_KEY))
    return Reconciler(
        db,
        gateway,
        paths_context(db, gateway, settings),
        stale_after=timedelta(minutes=15),
        clock=clock,
        page_size=2,
    )


def counted_journal_checks(monkeypatch: pytest.MonkeyPatch, *, failing: int = 0) -> list[int]:
    """Count the journal checks' readings (the first `failing` of them raise)."""
    readings: list[int] = []
    journal_checks = ledger_checks.journal_checks

    async def counted(*args: Any, **kwargs: Any) -> Any:
        readings.append(len(readings) + 1)
        if len(readings) <= failing:
            raise RuntimeError("the database went away")
        return await journal_checks(*args, **kwargs)

    monkeypatch.setattr(ledger_checks, "journal_checks", counted)
    return readings


async def test_each_list_is_followed_by_the_missing_check_of_its_kind(
    db: Database, world: StripeWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    await intents(world, await merchant(db), 3)
    readings = counted_journal_checks(monkeypatch)
    phases: list[str] = []

    def progress(update: ProgressUpdate) -> None:
        if not phases or phases[-1] != update.phase:
            phases.append(update.phase)

    run = await engine(db, world.gateway, Clock()).run(await queued(db), progress=progress)
    assert (run.status, run.examined, run.found) == ("succeeded", 3, 3), run.error
    assert (
        phases
        == list(PHASES)
        == [
            "payment_intents",
            "missing:payment",
            "refunds",
            "missing:refund",
            "transfers",
            "missing:payout",
            "accounts",
            "checks",
        ]
    )
    assert readings == [1]  # read once, beside the walk, and used


async def test_a_checks_reading_that_failed_is_read_again_in_its_turn(
    db: Database, world: StripeWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    await intents(world, await merchant(db), 3)
    readings = counted_journal_checks(monkeypatch, failing=1)
    run = await engine(db, world.gateway, Clock()).run(await queued(db))
    assert (run.status, run.found) == ("succeeded", 3), run.error
    assert readings == [1, 2]
    assert {kind for kind, _ in await open_rows(db)} == {"missing_in_ledger"}


async def test_a_checks_reading_older_than_a_minute_is_read_again(
    db: Database, world: StripeWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    await intents(world, await merchant(db), 3)
    readings = counted_journal_checks(monkeypatch)
    clock = Clock()
    reconciler = engine(db, world.gateway, clock)
    compare_page = reconciler._page

    async def slow_page(work: Any, stripe_list: Any, items: list[Any], resume: Any) -> None:
        clock.now += timedelta(seconds=31)  # two pages of intents: over a minute
        await compare_page(work, stripe_list, items, resume)

    monkeypatch.setattr(reconciler, "_page", slow_page)
    run = await reconciler.run(await queued(db))
    assert run.status == "succeeded", run.error
    assert readings == [1, 2]


async def test_a_heal_has_the_checks_read_again_after_it(
    db: Database, world: StripeWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    await intents(world, await merchant(db), 3)
    readings = counted_journal_checks(monkeypatch)
    run = await engine(db, world.gateway, Clock()).run(await queued(db, dry_run=False))
    assert (run.status, run.healed) == ("succeeded", 3), run.error
    assert readings == [1, 2]
    # The payments booked by the heal leave the merchant owed more than the platform holds
    # (Stripe kept its fees): only a reading after the heal can see it.
    assert await open_rows(db) == [("merchant_balances_exceed_platform", "usd")]


@pytest.mark.parametrize(
    ("resume_from", "missing_found"),
    [
        # Written before the lists came each before its missing check: those all still to do.
        ({"phase": "transfers", "after": None}, True),
        # Written in this order: the payments' missing check was done before the refunds.
        ({"phase": "transfers", "after": None, "order": PHASE_ORDER}, False),
    ],
)
async def test_a_run_interrupted_in_the_earlier_order_of_phases_still_does_each_check(
    db: Database, world: StripeWorld, resume_from: dict[str, Any], missing_found: bool
) -> None:
    merchant_id = await merchant(db)
    async with ledger_session(db) as tx:
        await create_payment(
            tx,
            merchant_id=merchant_id,
            amount=900,
            currency="usd",
            fees=FeeSchedule(),
            now=utcnow() - timedelta(days=1),
            payment_intent_id="pi_never_made",
        )
    run_id = await queued(db)
    async with db.write() as conn:
        assert await take_run(conn, run_id, utcnow())
        await save_progress(conn, run_id, examined=0, healed=0, found=0, resume_from=resume_from)
        await interrupt_abandoned(conn, ids=[run_id])
    run = await engine(db, world.gateway, Clock()).run(run_id)
    assert run.status == "succeeded", run.error
    missing = ("missing_at_stripe", "pi_never_made") in await open_rows(db)
    assert missing == missing_found
