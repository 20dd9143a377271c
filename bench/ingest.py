"""Webhook ingest: the service against a bare Starlette endpoint, and end to end.

    python -m bench.ingest [--events N] [--rounds R] [--e2e-events M] [--connections K]
                           [--database sqlite|postgresql] [--skip ingest|e2e] [--postgres-url URL]

1. Ingest. A bare endpoint (read the body, answer 200) and `reconciler serve` (verify, parse,
   store in the inbox, commit, answer) run in subprocesses on loopback with the same uvicorn
   call, one worker each. Each gets the same load: N unique events, freshly signed, over K
   keep-alive connections, in R rounds of bare-then-services (all servers up throughout, so a
   ratio compares runs made seconds apart). Prints events/s, p50, p99 and the ratio
   service/bare per round, the median ratio (goal >= 0.40), and the inbox rows stored, which
   must equal the 2xx count. The service runs with its worker off here: the request path alone.
2. End to end, on SQLite and on PostgreSQL: the service with its worker on and the real
   `EventApplier` (a canned in-process Stripe: no network) gets M `payment_intent.succeeded`
   events for one merchant; each becomes a payment with journal entries. Prints the rate at
   which events were acknowledged *and* applied (M / time until the last is applied), and
   the backlog left when the last acknowledgement came (goal: >= 1,600/s). The same run with
   a no-op applier shows what the inbox itself (claim, mark done) sustains.

The PostgreSQL database is created and dropped by the benchmark.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from bench._load import LoadResult, drive, post_request
from reconciler.db.engine import Database
from reconciler.db.schema import migrate
from reconciler.db.tables import inbox_events
from reconciler.inbox.signature import compute_signature
from reconciler.ledger.merchants import create_merchant
from reconciler.ledger.session import ledger_session

SECRET = "whsec_bench_ingest"
DEFAULT_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def server(args: list[str], env: dict[str, str], port: int) -> Iterator[None]:
    process = subprocess.Popen(
        [sys.executable, *args], env=env, cwd=ROOT, stdout=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"server {args[:3]} did not start")
            time.sleep(0.1)
        yield
    finally:
        process.terminate()
        process.wait(timeout=30)


def signed_requests(count: int, merchant_id: int, tag: str) -> list[bytes]:
    """`count` unique payment_intent.succeeded events, signed now."""
    now = int(time.time())
    requests = []
    for n in range(count):
        intent = f"pi_{tag}_{n}"
        event = {
            "id": f"evt_{tag}_{n}",
            "object": "event",
            "type": "payment_intent.succeeded",
            "created": now,
            "livemode": False,
            "data": {
                "object": {
                    "id": intent,
                    "object": "payment_intent",
                    "status": "succeeded",
                    "amount": 1000 + n % 500,
                    "amount_received": 1000 + n % 500,
                    "currency": "usd",
                    "latest_charge": f"ch_{tag}_{n}",
                    "metadata": {"icpay_account_id": str(merchant_id)},
                }
            },
        }
        body = json.dumps(event, separators=(",", ":")).encode()
        header = f"t={now},v1={compute_signature(SECRET, now, body)}"
        requests.append(
            post_request(
                "/webhooks/stripe",
                body,
                {"Content-Type": "application/json", "Stripe-Signature": header},
            )
        )
    return requests


async def prepare(url: str) -> int:
    """Migrate, and create the merchant the events pay."""
    db = Database(url)
    try:
        await migrate(db)
        async with ledger_session(db) as conn:
            return await create_merchant(conn, name="bench", now=datetime.now(UTC))
    finally:
        await db.dispose()


async def count_rows(url: str, status: str | None = None) -> int:
    db = Database(url)
    try:
        async with db.read() as conn:
            query = select(func.count()).select_from(inbox_events)
            if status is not None:
                query = query.where(inbox_events.c.status == status)
            return int(await conn.scalar(query) or 0)
    finally:
        await db.dispose()


async def admin(statement: str, url: str) -> None:
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(statement))
    finally:
        await engine.dispose()


@contextmanager
def database(kind: str, postgres_url: str) -> Iterator[str]:
    """A fresh, migrated database of `kind`, removed afterwards."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite+aiosqlite:///{folder}/ingest.db"
        return
    name = f"bench_ingest_{uuid.uuid4().hex[:8]}"
    asyncio.run(admin(f'CREATE DATABASE "{name}"', postgres_url))
    try:
        yield make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', postgres_url))


