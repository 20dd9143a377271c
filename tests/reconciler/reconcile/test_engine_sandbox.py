"""Reconcile runs against the sandbox, through the service's runtime: planted differences are
found by a dry run with the right kind, healed or left open as the rules say, never
duplicated, and cleared once fixed. In this fixture no webhook endpoint is registered, so
what happens at Stripe reaches the ledger only as the test applies it (as if every delivery
were dropped)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from reconciler.db.tables import discrepancies, job_runs, payments, reconcile_seen, refunds
from reconciler.gateway import StripeNotFound
from reconciler.ledger.payments import create_payment
from reconciler.ledger.payouts import advance_payout, reserve_payout
from reconciler.ledger.session import ledger_session
from reconciler.money import FeeSchedule
from reconciler.reconcile.runs import (
    ReconcileRun,
    interrupt_abandoned,
    list_runs,
    queue_run,
    take_run,
)
from reconciler.reconcile.scope import Scope
from reconciler.types import utcnow
from tests.handlers.api.conftest import Api
from tests.handlers.api.test_payouts import onboarded, pay, payout

Row = tuple[str, str, str]


def reconcile(api: Api, *, dry_run: bool, scope: Scope | None = None) -> ReconcileRun:
    async def go() -> ReconcileRun:
        async with api.runtime.database.write() as conn:
            run_id = await queue_run(
                conn, scope or Scope(), dry_run=dry_run, started_by="test", now=utcnow()
            )
        return await api.runtime.reconciler.run(run_id)

    run: ReconcileRun = api.run(go)
    assert run.status == "succeeded", run.error
    return run


def discrepancy_rows(api: Api) -> list[Any]:
    async def read() -> list[Any]:
        async with api.runtime.database.read() as conn:
            return list(await conn.execute(select(discrepancies).order_by(discrepancies.c.id)))

    rows: list[Any] = api.run(read)
    return rows


def open_ones(api: Api) -> set[Row]:
    return {
        (row.kind, row.object_type, row.object_id)
        for row in discrepancy_rows(api)
        if row.status == "open"
    }


def execute(api: Api, statement: Any) -> None:
    async def run() -> None:
        async with api.runtime.database.write() as conn:
            await conn.execute(statement)

    api.run(run)


def payment_row(api: Api, payment_id: int) -> Any:
    async def read() -> Any:
        async with api.runtime.database.read() as conn:
            return (await conn.execute(select(payments).where(payments.c.id == payment_id))).one()

    return api.run(read)


def sandbox_post(api: Api, path: str, body: dict[str, Any]) -> Any:
    response = httpx.post(f"{api.sandbox_url}/_sandbox/{path}", json=body)
    response.raise_for_status()
    return response.json()


def test_planted_differences_are_found_healed_or_left_open_and_cleared_once_fixed(
    api: Api,
) -> None:
    account, stripe_account = onboarded(api)
    edited = pay(api, account, 10000)
    refunded = pay(api, account, 6000)
    misfeed = pay(api, account, 4000)
    status, made = payout(api, api.token("operator"), account, 3000, "po-1")
    assert status == 201 and made["status"] == "completed", made
    # Stripe's fees leave the platform holding less than merchants are owed: cover that, so
    # only what is planted differs.
    sandbox_post(api, "balance/top_up", {"amount": 100000, "currency": "usd"})
    assert reconcile(api, dry_run=True).found == 0

    # 1. A ledger row edited behind the service's back.
    execute(api, update(payments).where(payments.c.id == edited).values(status="processing"))
    # 2. A PaymentIntent made at Stripe with no ICPay metadata.
    foreign = api.stripe.v1.payment_intents.create(
        params={
            "amount": 1500,
            "currency": "usd",
            "payment_method": "pm_card_bypassPending",
            "payment_method_types": ["card"],
            "confirm": True,
        }
    )
    # 3. A refund made in the Dashboard, which the ledger never heard of.
    refund = sandbox_post(
        api,
        "dashboard/refunds",
        {"payment_intent": payment_row(api, refunded).payment_intent_id, "amount": 1000},
    )
    # 4. A transfer to the merchant's account made outside ICPay.
    outside = api.stripe.v1.transfers.create(
        params={"amount": 700, "currency": "usd", "destination": stripe_account}
    )
    # 5. Stripe's fee booked wrong.
    wrong = payment_row(api, misfeed)
    execute(
        api,
        update(payments).where(payments.c.id == misfeed).values(stripe_fee=wrong.stripe_fee + 25),
    )

    dry = reconcile(api, dry_run=True)
    charge = wrong.charge_id
    planted = {
        ("status_mismatch", "payment_intent", payment_row(api, edited).payment_intent_id),
        ("journal_invariant_broken", "merchant", str(account)),
        ("unattributed_object", "payment_intent", foreign.id),
        ("missing_in_ledger", "refund", refund["id"]),
        ("unattributed_object", "transfer", outside.id),
        ("fee_mismatch", "charge", charge),
    }
    assert open_ones(api) == planted
    assert (dry.found, dry.healed) == (6, 0)
    assert payment_row(api, edited).status == "processing"  # a dry run only reports
    by_kind = {row.kind: row for row in discrepancy_rows(api)}
    assert by_kind["fee_mismatch"].ledger_value["stripe_fee"] == wrong.stripe_fee + 25
    assert by_kind["fee_mismatch"].stripe_value["fee"] == wrong.stripe_fee
    assert {(row.first_run_id, row.last_run_id) for row in discrepancy_rows(api)} == {
        (dry.id, dry.id)
    }

    heal = reconcile(api, dry_run=False)
    left_open = {
        ("unattributed_object", "payment_intent", foreign.id),
        ("unattributed_object", "transfer", outside.id),
        ("fee_mismatch", "charge", charge),
    }
    assert open_ones(api) == left_open
    assert payment_row(api, edited).status == "succeeded"
    assert payment_row(api, refunded).amount_refunded == 1000
    ended = {
        (row.kind, row.resolved_how, row.resolved_run_id)
        for row in discrepancy_rows(api)
        if row.status == "resolved"
    }
    assert ended == {
        ("status_mismatch", "healed", heal.id),
        ("missing_in_ledger", "healed", heal.id),
        # The journal agrees again once the status is healed: no longer seen, cleared.
        ("journal_invariant_broken", "cleared", heal.id),
    }
    assert (heal.found, heal.healed) == (5, 2)

    # Seen again: the same rows, brought up to date, never a second one.
    count = len(discrepancy_rows(api))
    again = reconcile(api, dry_run=False)
    assert len(discrepancy_rows(api)) == count
    assert (again.found, again.healed) == (3, 0)
    assert {row.last_run_id for row in discrepancy_rows(api) if row.status == "open"} == {again.id}
    assert {row.first_run_id for row in discrepancy_rows(api) if row.status == "open"} == {dry.id}

    # Someone books the fee right: the next run no longer sees it and clears it.
    execute(
        api, update(payments).where(payments.c.id == misfeed).values(stripe_fee=wrong.stripe_fee)
    )
    last = reconcile(api, dry_run=True)
    assert open_ones(api) == left_open - {("fee_mismatch", "charge", charge)}
    [fee] = [row for row in discrepancy_rows(api) if row.kind == "fee_mismatch"]
    assert (fee.status, fee.resolved_how, fee.resolved_run_id) == ("resolved", "cleared", last.id)

    async def scratch() -> int:
        async with api.runtime.database.read() as conn:
            return int(
                (await conn.execute(select(func.count()).select_from(reconcile_seen))).scalar_one()
            )

    assert api.run(scratch) == 0  # each run's list of ids seen goes with it


def test_a_ledger_row_whose_stripe_object_does_not_exist_is_missing_at_stripe(api: Api) -> None:
    account, _ = onboarded(api)
    pay(api, account, 2000)
    sandbox_post(api, "balance/top_up", {"amount": 10000, "currency": "usd"})
    old = utcnow() - timedelta(days=1)

    async def plant() -> int:
        async with ledger_session(api.runtime.database) as tx:
            return await create_payment(
                tx,
                merchant_id=account,
                amount=900,
                currency="usd",
                fees=FeeSchedule(),
                now=old,
                payment_intent_id="pi_never_made",
            )

    api.run(plant)
    run = reconcile(api, dry_run=False)
    assert open_ones(api) == {("missing_at_stripe", "payment_intent", "pi_never_made")}
    assert run.found == 1

    one = reconcile(api, dry_run=True, scope=Scope(object_id="pi_never_made"))
    assert (one.examined, one.found) == (0, 1)
    assert open_ones(api) == {("missing_at_stripe", "payment_intent", "pi_never_made")}


def test_the_nightly_job_resumes_an_interrupted_run_then_heals_everything(
    worker_api: Api,
) -> None:
    api = worker_api
    account, _ = onboarded(api)
    pay(api, account, 2000)
    sandbox_post(api, "balance/top_up", {"amount": 10000, "currency": "usd"})

    async def interrupted() -> int:
        async with api.runtime.database.write() as conn:
            run_id = await queue_run(
                conn, Scope(account_id=account), dry_run=True, started_by="ops", now=utcnow()
            )
            assert await take_run(conn, run_id, utcnow())
            await interrupt_abandoned(conn, ids=[run_id])
        return run_id

    left: int = api.run(interrupted)
    [job] = [job for job in api.runtime.scheduler.jobs if job.name == "reconcile"]
    assert job.schedule == "cron 0 3 * * * UTC"

    async def tick() -> tuple[Any, list[ReconcileRun]]:
        job_run = await api.runtime.scheduler.tick("reconcile", utcnow())
        async with api.runtime.database.read() as conn:
            outcome = (await conn.execute(select(job_runs).where(job_runs.c.id == job_run))).one()
            runs, _ = await list_runs(conn, limit=10)
        return outcome, runs

    outcome, runs = api.run(tick)
    assert outcome.outcome == "succeeded", outcome.detail
    nightly, resumed = runs
    # The merchant's payment intent and its connected account.
    assert (resumed.id, resumed.status, resumed.examined) == (left, "succeeded", 2)
    assert (nightly.started_by, nightly.dry_run, nightly.scope, nightly.status) == (
        "scheduler",
        False,
        Scope(),
        "succeeded",
    )
    assert outcome.detail == (
        f"run {nightly.id}: {nightly.examined} examined, 0 found, 0 healed; resumed 1 interrupted"
    )


def test_the_nightly_job_takes_up_runs_a_dead_process_left_and_leaves_live_ones(
    worker_api: Api,
) -> None:
    api = worker_api
    account, _ = onboarded(api)
    pay(api, account, 2000)
    sandbox_post(api, "balance/top_up", {"amount": 10000, "currency": "usd"})
    now = utcnow()
    long_ago = now - timedelta(minutes=30)

    async def left_behind() -> tuple[int, int, int]:
        async with api.runtime.database.write() as conn:
            scope = Scope(account_id=account)
            # Killed mid-run: running, its heartbeat silent for half an hour.
            dead = await queue_run(conn, scope, dry_run=True, started_by="ops", now=long_ago)
            assert await take_run(conn, dead, long_ago)
            # Queued by a process that died before starting it.
            orphan = await queue_run(conn, scope, dry_run=True, started_by="ops", now=long_ago)
            # Going on in another instance: its heartbeat is fresh.
            live = await queue_run(conn, scope, dry_run=True, started_by="ops", now=long_ago)
            assert await take_run(conn, live, now)
        return dead, orphan, live

    dead, orphan, live = api.run(left_behind)

    async def tick() -> dict[int, str]:
        assert await api.runtime.scheduler.tick("reconcile", now) is not None
        async with api.runtime.database.read() as conn:
            runs, _ = await list_runs(conn, limit=10)
        return {run.id: run.status for run in runs}

    statuses = api.run(tick)
    assert (statuses[dead], statuses[orphan], statuses[live]) == (
        "succeeded",
        "succeeded",
        "running",
    )


def test_fees_leave_the_platform_short_and_a_payout_left_waiting_is_stuck(api: Api) -> None:
    account, _ = onboarded(api)
    paid = pay(api, account, 10000)
    fee = payment_row(api, paid).stripe_fee
    made = utcnow() - timedelta(hours=1)

    async def left_waiting() -> int:
        async with ledger_session(api.runtime.database) as tx:
            payout_id = await reserve_payout(
                tx, merchant_id=account, amount=1000, currency="usd", now=made
            )
            await advance_payout(tx, payout_id, "processing", now=made)
        return payout_id

    payout_id = api.run(left_waiting)
    run = reconcile(api, dry_run=True)
    assert open_ones(api) == {
        ("merchant_balances_exceed_platform", "platform", "usd"),
        ("payout_stuck_pending", "payout", str(payout_id)),
    }
    [short] = [row for row in discrepancy_rows(api) if row.object_type == "platform"]
    # Owed: the payment (what the merchant has, and the payout on its way: not yet sent);
    # held: the payment less Stripe's fee.
    assert (short.ledger_value, short.stripe_value) == ({"owed": 10000}, {"held": 10000 - fee})
    assert run.found == 2


def test_a_converted_refund_booked_other_than_stripe_took_it_is_found_by_its_transaction(
    api: Api,
) -> None:
    account, _ = onboarded(api)
    intent = api.stripe.v1.payment_intents.create(
        params={
            "amount": 10000,
            "currency": "eur",
            "payment_method": "pm_card_bypassPending",
            "payment_method_types": ["card"],
            "confirm": True,
            "metadata": {"icpay_account_id": str(account)},
        }
    )
    sandbox_post(api, "balance/top_up", {"amount": 100000, "currency": "usd"})
    sandbox_post(api, "dashboard/refunds", {"payment_intent": intent.id, "amount": 2500})
    reconcile(api, dry_run=False)  # books the payment and the refund as Stripe settled them
    [refund] = api.stripe.v1.refunds.list(params={"expand": ["data.balance_transaction"]}).data
    took = -refund.balance_transaction.amount
    assert (refund.currency, took) != ("usd", refund.amount)  # converted: 25.00 EUR in USD
    assert reconcile(api, dry_run=True).found == 0
    # Applying reported both as converted (not a run's finding: no run clears them).
    converted = {("unsupported_currency", "payment_intent", intent.id)}
    converted.add(("unsupported_currency", "refund", refund.id))
    assert open_ones(api) == converted

    execute(
        api, update(refunds).where(refunds.c.stripe_refund_id == refund.id).values(amount=took + 9)
    )
    found = ("amount_mismatch", "balance_transaction", refund.balance_transaction.id)
    assert reconcile(api, dry_run=True).found == 2
    # (The row no longer agrees with its journal entry either.)
    broken = ("journal_invariant_broken", "merchant", str(account))
    assert open_ones(api) == converted | {found, broken}
    [row] = [row for row in discrepancy_rows(api) if row.kind == found[0]]
    assert (row.merchant_id, row.ledger_value, row.stripe_value["amount"]) == (
        account,
        {"amount": -(took + 9), "currency": "usd"},
        -took,
    )
    # A run of that one refund sees it too (its balance transaction expanded as in the list).
    one = reconcile(api, dry_run=True, scope=Scope(object_id=refund.id))
    assert (one.found, row.last_run_id) == (1, one.id - 1)
    [row] = [row for row in discrepancy_rows(api) if row.kind == found[0]]
    assert row.last_run_id == one.id

    execute(api, update(refunds).where(refunds.c.stripe_refund_id == refund.id).values(amount=took))
    cleared = reconcile(api, dry_run=True)
    assert open_ones(api) == converted
    assert [
        (r.resolved_how, r.resolved_run_id) for r in discrepancy_rows(api) if r.kind == found[0]
    ] == [("cleared", cleared.id)]


def test_a_charge_whose_payment_intent_stripe_lacks_names_the_intent_not_the_charge(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    account, _ = onboarded(api)
    row = payment_row(api, pay(api, account, 2000))
    gateway = api.runtime.reconciler._gateway
    retrieve = gateway.retrieve

    async def intent_gone(resource: str, object_id: str, **kwargs: Any) -> Any:
        if resource == "payment_intents":
            raise StripeNotFound(f"No such payment_intent: '{object_id}'", retryable=False)
        return await retrieve(resource, object_id, **kwargs)

    monkeypatch.setattr(gateway, "retrieve", intent_gone)
    run = reconcile(api, dry_run=True, scope=Scope(object_id=row.charge_id))
    assert run.found == 1
    assert open_ones(api) == {("missing_at_stripe", "payment_intent", row.payment_intent_id)}
