"""A full reconcile run of 10k and of 100k payments against the sandbox, the limiter off.

    python -m bench.reconcile [--sizes 10000,100000] [--database sqlite|postgresql]
                              [--postgres-url URL]

For each size: the sandbox (`bench._reconcile_sandbox`, its own process) is seeded with that
many confirmed card payments for one merchant; the ledger (a fresh database) gets a payment
row for each, as Stripe has it (fee, availability), written in bulk without the journal (so
the run also reports the merchant's journal invariant broken: one discrepancy, not one per
payment). Then:

- the sandbox's own list-page rate: the same list the engine walks (`GET
  /v1/payment_intents?limit=100&expand[]=data.latest_charge.balance_transaction`, page after
  page by `starting_after`), through the same gateway, timed alone;
- a dry run of everything, timed: objects examined per second, and the Stripe calls it made
  (the sandbox's request log), per object;
- the same run again under tracemalloc: its peak memory.

Prints per size: objects/s, the list-page rate, the goal (list-page rate divided by Stripe
calls per object: as fast as Stripe can list them), the ratio, calls per object and peak
memory; then peak memory at the largest size over the smallest (goal: within 1.5x).
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx

from bench.ingest import DEFAULT_POSTGRES, ROOT, database, free_port
from reconciler.config import Secret, Settings
from reconciler.db.bulk import insert_rows
from reconciler.db.engine import Database
from reconciler.db.schema import migrate
from reconciler.db.tables import payments
from reconciler.gateway import StripeGateway
from reconciler.ledger.merchants import create_merchant
from reconciler.ledger.session import ledger_session
from reconciler.reconcile.engine import Reconciler
from reconciler.reconcile.runs import queue_run
from reconciler.reconcile.scope import Scope
from reconciler.runtime import paths_context
from reconciler.types import StripeObject

API_KEY = "sk_test_bench_reconcile"
EXPAND = ("data.latest_charge.balance_transaction",)
BOOKED = datetime.now(UTC) - timedelta(days=1)


@dataclass
class Figures:
    size: int
    examined: int
    found: int
    seconds: float
    calls: int
    list_pages_per_second: float
    peak_bytes: int

    @property
    def objects_per_second(self) -> float:
        return self.examined / self.seconds

    @property
    def calls_per_object(self) -> float:
        return self.calls / self.examined

    @property
    def goal(self) -> float:
        return self.list_pages_per_second / self.calls_per_object


@contextmanager
def sandbox(intents: int) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench._reconcile_sandbox",
            "--port",
            str(port),
            "--intents",
            str(intents),
        ],
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 900
        while True:
            try:
                if httpx.get(f"{url}/_sandbox/state", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the sandbox did not start")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def ledger_row(intent: StripeObject, merchant_id: int) -> dict[str, object]:
    charge = intent["latest_charge"]
    transaction = charge["balance_transaction"]
    return {
        "merchant_id": merchant_id,
        "payment_intent_id": intent["id"],
        "charge_id": charge["id"],
        "ledger": "stripe_usd",
        "currency": "usd",
        "amount": intent["amount"],
        "platform_fee": 0,
        "stripe_fee": transaction["fee"],
        "amount_refunded": 0,
        "status": "succeeded",
        "funds_available": transaction["status"] == "available",
        "available_on": transaction["available_on"],
        "presentment_amount": None,
        "presentment_currency": None,
        "created_at": BOOKED,
        "updated_at": BOOKED,
        "request_scope": None,
        "request_key": None,
        "request_digest": None,
    }


async def load_ledger(db: Database, gateway: StripeGateway) -> float:
    """A payment row per payment intent, as Stripe lists them; returns the list-page rate
    (pages a second, the time spent waiting for pages alone)."""
    async with ledger_session(db) as tx:
        merchant_id = await create_merchant(tx, name="bench", now=BOOKED)
    after: str | None = None
    pages, waited = 0, 0.0
    while True:
        began = time.perf_counter()
        page = await gateway.list_page("payment_intents", starting_after=after, expand=EXPAND)
        waited += time.perf_counter() - began
        pages += 1
        async with db.write() as conn:
            await insert_rows(conn, payments, [ledger_row(i, merchant_id) for i in page["data"]])
        if not page["has_more"]:
            return pages / waited
        after = page["data"][-1]["id"]


async def one_run(reconciler: Reconciler, db: Database) -> tuple[float, int, int]:
    async with db.write() as conn:
        run_id = await queue_run(conn, Scope(), dry_run=True, started_by="bench", now=BOOKED)
    began = time.perf_counter()
    run = await reconciler.run(run_id)
    if run.status != "succeeded":
        raise SystemExit(f"run {run_id} {run.status}: {run.error}")
    return time.perf_counter() - began, run.examined, run.found


async def measure(size: int, url: str, database_url: str) -> Figures:
    db = Database(database_url)
    gateway = StripeGateway(Secret(API_KEY), url)  # no limiter: as fast as it goes
    try:
        await migrate(db)
        list_rate = await load_ledger(db, gateway)
        settings = Settings(database_url=database_url, stripe_api_key=Secret(API_KEY))
        reconciler = Reconciler(
            db, gateway, paths_context(db, gateway, settings), stale_after=timedelta(minutes=15)
        )
        async with httpx.AsyncClient(base_url=url) as control:
            await control.delete("/_sandbox/requests")
            seconds, examined, found = await one_run(reconciler, db)
            calls = len((await control.get("/_sandbox/requests")).json()["data"])
        print(
            f"{size:>7} objects: timed run {examined / seconds:.0f} objects/s, "
            f"{calls} Stripe calls; measuring its memory...",
            flush=True,
        )
        tracemalloc.start()
        try:
            await one_run(reconciler, db)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        return Figures(size, examined, found, seconds, calls, list_rate, peak)
    finally:
        await gateway.aclose()
        await db.dispose()


def show(figures: Figures) -> None:
    print(
        f"{figures.size:>7} objects: {figures.objects_per_second:8.0f} objects/s "
        f"(examined {figures.examined}, found {figures.found}, {figures.seconds:.1f}s); "
        f"sandbox list pages {figures.list_pages_per_second:6.1f}/s; "
        f"{figures.calls} Stripe calls = {figures.calls_per_object:.4f}/object; "
        f"goal {figures.goal:8.0f} objects/s, "
        f"ratio {figures.objects_per_second / figures.goal:.2f}; "
        f"peak memory {figures.peak_bytes / 2**20:.1f} MiB",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES)
    args = parser.parse_args()
    results = []
    for size in [int(n) for n in args.sizes.split(",")]:
        with sandbox(size) as url, database(args.database, args.postgres_url) as database_url:
            results.append(asyncio.run(measure(size, url, database_url)))
        show(results[-1])
    if len(results) > 1:
        ratio = results[-1].peak_bytes / results[0].peak_bytes
        print(
            f"peak memory {results[-1].size} / {results[0].size}: {ratio:.2f}x (goal: 1.5x at most)"
        )


if __name__ == "__main__":
    main()