LEDGER_APPLIER = "bench._e2e_applier:ledger_applier"
KINDS = ("sqlite", "postgresql")


def service_env(url: str, *, worker: bool, applier: str = LEDGER_APPLIER) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": url,
        "STRIPE_WEBHOOK_SECRETS": SECRET,
        # Never called (the canned Stripe answers); set so `serve` does not start its sandbox.
        "STRIPE_API_BASE": "http://127.0.0.1:9",
        "LOG_LEVEL": "warning",
        "INBOX_WORKER_ENABLED": "true" if worker else "false",
        "INBOX_APPLIER": applier,
    }


def show(label: str, result: LoadResult) -> None:
    print(
        f"  {label:<22} {result.rate:>9,.0f} events/s   p50 {result.percentile(0.5) * 1000:6.2f} ms"
        f"   p99 {result.percentile(0.99) * 1000:6.2f} ms   2xx {result.ok:,}/{result.sent:,}"
    )


def ingest(args: argparse.Namespace, kinds: tuple[str, ...]) -> None:
    """Rounds of: the bare endpoint, then each service, all servers already up, so every
    ratio compares runs made moments apart (the machine's speed drifts between minutes)."""
    with contextlib.ExitStack() as stack:
        bare_port = free_port()
        stack.enter_context(
            server(["-m", "bench._bare", "--port", str(bare_port)], dict(os.environ), bare_port)
        )
        services = {}
        for kind in kinds:
            url = stack.enter_context(database(kind, args.postgres_url))
            merchant_id = asyncio.run(prepare(url))
            port = free_port()
            serve = ["-m", "reconciler.cli", "serve", "--port", str(port)]
            stack.enter_context(server(serve, service_env(url, worker=False), port))
            services[kind] = (url, port, merchant_id)
        ratios: dict[str, list[float]] = {kind: [] for kind in kinds}
        acknowledged = dict.fromkeys(kinds, 0)
        for round_number in range(1, args.rounds + 1):
            print(f"  round {round_number}")
            requests = signed_requests(args.events, 1, f"bare{round_number}")
            bare = asyncio.run(drive(bare_port, requests, args.connections))
            show("bare endpoint", bare)
            for kind, (_, port, merchant_id) in services.items():
                requests = signed_requests(args.events, merchant_id, f"ing{round_number}")
                result = asyncio.run(drive(port, requests, args.connections))
                acknowledged[kind] += result.ok
                ratios[kind].append(result.rate / bare.rate)
                show(f"service ({kind})", result)
                print(f"    ratio service/bare {result.rate / bare.rate:.2f}")
        for kind, (url, _, _) in services.items():
            stored = asyncio.run(count_rows(url))
            verdict = "ok" if stored == acknowledged[kind] else "MISMATCH"
            print(
                f"  {kind}: median ratio {statistics.median(ratios[kind]):.2f} (goal >= 0.40); "
                f"inbox rows {stored:,} = 2xx {acknowledged[kind]:,}: {verdict}"
            )


async def _end_to_end(port: int, url: str, requests: list[bytes], connections: int) -> None:
    started = time.perf_counter()
    result = await drive(port, requests, connections)
    acked_at = time.perf_counter() - started
    backlog = len(requests) - await count_rows(url, "done")
    while (done := await count_rows(url, "done")) < result.ok:
        if time.perf_counter() - started > 600:
            raise SystemExit(f"end to end: only {done} of {result.ok} applied after 600 s")
        await asyncio.sleep(0.05)
    applied_at = time.perf_counter() - started
    print(
        f"    acknowledged {result.ok:,} in {acked_at:.2f} s ({result.ok / acked_at:,.0f}/s), "
        f"backlog then {backlog:,}; all applied after {applied_at:.2f} s"
    )
    print(f"    sustained end to end: {result.ok / applied_at:,.0f} events/s (goal >= 1,600/s)")


