"""Full reconcile runs against the sandbox at 10k and 100k Stripe objects, the rate limiter
off: objects/s and peak memory of each, beside the sandbox's own list rate.

    python -m bench.reconcile [--objects 10000,100000] [--database sqlite|postgresql]
                              [--postgres-url URL] [--dry-run] [--tracemalloc]

Per size, a fresh sandbox (`bench._reconcile_sandbox`: its own process, so its memory is not
counted, every Stripe call counted by route) and a fresh database are seeded with the mix of
`bench._reconcile_seed` (merchants with onboarded Express accounts, checkout payments with
their charges and balance transactions, 1 in 50 declined, refunds by ICPay and from the
Dashboard, payouts as transfers, a few partly reversed), the ledger booked from the same
objects through the apply functions, so the books agree with Stripe. Seeding is timed.

**Objects** are the Stripe objects a full run has to examine: every account, payment intent,
charge, refund, transfer, reversal and balance transaction the sandbox holds (events are not
objects to reconcile). `--objects` sets their number (about 3.4 a payment). The run's own
`examined` count is printed beside it.

The run: `python -m bench._reconcile_run` (its own process; `STRIPE_RATE_LIMIT=0`), a full
`Scope()` run of `runtime.reconciler`, heal mode unless `--dry-run`, as the nightly job runs
it. Printed: objects, seconds, objects/s, peak RSS (and RSS before the run; with
`--tracemalloc` also Python's traced heap peak, in a second run, since tracing slows it),
Stripe calls made (the sandbox's count, by route), calls per object.

**The list rate**: right after the run, each list the run walked (the same path and query,
expansions included, cursor aside) is walked again, whole, by a bare keep-alive client, page
after page: pages/s (objects/s = pages/s x 100). Goal: the run's objects/s at least pages/s
/ Stripe calls per object, what a run would reach if each of its calls cost what a page
costs the sandbox and nothing else did (a ratio of call rates: it does not depend on what is
counted as an object). The walk's first, middle and last pages are timed, and so are the
run's, per phase (from its progress updates): a page that costs more the more objects are
held, or the further the run goes, shows there. Goal on memory: peak RSS at 100k within 1.5x
of 10k.

With two cores or more, the sandbox is pinned to core 1, the run to core 0 (PostgreSQL
unpinned). On PostgreSQL the seeded database is vacuumed and analysed before the run, as
autovacuum would have it by then: otherwise autovacuum works through the fresh 100k rows
while the run goes, and the run's first statements are planned without statistics.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.engine import make_url

from bench._reconcile_seed import PLATFORM_FEE_FIXED, PLATFORM_FEE_PERCENT, Seeded, Seeder
from bench.ingest import free_port
from bench.payouts import (
    DEFAULT_POSTGRES,
    ROOT,
    admin,
    database,
    pinned,
    postgres_reachable,
    process,
)
from reconciler.config import Secret
from reconciler.db.engine import Database
from reconciler.gateway import StripeGateway

API_KEY = "sk_test_bench_reconcile"
# Stripe objects to reconcile, of what the sandbox holds (not events, endpoints...).
OBJECT_KINDS = (
    "account",
    "payment_intent",
    "charge",
    "refund",
    "transfer",
    "transfer_reversal",
    "balance_transaction",
)
OBJECTS_PER_PAYMENT = 3.365  # of the seed's mix: measured, see Seeded.stripe_objects
RUN_CORES, SANDBOX_CORES = {0}, {1}
PAGE = 100
MEMORY_GOAL = 1.5


@dataclass
class ListWalk:
    path: str
    query: str
    pages: int = 0
    objects: int = 0
    seconds: float = 0.0
    page_ms: list[float] = field(default_factory=list)  # first, middle and last pages


@dataclass
class Size:
    objects: int
    seeded: Seeded
    seed_seconds: float
    run: dict[str, Any]
    calls: Counter[str]
    walks: list[ListWalk]
    traced: dict[str, Any] | None = None

    @property
    def stripe_calls(self) -> int:
        return sum(self.calls.values())

    @property
    def rate(self) -> float:
        return self.objects / float(self.run["seconds"])

    @property
    def calls_per_object(self) -> float:
        return self.stripe_calls / self.objects

    @property
    def pages_per_second(self) -> float:
        seconds = sum(walk.seconds for walk in self.walks)
        return sum(walk.pages for walk in self.walks) / seconds if seconds else 0.0

    @property
    def list_rate(self) -> float:
        """The sandbox's list rate in objects/s: pages/s x 100."""
        return self.pages_per_second * PAGE

    @property
    def goal(self) -> float:
        """Objects/s a run would reach if it cost nothing but its Stripe calls, each taking
        what a list page takes the sandbox: pages/s / calls per object."""
        return self.pages_per_second / self.calls_per_object if self.calls_per_object else 0.0


