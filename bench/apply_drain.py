"""The inbox worker's own cost: how fast it drains stored `payment_intent.succeeded` events.

    python -m bench.apply_drain [--database sqlite|postgresql]... [--events N] [--merchants M]
                                [--rounds R] [--profile FILE] [--postgres-url URL]

No HTTP: the events (the peer harness's ~2.1 KB shape, its merchant spelling) are stored in
the inbox as the webhook's group commit stores them, then the worker (`InboxWorker` with the
peer harness's applier: the real `EventApplier`, the canned Stripe of `bench._e2e_applier`)
drains them, batch after batch, until none is left. Printed per round: events applied per
second, and the CPU each cost: this process's (the worker, with its driver threads) and, on
PostgreSQL, its backends' (read from /proc: the server shares the worker's core in the
harness). With `--profile`, the last round of the first database runs under cProfile.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import random
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import uvloop
from sqlalchemy import func, select, text

from bench._e2e_applier import CannedStripe
from bench._peer_service import PeerApplier, make_merchants
from bench.ingest import DEFAULT_POSTGRES, database
from reconciler.cli import SWITCH_INTERVAL_SECONDS
from reconciler.config import Settings
from reconciler.db.engine import Database
from reconciler.db.schema import migrate
from reconciler.db.tables import inbox_events, payments
from reconciler.inbox.events import InboxPolicy, NewEvent
from reconciler.inbox.inserts import insert_events
from reconciler.inbox.worker import InboxWorker

BATCH = 500


def payload(n: int, tag: str, merchants: int, rng: random.Random) -> str:
    """A payment_intent.succeeded event shaped as the peer harness's, pretty-printed."""
    suffix = f"3{tag}{n:012d}"
    amount = 500 + rng.randrange(49_501)
    intent = {
        "id": f"pi_{suffix}",
        "object": "payment_intent",
        "amount": amount,
        "amount_capturable": 0,
        "amount_details": {"tip": {}},
        "amount_received": amount,
        "application": None,
        "application_fee_amount": None,
        "automatic_payment_methods": {"allow_redirects": "never", "enabled": True},
        "canceled_at": None,
        "cancellation_reason": None,
        "capture_method": "automatic_async",
        "client_secret": f"pi_{suffix}_secret_{'x' * 25}",
        "confirmation_method": "automatic",
        "created": 1_760_000_000,
        "currency": "usd",
        "customer": None,
        "description": f"ICPay order {n:09d}",
        "invoice": None,
        "last_payment_error": None,
        "latest_charge": f"ch_{suffix}",
        "livemode": False,
        "metadata": {"icpay_account_id": f"icpay_acc_{1 + rng.randrange(merchants):04d}"},
        "next_action": None,
        "on_behalf_of": None,
        "payment_method": "pm_1" + "y" * 23,
        "payment_method_configuration_details": {"id": "pmc_1PeerBench", "parent": None},
        "payment_method_options": {
            "card": {
                "installments": None,
                "mandate_options": None,
                "network": None,
                "request_three_d_secure": "automatic",
            }
        },
        "payment_method_types": ["card"],
        "processing": None,
        "receipt_email": None,
        "review": None,
        "setup_future_usage": None,
        "shipping": None,
        "source": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": "succeeded",
        "transfer_data": None,
        "transfer_group": None,
    }
    event = {
        "id": f"evt_{suffix}",
        "object": "event",
        "api_version": "2024-06-20",
        "created": 1_760_000_001,
        "data": {"object": intent},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": f"req_{n}", "idempotency_key": f"idem_{tag}_{n}"},
        "type": "payment_intent.succeeded",
    }
    return json.dumps(event, indent=2)


async def store(db: Database, count: int, merchants: int, tag: str) -> None:
    rng = random.Random(tag)
    events = [
        NewEvent(
            stripe_event_id=f"evt_3{tag}{n:012d}",
            endpoint="platform",
            event_type="payment_intent.succeeded",
            livemode=False,
            account=None,
            stripe_created=1_760_000_001,
            payload=payload(n, tag, merchants, rng),
        )
        for n in range(count)
    ]
    for start in range(0, count, BATCH):
        async with db.write() as conn:
            await insert_events(conn, events[start : start + BATCH], datetime.now(UTC))


