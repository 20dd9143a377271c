"""The stale sweep, through the scheduler's job, against the sandbox: payouts and refunds a
crash left unsettled end as Stripe has them, each made once at Stripe."""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx
from sqlalchemy import select

from reconciler.db.tables import job_runs
from reconciler.ledger.payouts import advance_payout, reserve_payout
from reconciler.ledger.refunds import create_refund
from reconciler.ledger.rows import Payment, Payout, Refund
from reconciler.ledger.session import ledger_reader, ledger_session
from reconciler.paths.executor import transfer_metadata
from reconciler.types import utcnow
from tests.handlers.api.conftest import Api
from tests.handlers.api.test_payouts import balance, onboarded, pay, transfers

STALE = timedelta(hours=1)  # older than STALE_AFTER_SECONDS (15 minutes by default)


def sweep(api: Api, now: datetime) -> str:
    """Run the stale sweep job's tick at `now`; its run's outcome and detail."""

    async def tick() -> str:
        run_id = await api.runtime.scheduler.tick("stale_sweep", now)
        assert run_id is not None
        async with api.runtime.database.read() as conn:
            row = (await conn.execute(select(job_runs).where(job_runs.c.id == run_id))).one()
        return f"{row.outcome}: {row.detail}"

    result: str = api.run(tick)
    return result


def left_processing(api: Api, account: int, amount: int, made_at: datetime) -> Payout:
    async def reserve() -> Payout:
        async with ledger_session(api.runtime.database) as tx:
            payout_id = await reserve_payout(
                tx, merchant_id=account, amount=amount, currency="usd", now=made_at
            )
            await advance_payout(tx, payout_id, "processing", now=made_at)
        async with ledger_reader(api.runtime.database) as tx:
            return await tx.get(Payout, payout_id)

    payout: Payout = api.run(reserve)
    return payout


def payout_state(api: Api, payout_id: int) -> tuple[str, str | None]:
    async def read() -> tuple[str, str | None]:
        async with ledger_reader(api.runtime.database) as tx:
            payout = await tx.get(Payout, payout_id)
        return payout.status, payout.stripe_transfer_id

    state: tuple[str, str | None] = api.run(read)
    return state


def test_a_payout_whose_process_died_after_the_transfer_ends_with_that_one(api: Api) -> None:
    account, stripe_account = onboarded(api)
    pay(api, account, 10000)
    now = utcnow()
    payout = left_processing(api, account, 3000, now - STALE)
    # The crash: Stripe made the transfer under the payout's key; the row never heard.
    assert payout.destination == stripe_account
    made = api.stripe.v1.transfers.create(
        params={
            "amount": 3000,
            "currency": "usd",
            "destination": stripe_account,
            "metadata": transfer_metadata(payout),
        },
        options={"idempotency_key": f"payout:{payout.id}"},
    )
    fresh = left_processing(api, account, 1000, now - timedelta(minutes=1))

    assert sweep(api, now) == "succeeded: 1 payouts, 0 refunds read again from Stripe"
    assert payout_state(api, payout.id) == ("completed", made.id)
    assert payout_state(api, fresh.id) == ("processing", None)  # not stale yet: left alone
    # Run again (a later tick, or another instance): nothing changes, nothing is made.
    assert sweep(api, now + timedelta(minutes=10)).startswith("succeeded: 0 payouts")
    assert [transfer.id for transfer in transfers(api, stripe_account)] == [made.id]
    assert balance(api, account) == 6000  # both payouts still count against the merchant


def test_a_stale_payout_stripe_never_made_is_made_once(api: Api) -> None:
    account, stripe_account = onboarded(api)
    pay(api, account, 10000)
    now = utcnow()
    payout = left_processing(api, account, 2500, now - STALE)  # died before calling Stripe

    assert sweep(api, now).startswith("succeeded: 1 payouts")
    status, transfer_id = payout_state(api, payout.id)
    assert status == "completed"
    assert sweep(api, now + timedelta(minutes=10)).startswith("succeeded: 0 payouts")
    assert [transfer.id for transfer in transfers(api, stripe_account)] == [transfer_id]
    assert balance(api, account) == 7500


def test_a_stale_pending_refund_is_read_again_and_applied(api: Api) -> None:
    account, _ = onboarded(api)
    payment_id = pay(api, account, 10000)
    pay(api, account, 10000)  # the platform holds enough to refund
    now = utcnow()

    async def pending_refund() -> tuple[int, Payment]:
        async with ledger_session(api.runtime.database) as tx:
            refund_id = await create_refund(tx, payment_id=payment_id, amount=2500, now=now - STALE)
            return refund_id, await tx.get(Payment, payment_id)

    refund_id, payment = api.run(pending_refund)
    # The crash: Stripe made the refund under its key; ICPay never heard the answer.
    made = api.stripe.v1.refunds.create(
        params={
            "payment_intent": payment.payment_intent_id or "",
            "amount": 2500,
            "metadata": {"icpay_refund_id": str(refund_id), "icpay_payment_id": str(payment_id)},
        },
        options={"idempotency_key": f"refund:{refund_id}"},
    )

    assert sweep(api, now) == "succeeded: 0 payouts, 1 refunds read again from Stripe"

    async def refund_state() -> tuple[str, str | None, str]:
        async with ledger_reader(api.runtime.database) as tx:
            refund = await tx.get(Refund, refund_id)
            paid = await tx.get(Payment, payment_id)
        return refund.status, refund.stripe_refund_id, paid.status

    assert api.run(refund_state) == ("succeeded", made.id, "partially_refunded")
    assert sweep(api, now + timedelta(minutes=10)).startswith("succeeded: 0 payouts, 0 refunds")
    charge = payment.charge_id or ""
    assert [r.id for r in api.stripe.v1.refunds.list(params={"charge": charge}).data] == [made.id]
    assert balance(api, account) == 17500


def test_a_sweep_that_cannot_reach_stripe_is_a_failed_run(api: Api) -> None:
    account, _ = onboarded(api)
    pay(api, account, 10000)
    now = utcnow()
    payout = left_processing(api, account, 2500, now - STALE)
    httpx.post(
        f"{api.sandbox_url}/_sandbox/faults/api",
        json={"kind": "server_error", "count": 20, "path": "/v1/transfers", "method": "GET"},
    ).raise_for_status()
    outcome = sweep(api, now)
    assert outcome.startswith("failed: SweepIncomplete: 0 payouts"), outcome
    assert f"payout {payout.id}:" in outcome
    assert payout_state(api, payout.id) == ("processing", None)