def pinning() -> bool:
    cores = os.sched_getaffinity(0)
    return len(cores) >= 2 and {0, 1} <= cores


async def seed(url: str, sandbox: str, payments: int) -> Seeded:
    db = Database(url)
    gateway = StripeGateway(Secret(API_KEY), sandbox)
    try:
        async with httpx.AsyncClient(base_url=sandbox) as client:
            return await Seeder(db, client, gateway, API_KEY).run(payments)
    finally:
        await gateway.aclose()
        await db.dispose()


def counts(sandbox: str) -> tuple[Counter[str], dict[str, str]]:
    answer = httpx.get(f"{sandbox}/_bench/counts").json()
    return Counter(answer["counts"]), answer["lists"]


def run_engine(url: str, sandbox: str, args: argparse.Namespace, traced: bool) -> dict[str, Any]:
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "STRIPE_API_KEY": API_KEY,
        "STRIPE_API_BASE": sandbox,
        "STRIPE_RATE_LIMIT": "0",
        "PLATFORM_FEE_PERCENT": str(PLATFORM_FEE_PERCENT),
        "PLATFORM_FEE_FIXED": str(PLATFORM_FEE_FIXED),
        "LOG_LEVEL": "warning",
        "INBOX_WORKER_ENABLED": "false",
        "SCHEDULER_ENABLED": "false",
        "PAYOUT_EXECUTOR_ENABLED": "false",
    }
    command = [sys.executable, "-m", "bench._reconcile_run"]
    command += ["--dry-run"] if args.dry_run else []
    command += ["--tracemalloc"] if traced else []
    done = subprocess.run(
        command,
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        preexec_fn=pinned(RUN_CORES if pinning() else None),
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"the reconcile run failed:\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def walk(sandbox: str, path: str, query: str) -> ListWalk:
    """The whole list, a page after the other, as fast as the sandbox answers."""
    found = ListWalk(path, query)
    times: list[float] = []
    cursor: str | None = None
    headers = {"authorization": f"Bearer {API_KEY}"}
    with httpx.Client(base_url=sandbox, headers=headers, timeout=120) as client:
        started = time.perf_counter()
        while True:
            target = f"{path}?{query}" + (f"&starting_after={cursor}" if cursor else "")
            began = time.perf_counter()
            page = client.get(target)
            times.append(time.perf_counter() - began)
            page.raise_for_status()
            body = page.json()
            found.pages += 1
            found.objects += len(body["data"])
            if not body["has_more"] or not body["data"]:
                break
            cursor = body["data"][-1]["id"]
        found.seconds = time.perf_counter() - started
    found.page_ms = [times[0] * 1000, times[len(times) // 2] * 1000, times[-1] * 1000]
    return found


def list_walks(sandbox: str, lists: dict[str, str]) -> list[ListWalk]:
    """The lists the run walked, again, bare. Before an engine has run (no lists known):
    the charges."""
    chosen = lists or {"/v1/charges": f"limit={PAGE}"}
    return [walk(sandbox, path, query) for path, query in sorted(chosen.items())]


def measure(objects: int, args: argparse.Namespace, logs: Path) -> Size:
    payments = max(10, round(objects / OBJECTS_PER_PAYMENT))
    with ExitStack() as stack:
        port = free_port()
        sandbox = f"http://127.0.0.1:{port}"
        stack.enter_context(
            process(
                ["-m", "bench._reconcile_sandbox", "--port", str(port)],
                dict(os.environ),
                port,
                SANDBOX_CORES if pinning() else None,
                "/_bench/counts",
                logs / f"sandbox-{objects}.log",
            )
        )
        url = stack.enter_context(database(args.database, args.postgres_url))
        started = time.perf_counter()
        seeded = asyncio.run(seed(url, sandbox, payments))
        seed_seconds = time.perf_counter() - started
        if args.database == "postgresql":
            asyncio.run(admin("VACUUM ANALYZE", url))
        held = sum(seeded.stripe_objects.get(kind, 0) for kind in OBJECT_KINDS)
        print(
            f"  seeded {held:,} Stripe objects in {seed_seconds:.1f} s "
            f"({held / seed_seconds:,.0f}/s): {describe(seeded)}"
        )
        httpx.post(f"{sandbox}/_bench/counts/reset").raise_for_status()
        run = run_engine(url, sandbox, args, traced=False)
        calls, lists = counts(sandbox)
        walks = list_walks(sandbox, lists)
        size = Size(held, seeded, seed_seconds, run, calls, walks)
        if args.tracemalloc:
            size.traced = run_engine(url, sandbox, args, traced=True)
        show(size)
        return size


def describe(seeded: Seeded) -> str:
    parts = [
        f"{seeded.merchants} merchants",
        f"{seeded.payments:,} payments ({seeded.declined:,} declined)",
        f"{seeded.refunds:,} refunds ({seeded.dashboard_refunds:,} from the Dashboard)",
        f"{seeded.payouts:,} payouts ({seeded.reversals} reversed in part)",
    ]
    held = ", ".join(f"{kind} {seeded.stripe_objects.get(kind, 0):,}" for kind in OBJECT_KINDS)
    steps = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in seeded.seconds.items())
    spoiled = f", {seeded.spoiled_batches} batches applied alone" if seeded.spoiled_batches else ""
    return f"{'; '.join(parts)}\n    held: {held}\n    steps: {steps}{spoiled}"


def show(size: Size) -> None:
    run = size.run
    print(
        f"  run: {run['status']} in {run['seconds']:.2f} s, {size.rate:,.0f} objects/s; "
        f"examined {run['examined']:,} ({run['examined'] / run['seconds']:,.0f}/s), found "
        f"{run['found']:,}, healed {run['healed']:,}"
        + (f"; error: {run['error']}" if run["error"] else "")
    )
    print(f"  open discrepancies: {run['discrepancies'] or 'none'}")
    print(
        "  the run's phases: pages, seconds, page first/middle/last: "
        + "; ".join(
            f"{phase} {times['pages']} {times['seconds']:.1f} s "
            + "/".join(f"{ms:.0f}" for ms in times["ms"])
            + " ms"
            for phase, times in run["page_ms"].items()
        )
    )
    print(
        f"  memory: peak RSS {run['peak_rss_kib'] / 1024:,.1f} MiB "
        f"(RSS before the run {run['rss_before_kib'] / 1024:,.1f} MiB)"
        + (
            f"; traced heap peak {size.traced['tracemalloc_peak_bytes'] / 2**20:,.1f} MiB "
            f"(traced run {size.traced['seconds']:.1f} s)"
            if size.traced
            else ""
        )
    )
    print(
        f"  Stripe calls: {size.stripe_calls:,} ({size.calls_per_object:.4f} per object): "
        + ", ".join(f"{route} x{n:,}" for route, n in size.calls.most_common())
    )
    for walk_ in size.walks:
        first, middle, last = walk_.page_ms
        print(
            f"  list {walk_.path}?{walk_.query}: {walk_.objects:,} objects in {walk_.pages:,} "
            f"pages, {walk_.seconds:.2f} s ({walk_.objects / walk_.seconds:,.0f}/s); page "
            f"first/middle/last {first:.1f}/{middle:.1f}/{last:.1f} ms"
        )
    print(
        f"  list rate {size.pages_per_second:,.1f} pages/s ({size.list_rate:,.0f} objects/s) "
        f"/ {size.calls_per_object:.4f} calls per object = goal {size.goal:,.0f} objects/s: "
        f"run {size.rate:,.0f}/s ({size.rate / size.goal:.2f}x), "
        f"{'met' if size.rate >= size.goal else 'NOT met'}"
    )


def table(sizes: list[Size]) -> None:
    print(
        "\n| objects | seeding | run | objects/s | peak RSS | RSS before | Stripe calls "
        "| calls/object | list pages/s | goal (pages/s / calls per object) | met |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for size in sizes:
        run = size.run
        print(
            f"| {size.objects:,} | {size.seed_seconds:.0f} s | {run['seconds']:.1f} s "
            f"| {size.rate:,.0f} | {run['peak_rss_kib'] / 1024:,.0f} MiB "
            f"| {run['rss_before_kib'] / 1024:,.0f} MiB | {size.stripe_calls:,} "
            f"| {size.calls_per_object:.4f} | {size.pages_per_second:,.1f} | {size.goal:,.0f}/s "
            f"| {'yes' if size.rate >= size.goal else 'no'} |"
        )
    if len(sizes) >= 2:
        small, large = sizes[0], sizes[-1]
        ratio = large.run["peak_rss_kib"] / small.run["peak_rss_kib"]
        grown = [s.run["peak_rss_kib"] - s.run["rss_before_kib"] for s in (small, large)]
        print(
            f"\nmemory: peak RSS at {large.objects:,} / at {small.objects:,} = {ratio:.2f}x "
            f"(goal <= {MEMORY_GOAL}x: {'met' if ratio <= MEMORY_GOAL else 'NOT met'}); "
            f"what the run added over its starting RSS: {grown[0] / 1024:,.1f} MiB and "
            f"{grown[1] / 1024:,.1f} MiB"
        )
        if small.traced and large.traced:
            traced = [s.traced["tracemalloc_peak_bytes"] for s in (small, large) if s.traced]
            print(f"traced heap peak: {traced[1] / traced[0]:.2f}x")
        pages = [s.list_rate for s in (small, large)]
        print(
            f"sandbox list rate at {large.objects:,} / at {small.objects:,}: "
            f"{pages[1] / pages[0]:.2f}x (1.0 when a page costs the same whatever the list's "
            "length)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--objects", default="10000,100000", help="sizes, comma-separated")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES)
    parser.add_argument("--dry-run", action="store_true", help="report only (default: heal)")
    parser.add_argument("--tracemalloc", action="store_true", help="also a traced run each")
    args = parser.parse_args()
    if args.database == "postgresql" and (why := postgres_reachable(args.postgres_url)):
        raise SystemExit(f"PostgreSQL {make_url(args.postgres_url)!r} unreachable ({why})")
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs "
        f"({len(os.sched_getaffinity(0))} usable), {args.database}, "
        + ("sandbox on core 1, run on core 0" if pinning() else "not pinned")
    )
    sizes = []
    with tempfile.TemporaryDirectory(prefix="bench-reconcile-") as logs:
        for objects in (int(n) for n in args.objects.split(",")):
            print(f"\n{objects:,} objects")
            sizes.append(measure(objects, args, Path(logs)))
    table(sizes)


if __name__ == "__main__":
    main()