def _backend_cpu(pids: list[int]) -> dict[int, float]:
    ticks = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks[pid] = (int(fields[11]) + int(fields[12])) / 100  # utime + stime, seconds
    return ticks


async def _backends(db: Database) -> list[int]:
    async with db.read() as conn:
        rows = await conn.execute(
            text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        )
        return [int(pid) for (pid,) in rows]


@dataclass(frozen=True)
class Drained:
    events: int
    seconds: float
    cpu: float  # this process's, every thread
    loop_cpu: float  # the event loop's thread alone
    server_cpu: float  # PostgreSQL's backends for this database


async def drain(db: Database, worker: InboxWorker, postgres: bool) -> Drained:
    """Run the worker until nothing is left."""
    pids = await _backends(db) if postgres else []
    before = _backend_cpu(pids)
    wall, cpu, loop = time.perf_counter(), time.process_time(), time.thread_time()
    applied = 0
    while taken := await worker.run_once():
        applied += taken
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    loop = time.thread_time() - loop
    after = _backend_cpu(await _backends(db) if postgres else [])
    server = sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())
    return Drained(applied, wall, cpu, loop, server)


async def run(kind: str, url: str, args: argparse.Namespace, profile: Path | None) -> None:
    db = Database(url)
    try:
        await migrate(db)
        await make_merchants(url, args.merchants)
        applier = PeerApplier(db, CannedStripe(), Settings())
        policy = InboxPolicy.from_settings(Settings())
        worker = InboxWorker(db, applier, policy=policy, batch_size=BATCH)
        await store(db, BATCH, args.merchants, "warm0")  # compile caches, pools, ids
        await drain(db, worker, False)
        gc.freeze()  # as `reconciler serve` does once started
        for round_ in range(args.rounds):
            await store(db, args.events, args.merchants, f"r{round_:04d}")
            profiler = cProfile.Profile() if profile and round_ == args.rounds - 1 else None
            if profiler:
                profiler.enable()
            got = await drain(db, worker, kind == "postgresql")
            if profiler:
                profiler.disable()
                profiler.dump_stats(profile)
            each = 1e6 / got.events
            line = (
                f"{kind:<10} round {round_ + 1}: {got.events:,} events in {got.seconds:.2f} s, "
                f"{got.events / got.seconds:,.0f}/s; CPU per event: worker {got.cpu * each:.0f} us"
                f" (event loop {got.loop_cpu * each:.0f}, driver threads "
                f"{(got.cpu - got.loop_cpu) * each:.0f})"
            )
            if kind == "postgresql":
                line += f", backends {got.server_cpu * each:.0f} us"
                line += f", both {(got.cpu + got.server_cpu) * each:.0f} us"
            print(line, flush=True)
        async with db.read() as conn:
            booked = await conn.scalar(select(func.count()).select_from(payments))
            left = await conn.scalar(
                select(func.count())
                .select_from(inbox_events)
                .where(inbox_events.c.status != "done")
            )
        expected = BATCH + args.events * args.rounds
        if booked != expected or left:
            raise SystemExit(f"{kind}: {booked} payments for {expected} events, {left} not done")
    finally:
        await db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", action="append", choices=["sqlite", "postgresql"])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--merchants", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", type=Path)
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES)
    args = parser.parse_args()
    kinds = args.database or ["sqlite", "postgresql"]
    # As `reconciler serve` runs: uvloop (uvicorn's choice), a short switch interval.
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
    for index, kind in enumerate(kinds):
        with (
            database(kind, args.postgres_url) as url,
            asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner,
        ):
            runner.run(run(kind, url, args, args.profile if index == 0 else None))


if __name__ == "__main__":
    main()