async def _paced(port: int, url: str, requests: list[bytes], args: argparse.Namespace) -> None:
    """Offer `rate` events a second and watch the backlog (stored, not yet applied) as it
    goes: a rate is sustained if the backlog stays level rather than growing with time."""
    db = Database(url)
    samples: list[tuple[float, int]] = []
    sent, empty = asyncio.Event(), asyncio.Event()

    async def watch() -> None:
        while True:
            async with db.read() as conn:
                waiting = await conn.scalar(
                    select(func.count())
                    .select_from(inbox_events)
                    .where(inbox_events.c.status != "done")
                )
            samples.append((time.perf_counter(), int(waiting or 0)))
            if sent.is_set() and not waiting:
                empty.set()
            await asyncio.sleep(0.1)

    watcher = asyncio.create_task(watch())
    started = time.perf_counter()
    try:
        result = await drive(port, requests, args.connections, rate=args.e2e_rate)
        sent_for = time.perf_counter() - started
        sent.set()
        await asyncio.wait_for(empty.wait(), timeout=600)
        drained = time.perf_counter() - started - sent_for
    finally:
        watcher.cancel()
        await db.dispose()
    during = [waiting for at, waiting in samples if at - started <= sent_for]
    half = len(during) // 2
    print(
        f"    offered {args.e2e_rate:,.0f}/s for {sent_for:.1f} s: acknowledged {result.ok:,} "
        f"({result.ok / sent_for:,.0f}/s, p99 {result.percentile(0.99) * 1000:.1f} ms); "
        f"backlog mean {statistics.mean(during[:half] or [0]):,.0f} in the first half, "
        f"{statistics.mean(during[half:] or [0]):,.0f} in the second, max {max(during or [0]):,}; "
        f"drained {drained:.2f} s after the last"
    )


def paced_end_to_end(kind: str, args: argparse.Namespace) -> None:
    count = int(args.e2e_rate * args.e2e_seconds)
    print(f"  paced end to end ({kind}), real EventApplier, {count:,} events")
    with database(kind, args.postgres_url) as url:
        merchant_id = asyncio.run(prepare(url))
        port = free_port()
        serve = ["-m", "reconciler.cli", "serve", "--port", str(port)]
        with server(serve, service_env(url, worker=True), port):
            requests = signed_requests(count, merchant_id, f"paced{kind}")
            asyncio.run(_paced(port, url, requests, args))


def end_to_end(kind: str, args: argparse.Namespace, applier: str) -> None:
    what = "real EventApplier, canned Stripe" if applier == LEDGER_APPLIER else "no-op applier"
    print(f"  end to end ({kind}), {what}, {args.e2e_events:,} events")
    with database(kind, args.postgres_url) as url:
        merchant_id = asyncio.run(prepare(url))
        port = free_port()
        serve = ["-m", "reconciler.cli", "serve", "--port", str(port)]
        with server(serve, service_env(url, worker=True, applier=applier), port):
            requests = signed_requests(args.e2e_events, merchant_id, f"e2e{kind}")
            asyncio.run(_end_to_end(port, url, requests, args.connections))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--e2e-events", type=int, default=10_000)
    parser.add_argument("--e2e-rate", type=float, default=1_600, help="paced run's events/s")
    parser.add_argument("--e2e-seconds", type=float, default=15, help="paced run's length")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3, help="ingest rounds (default 3)")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES)
    parser.add_argument("--skip", choices=["ingest", "e2e"], action="append", default=[])
    parser.add_argument(
        "--database", choices=KINDS, action="append", help="only this database (repeatable)"
    )
    args = parser.parse_args()
    kinds = tuple(args.database or KINDS)
    print(f"{args.events:,} events over {args.connections} connections, {os.cpu_count()} CPUs")
    if "ingest" not in args.skip:
        ingest(args, kinds)
    if "e2e" not in args.skip:
        for kind in kinds:
            end_to_end(kind, args, LEDGER_APPLIER)
            # The same run with an applier that does nothing: the inbox pipeline's own limit.
            end_to_end(kind, args, "noop")
            paced_end_to_end(kind, args)


if __name__ == "__main__":
    main()
