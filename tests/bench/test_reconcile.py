"""The reconcile benchmark's seed is faithful: the books it makes agree with the Stripe it
makes, so a full run finds nothing and examines every object; and the bench sandbox counts
the calls and lists the run made."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from bench._reconcile_sandbox import create_bench_app, route_of
from bench._reconcile_seed import PLATFORM_FEE_FIXED, PLATFORM_FEE_PERCENT, Seeder
from bench.reconcile import API_KEY
from reconciler.config import Secret, Settings
from reconciler.db.engine import Database
from reconciler.db.tables import discrepancies, payments, payouts, refunds
from reconciler.gateway import StripeGateway
from reconciler.ledger.balances import check_balance_invariant
from reconciler.reconcile.engine import Reconciler
from reconciler.reconcile.runs import queue_run
from reconciler.reconcile.scope import Scope
from reconciler.runtime import paths_context
from reconciler.types import utcnow
from stripe_sandbox.server import ServerThread

PAYMENTS = 300


@pytest.fixture
def sandbox() -> Iterator[str]:
    server = ServerThread()
    server.start(create_bench_app(seed=5))  # type: ignore[arg-type]
    yield server.url
    server.stop()


async def grouped(db: Database, column: Any) -> Counter[str]:
    async with db.read() as conn:
        rows = await conn.execute(select(column, func.count()).group_by(column))
        return Counter({str(value): int(n) for value, n in rows})


def test_calls_are_counted_by_route() -> None:
    assert route_of("/v1/charges") == "/v1/charges"
    assert route_of("/v1/charges/ch_123") == "/v1/charges/{id}"
    assert route_of("/v1/transfers/tr_1/reversals") == "/v1/transfers/{id}/reversals"
    assert route_of("/v1/balance_transactions") == "/v1/balance_transactions"


async def test_the_seeded_books_agree_with_stripe(db: Database, sandbox: str) -> None:
    gateway = StripeGateway(Secret(API_KEY), sandbox)
    try:
        async with httpx.AsyncClient(base_url=sandbox) as client:
            seeded = await Seeder(db, client, gateway, API_KEY).run(PAYMENTS)
            (await client.post("/_bench/counts/reset")).raise_for_status()
            settings = Settings(
                database_url="unused",
                stripe_api_key=Secret(API_KEY),
                platform_fee_percent=PLATFORM_FEE_PERCENT,
                platform_fee_fixed=PLATFORM_FEE_FIXED,
            )
            reconciler = Reconciler(
                db, gateway, paths_context(db, gateway, settings), stale_after=timedelta(hours=1)
            )
            async with db.write() as conn:
                run_id = await queue_run(
                    conn, Scope(), dry_run=True, started_by="test", now=utcnow()
                )
            run = await reconciler.run(run_id)
            counted = (await client.get("/_bench/counts")).json()
    finally:
        await gateway.aclose()

    held = seeded.stripe_objects
    assert (seeded.payments, seeded.declined, seeded.merchants) == (PAYMENTS, 6, 2)
    assert (seeded.refunds, seeded.dashboard_refunds) == (30, 10)
    assert seeded.payouts == held["transfer"] > 0 and seeded.reversals == held["transfer_reversal"]
    assert (held["payment_intent"], held["charge"], held["refund"]) == (PAYMENTS, PAYMENTS, 30)
    # Every paid payment, every refund (ICPay's and the Dashboard's), every payout is booked.
    statuses = await grouped(db, payments.c.status)
    assert statuses["succeeded"] + statuses["partially_refunded"] + statuses["refunded"] == 294
    assert statuses["partially_refunded"] == 15 and statuses["refunded"] == 15
    assert await grouped(db, refunds.c.source) == Counter(api=20, dashboard=10)
    assert await grouped(db, refunds.c.status) == Counter(succeeded=30)
    payout_statuses = await grouped(db, payouts.c.status)
    assert payout_statuses == Counter(
        completed=seeded.payouts - seeded.reversals, amount_reversed=seeded.reversals
    )
    async with db.read() as conn:
        assert await check_balance_invariant(conn) == []
        found = list(await conn.execute(select(discrepancies.c.kind, discrepancies.c.detail)))
    # The books agree with Stripe: a full run finds nothing, having examined every object.
    assert run.status == "succeeded", run.error
    assert found == [] and run.found == 0
    assert run.examined == (
        held["payment_intent"] + held["refund"] + held["transfer"] + held["account"]
    )
    # The sandbox saw the run's calls, and kept each list's query for the list rate.
    assert counted["counts"]["GET /v1/payment_intents"] == 3
    assert "limit=100" in counted["lists"]["/v1/payment_intents"]
    assert "starting_after" not in counted["lists"]["/v1/payment_intents"]
