"""Payout requests: `POST /api/v1/payouts` at 1, 10 and 100 concurrent clients, beside the
sandbox's own bare `POST /v1/transfers` at the same concurrency, in the same run.

    python -m bench.payouts [--requests 100,400,800] [--clients 1,10,100] [--merchants 10]
                            [--database sqlite|postgresql] [--postgres-url URL]
                            [--before CHECKOUT]

`--before` also runs `reconciler serve` from another checkout of the project (say `git
worktree add /tmp/before main`) on each database, in the same run, and prints this
checkout's figures against it: before and after measured minutes apart on the same load.

The sandbox (our local Stripe, `bench._sandbox`: the sandbox app with a request counter
around it) and `reconciler serve` run in subprocesses on loopback, one service per database,
all up at once, with the Stripe rate limiter off (`STRIPE_RATE_LIMIT=0`: test mode's 25
requests a second would be all it measured). With two cores or more the service processes
are pinned to core 0, the sandbox and this process (the load) to core 1; PostgreSQL's own
processes are left where the system puts them. Each merchant is onboarded through the API
and Stripe's hosted page (walked over HTTP), and funded with one large
`pm_card_bypassPending` payment applied to the ledger as the webhook would, so no payout is
refused for balance.

The load is a small asyncio HTTP/1.1 client (as `bench._load`, keeping the answers): one
untimed warm-up request per client, then one keep-alive connection per client opened right
before the timed part with a cheap request (a connection left idle while the slowest
warm-ups finished could pass uvicorn's 5 s keep-alive timeout and be closed under the load),
every request prepared beforehand; every payout with its own Idempotency-Key, amount 100,
round-robin over the merchants. Not httpx: its pool held the bare sandbox to 135 transfers/s
at 100 connections (p99 4.8 s) where this client reached 485/s (p99 0.24 s) on the same
machine, so the baseline would have measured httpx. Per concurrency: the bare transfer
creates first, then each service, so each ratio compares runs made seconds apart. Prints
payouts/s, p50, p99, the Stripe balance reads (`GET /v1/balance` seen at the sandbox) per
payout, the service's CPU time per payout (from /proc), the bare rate and the ratio
service/bare; then checks that every payout answered 201 `completed`, that the ledger holds
them all completed, and that the sandbox holds exactly one transfer for each (by metadata),
no more. Goal: p99 under 50 ms at 100 concurrent clients on both databases, and balance
reads far below one per payout (the refresh is shared by the requests waiting).

PostgreSQL: a throwaway database made on TEST_POSTGRES_URL (default the local server),
dropped afterwards; skipped, saying so, if the server cannot be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from bench.ingest import free_port
from reconciler.apply import apply_object
from reconciler.apply.context import ApplyContext
from reconciler.config import Secret
from reconciler.db.engine import Database
from reconciler.db.schema import migrate
from reconciler.db.tables import payouts
from reconciler.gateway import StripeGateway
from reconciler.money import FeeSchedule
from reconciler.tokens import create_token
from reconciler.types import utcnow

API_KEY = "sk_test_bench_payouts"
DEFAULT_POSTGRES = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
ROOT = Path(__file__).resolve().parent.parent
AMOUNT = 100
FUNDING = 5_000_000  # cents per merchant: far more than the run pays out
SERVICE_CORES, LOAD_CORES = {0}, {1}


def pinning() -> str | None:
    """How processes are pinned, or None when the machine has too few cores to pin."""
    if len(os.sched_getaffinity(0)) < 2 or not {0, 1} <= os.sched_getaffinity(0):
        return None
    return "service on core 0; sandbox and load generator on core 1; PostgreSQL unpinned"


def pinned(cores: set[int] | None) -> Callable[[], None] | None:
    return None if cores is None else lambda: os.sched_setaffinity(0, cores)


@contextmanager
def process(
    args: list[str],
    env: dict[str, str],
    port: int,
    cores: set[int] | None,
    health: str,
    log: Path,
    root: Path = ROOT,
) -> Iterator[int]:
    """A server subprocess on `port` (pinned to `cores`) run from the checkout `root`, its
    output in `log`, up until the block ends."""
    with log.open("wb") as output:
        child = subprocess.Popen(
            [sys.executable, *args],
            env=env,
            cwd=root,
            stdout=output,
            stderr=subprocess.STDOUT,
            preexec_fn=pinned(cores),
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    url = f"http://127.0.0.1:{port}{health}"
                    if httpx.get(url, timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if child.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"{args[:3]} did not start: see {log}")
                time.sleep(0.1)
            yield child.pid
        finally:
            child.terminate()
            child.wait(timeout=30)


async def admin(statement: str, url: str) -> None:
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(statement))
    finally:
        await engine.dispose()


def postgres_reachable(url: str) -> str | None:
    """None if the server answers, else why not."""
    try:
        asyncio.run(asyncio.wait_for(admin("SELECT 1", url), 10))
    except Exception as error:
        return f"{type(error).__name__}: {error}".splitlines()[0]
    return None


@contextmanager
def database(kind: str, postgres_url: str) -> Iterator[str]:
    """A fresh, migrated database of `kind`, removed afterwards."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            url = f"sqlite+aiosqlite:///{folder}/payouts.db"
            asyncio.run(prepare(url))
            yield url
        return
    name = f"bench_payouts_{uuid.uuid4().hex[:8]}"
    asyncio.run(admin(f'CREATE DATABASE "{name}"', postgres_url))
    try:
        url = make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
        asyncio.run(prepare(url))
        yield url
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', postgres_url))


async def prepare(url: str) -> None:
    db = Database(url)
    try:
        await migrate(db)
    finally:
        await db.dispose()


async def operator_token(url: str) -> str:
    db = Database(url)
    try:
        async with db.write() as conn:
            _, token = await create_token(conn, role="operator", now=utcnow(), name="bench")
        return token
    finally:
        await db.dispose()


def service_env(url: str, sandbox: str, name: str, root: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(root),
        "DATABASE_URL": url,
        # A key of its own per service: the sandbox keeps idempotency keys per API key, and
        # each service's `payout:<id>` keys count from 1 (on one key, the second service's
        # payout 7 would be refused as a reuse of the first's key).
        "STRIPE_API_KEY": f"{API_KEY}_{name.replace(' ', '_')}",
        "STRIPE_API_BASE": sandbox,
        "LOG_LEVEL": "warning",
        # No webhooks here: a payout is executed by the request that accepted it.
        "INBOX_WORKER_ENABLED": "false",
        # Stripe's own test-mode limit (25 requests a second) would be all this measured; the
        # sandbox has none, and the bare baseline goes unlimited too.
        "STRIPE_RATE_LIMIT": "0",
    }


def stripe_headers(key: str | None = None) -> dict[str, str]:
    headers = {"authorization": f"Bearer {API_KEY}"}
    if key is not None:
        headers["idempotency-key"] = key
    return headers


def onboard(api: httpx.Client, sandbox: str, name: str) -> tuple[int, str]:
    """An ICPay account with an onboarded Express account, through the API and the hosted
    page, as a merchant does it from the dashboard."""
    made = api.post("/api/v1/accounts", json={"name": name, "email": f"{name}@bench.test"})
    made.raise_for_status()
    account = int(made.json()["id"])
    link = api.post(f"/api/v1/accounts/{account}/stripe/connect", json={"country": "US"})
    link.raise_for_status()
    with httpx.Client(follow_redirects=False) as browser:
        page = browser.get(link.json()["url"])
        action = re.search(r'<form method="post" action="([^"]+)"', page.text)
        assert action is not None, page.text
        target = httpx.URL(link.json()["url"]).join(action.group(1))
        submitted = browser.post(target, data={"business_name": name})
        assert submitted.status_code == 303, submitted.text
    state = api.get(f"/api/v1/accounts/{account}/stripe/connect", params={"refresh": "true"})
    state.raise_for_status()
    assert state.json()["connect"]["status"] == "enabled", state.json()
    return account, str(state.json()["stripe_account_id"])


async def fund(url: str, sandbox: str, accounts: list[int]) -> None:
    """One large payment per merchant, funds available at once, applied to the ledger as
    the webhook would apply it."""
    db = Database(url)
    gateway = StripeGateway(Secret(API_KEY), sandbox)
    context = ApplyContext(db=db, stripe=gateway, fees=FeeSchedule(), detected_by="bench")
    try:
        async with httpx.AsyncClient(base_url=sandbox, headers=stripe_headers()) as stripe:
            for account in accounts:
                intent = await stripe.post(
                    "/v1/payment_intents",
                    data={
                        "amount": str(FUNDING),
                        "currency": "usd",
                        "payment_method": "pm_card_bypassPending",
                        "payment_method_types[]": "card",
                        "confirm": "true",
                        "metadata[icpay_account_id]": str(account),
                    },
                )
                intent.raise_for_status()
                await apply_object(context, await gateway.payment_intent(intent.json()["id"]))
    finally:
        await gateway.aclose()
        await db.dispose()


def bare_account(sandbox: str) -> str:
    """An Express account for the bare transfers, onboarded at the sandbox directly."""
    made = httpx.post(
        f"{sandbox}/v1/accounts",
        data={"type": "express", "country": "US", "capabilities[transfers][requested]": "true"},
        headers=stripe_headers(),
    )
    made.raise_for_status()
    account = str(made.json()["id"])
    httpx.post(f"{sandbox}/_sandbox/accounts/{account}/onboarding").raise_for_status()
    return account


def counts(sandbox: str) -> Counter[str]:
    return Counter(httpx.get(f"{sandbox}/_bench/counts").json())


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Level:
    clients: int
    latencies: list[float] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    ids: list[str] = field(default_factory=list)  # payout ids (service) or transfer ids (bare)
    balance_reads: int = 0
    transfer_creates: int = 0
    cpu: float = 0.0  # the service's CPU seconds over the timed requests

    @property
    def count(self) -> int:
        return len(self.latencies)

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(int(len(ordered) * fraction), len(ordered) - 1)] * 1000


async def _exchange(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    requests: list[bytes],
    level: Level,
    timed: bool,
    answers: list[bytes],
) -> None:
    for request in requests:
        started = time.perf_counter()
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        body = await reader.readexactly(length)
        if timed:
            level.latencies.append(time.perf_counter() - started)
        answers.append(head[9:12] + b" " + body)


async def drive(
    port: int,
    requests: list[bytes],
    clients: int,
    level: Level,
    touch: bytes,
    mark: Callable[[], None] = lambda: None,
) -> list[bytes]:
    """Send `requests` over `clients` keep-alive connections, one in flight on each: the
    first `clients` as a warm-up (one per connection, untimed), then the rest, timed, each
    client on a fresh connection opened with `touch` (a cheap request, untimed) right before
    the timed part: a connection left idle while the slowest warm-ups finished could pass the
    server's keep-alive timeout (uvicorn's 5 s) and be closed under the first timed request.
    `mark` is called (nothing in flight) just before the timed part and just after. Returns
    every answer but the touches' as b"<status> <body>"."""
    warm, rest = requests[:clients], requests[clients:]
    shares = [rest[index::clients] for index in range(clients)]
    answers: list[bytes] = []
    warmed, touched, ready = asyncio.Event(), asyncio.Event(), asyncio.Event()
    touches: list[bytes] = []

    async def client(index: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            await _exchange(reader, writer, warm[index : index + 1], level, False, answers)
        finally:
            writer.close()
            await writer.wait_closed()
        if len(answers) == len(warm):
            warmed.set()
        await warmed.wait()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            await _exchange(reader, writer, [touch], level, False, touches)
            if len(touches) == clients:
                touched.set()
            await ready.wait()
            await _exchange(reader, writer, shares[index], level, True, answers)
        finally:
            writer.close()
            await writer.wait_closed()

    tasks = [asyncio.create_task(client(index)) for index in range(clients)]
    await touched.wait()
    mark()
    started = time.perf_counter()
    ready.set()
    await asyncio.gather(*tasks)
    level.seconds = time.perf_counter() - started
    mark()
    return answers


def raw_get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()


def raw_post(path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def bare_requests(destination: str, tag: str, count: int) -> list[bytes]:
    """Transfer creates as the service's gateway sends them: form body, metadata, key."""
    return [
        raw_post(
            "/v1/transfers",
            urlencode(
                {
                    "amount": AMOUNT,
                    "currency": "usd",
                    "destination": destination,
                    "metadata[icpay_payout_id]": f"{tag}-{n}",
                    "metadata[icpay_account_id]": "0",
                }
            ).encode(),
            {
                "Authorization": f"Bearer {API_KEY}",
                "Content-Type": "application/x-www-form-urlencoded",
                "Idempotency-Key": f"bare:{tag}:{n}",
            },
        )
        for n in range(count)
    ]


def payout_requests(token: str, merchants: list[int], tag: str, count: int) -> list[bytes]:
    return [
        raw_post(
            "/api/v1/payouts",
            json.dumps(
                {"account_id": merchants[n % len(merchants)], "amount": AMOUNT, "currency": "usd"}
            ).encode(),
            {
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/json",
                "Idempotency-Key": f"{tag}-{n}",
            },
        )
        for n in range(count)
    ]


def outcomes(answers: list[bytes], level: Level, field_name: str) -> None:
    """Count answers by status and `field_name` of the body; keep the ids."""
    for answer in answers:
        body = json.loads(answer[4:])
        level.outcomes[f"{answer[:3].decode()} {body.get(field_name, body.get('error'))}"] += 1
        if "id" in body:
            level.ids.append(str(body["id"]))


@dataclass
class Service:
    name: str  # the database kind, and "(before)" for the baseline checkout's
    url: str
    port: int
    token: str
    pid: int
    merchants: dict[int, str]  # ICPay account -> Stripe account
    levels: list[Level] = field(default_factory=list)


def measure_bare(port: int, destination: str, clients: int, count: int) -> Level:
    level = Level(clients)
    requests = bare_requests(destination, f"bare{clients}-{uuid.uuid4().hex[:6]}", clients + count)
    touch = raw_get("/_bench/counts")
    outcomes(asyncio.run(drive(port, requests, clients, level, touch)), level, "object")
    return level


def measure_service(service: Service, sandbox: str, clients: int, count: int) -> Level:
    """Warm-up and timed requests are all payouts: all are checked afterwards."""
    level = Level(clients)
    tag = f"{service.name}{clients}-{uuid.uuid4().hex[:6]}"
    requests = payout_requests(service.token, list(service.merchants), tag, clients + count)
    seen: list[Counter[str]] = []
    used: list[float] = []

    def mark() -> None:
        seen.append(counts(sandbox))
        used.append(cpu_seconds(service.pid))

    touch = raw_get("/healthz")
    answers = asyncio.run(drive(service.port, requests, clients, level, touch, mark))
    outcomes(answers, level, "status")
    level.cpu = used[1] - used[0]
    before, after = seen
    level.balance_reads = after["GET /v1/balance"] - before["GET /v1/balance"]
    level.transfer_creates = after["POST /v1/transfers"] - before["POST /v1/transfers"]
    return level


def show(label: str, level: Level) -> None:
    print(
        f"  {label:<20} {level.rate:>8,.0f}/s   p50 {level.percentile(0.5):6.1f} ms"
        f"   p99 {level.percentile(0.99):6.1f} ms   "
        + ", ".join(f"{what} x{n}" for what, n in sorted(level.outcomes.items()))
    )


def sandbox_transfers(sandbox: str, destination: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    params: dict[str, str] = {"destination": destination, "limit": "100"}
    while True:
        page = httpx.get(f"{sandbox}/v1/transfers", params=params, headers=stripe_headers())
        page.raise_for_status()
        found += page.json()["data"]
        if not page.json()["has_more"]:
            return found
        params["starting_after"] = found[-1]["id"]


async def ledger_statuses(url: str) -> tuple[dict[str, int], dict[str, int]]:
    """Payouts by status, and the failed ones by failure message."""
    db = Database(url)
    try:
        async with db.read() as conn:
            rows = await conn.execute(
                select(payouts.c.status, func.count()).group_by(payouts.c.status)
            )
            statuses = {str(status): int(n) for status, n in rows}
            rows = await conn.execute(
                select(payouts.c.failure_message, func.count())
                .where(payouts.c.status == "failed")
                .group_by(payouts.c.failure_message)
            )
            return statuses, {str(message): int(n) for message, n in rows}
    finally:
        await db.dispose()


def check(service: Service, sandbox: str) -> bool:
    """Every payout answered 201 completed, the ledger holds them completed, and the
    sandbox holds exactly one transfer for each."""
    answered: Counter[str] = Counter()
    accepted: list[str] = []
    for level in service.levels:
        answered.update(level.outcomes)
        accepted += level.ids
    sent = sum(answered.values())
    completed = answered["201 completed"]
    ledger, failures = asyncio.run(ledger_statuses(service.url))
    made = [t for acct in service.merchants.values() for t in sandbox_transfers(sandbox, acct)]
    for_payouts = Counter(str(t["metadata"].get("icpay_payout_id")) for t in made)
    ok = (
        completed == sent
        and len(set(accepted)) == sent
        and ledger == {"completed": sent}
        and len(made) == sent
        and set(for_payouts) == set(accepted)
        and max(for_payouts.values(), default=1) == 1
    )
    print(
        f"  {service.name}: {completed:,} of {sent:,} payouts answered 201 completed; "
        f"ledger {ledger}; sandbox transfers to these merchants {len(made):,} "
        f"({len(for_payouts):,} distinct payouts): {'ok' if ok else 'MISMATCH'}"
    )
    for message, n in failures.items():
        print(f"    failed x{n}: {message}")
    return ok


def table(service: Service, bare: dict[int, Level]) -> None:
    print(f"\n  {service.name}:")
    print(
        "  | clients | payouts/s | p50 ms | p99 ms | balance reads per payout "
        "| service CPU ms per payout | bare transfers/s | bare p99 ms | ratio |"
    )
    print("  | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for level in service.levels:
        base = bare[level.clients]
        print(
            f"  | {level.clients} | {level.rate:,.0f} | {level.percentile(0.5):.1f} "
            f"| {level.percentile(0.99):.1f} "
            f"| {level.balance_reads / level.count:.3f} ({level.balance_reads:,} for "
            f"{level.count:,}) | {level.cpu / level.count * 1000:.1f} "
            f"| {base.rate:,.0f} | {base.percentile(0.99):.1f} | {level.rate / base.rate:.3f} |"
        )
    top = max(service.levels, key=lambda level: level.clients)
    met = top.percentile(0.99) < 50
    print(
        f"  goal p99 < 50 ms at {top.clients} clients: {top.percentile(0.99):.1f} ms, "
        f"{'met' if met else 'NOT met'}"
    )
    # Little's law: `clients` requests always in flight, each answered within 50 ms, is
    # clients / 0.05 s answered a second at the least.
    base = bare[top.clients]
    print(
        f"  (Little's law: {top.clients} in flight answered within 50 ms needs "
        f"{top.clients / 0.05:,.0f}/s or more; the bare sandbox alone does {base.rate:,.0f}/s "
        f"with p99 {base.percentile(0.99):.1f} ms at {top.clients} clients)"
    )


def compare(after: Service, before: Service) -> None:
    """The same run's figures of this checkout against the baseline's, level by level."""
    print(f"\n  {after.name} against {before.name}, same run (after / before):")
    print("  | clients | payouts/s | p50 | p99 | CPU per payout |")
    print("  | --- | --- | --- | --- | --- |")
    for new, old in zip(after.levels, before.levels, strict=True):
        print(
            f"  | {new.clients} | {old.rate:,.0f} -> {new.rate:,.0f} ({new.rate / old.rate:.2f}x) "
            f"| {old.percentile(0.5):,.0f} -> {new.percentile(0.5):,.0f} ms "
            f"| {old.percentile(0.99):,.0f} -> {new.percentile(0.99):,.0f} ms "
            f"({new.percentile(0.99) / old.percentile(0.99):.2f}x) "
            f"| {old.cpu / old.count * 1000:.1f} -> {new.cpu / new.count * 1000:.1f} ms "
            f"({(new.cpu / new.count) / (old.cpu / old.count) - 1:+.0%}) |"
        )


def start_service(
    stack: contextlib.ExitStack,
    name: str,
    kind: str,
    root: Path,
    sandbox: str,
    args: argparse.Namespace,
    logs: Path,
    how: str | None,
) -> Service:
    """`reconciler serve` of the checkout `root` on a fresh database of `kind`, with its
    merchants onboarded and funded, up until `stack` closes."""
    url = stack.enter_context(database(kind, args.postgres_url))
    token = asyncio.run(operator_token(url))
    port = free_port()
    serve = ["-m", "reconciler.cli", "serve", "--port", str(port)]
    cores = SERVICE_CORES if how else None
    log = logs / f"service-{name.replace(' ', '_')}.log"
    env = service_env(url, sandbox, name, root)
    pid = stack.enter_context(process(serve, env, port, cores, "/healthz", log, root))
    headers = {"authorization": f"Bearer {token}"}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers) as api:
        merchants = dict(onboard(api, sandbox, f"m{n}") for n in range(1, args.merchants + 1))
    asyncio.run(fund(url, sandbox, list(merchants)))
    return Service(name, url, port, token, pid, merchants)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", default="1,10,100", help="concurrencies, comma-separated")
    parser.add_argument("--requests", default="100,400,800", help="timed requests per level")
    parser.add_argument("--merchants", type=int, default=10)
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), action="append")
    parser.add_argument(
        "--before",
        type=Path,
        metavar="CHECKOUT",
        help="also run the service of this checkout (e.g. `git worktree add /tmp/before main`)"
        " beside this one, on each database: before and after in one run",
    )
    args = parser.parse_args()
    clients = [int(n) for n in args.clients.split(",")]
    requests = [int(n) for n in args.requests.split(",")]
    if len(requests) != len(clients):
        parser.error("--requests needs one count per --clients level")
    kinds = list(args.database or ("sqlite", "postgresql"))
    how = pinning()
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs "
        f"({len(os.sched_getaffinity(0))} usable); "
        + (f"pinned: {how}" if how else "not pinned (fewer than 2 usable cores)")
    )
    if "postgresql" in kinds and (why := postgres_reachable(args.postgres_url)) is not None:
        print(f"PostgreSQL skipped: {make_url(args.postgres_url)!r} unreachable ({why})")
        kinds.remove("postgresql")
    if how:
        os.sched_setaffinity(0, LOAD_CORES)
    with contextlib.ExitStack() as stack:
        logs = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-payouts-")))
        sandbox_port = free_port()
        sandbox = f"http://127.0.0.1:{sandbox_port}"
        stack.enter_context(
            process(
                ["-m", "bench._sandbox", "--port", str(sandbox_port)],
                dict(os.environ),
                sandbox_port,
                LOAD_CORES if how else None,
                "/_bench/counts",
                logs / "sandbox.log",
            )
        )
        destination = bare_account(sandbox)
        services: list[Service] = []
        checkouts = [("", ROOT)] + ([(" (before)", args.before.resolve())] if args.before else [])
        services: list[Service] = []
        for kind in kinds:
            for suffix, root in checkouts:
                name = kind + suffix
                services.append(start_service(stack, name, kind, root, sandbox, args, logs, how))
                print(f"  {name}: {args.merchants} merchants onboarded and funded")
        bare: dict[int, Level] = {}
        for concurrency, count in zip(clients, requests, strict=True):
            print(f"  {concurrency} concurrent, {count:,} requests each")
            bare[concurrency] = measure_bare(sandbox_port, destination, concurrency, count)
            show("bare transfers", bare[concurrency])
            for service in services:
                level = measure_service(service, sandbox, concurrency, count)
                service.levels.append(level)
                show(f"payouts ({service.name})", level)
                print(
                    f"    ratio {level.rate / bare[concurrency].rate:.3f}; balance reads "
                    f"{level.balance_reads:,}, transfer creates {level.transfer_creates:,} "
                    f"for {level.count:,} payouts; service CPU "
                    f"{level.cpu / level.count * 1000:.1f} ms a payout "
                    f"({level.cpu / level.seconds:.0%} of a core)"
                )
        ok = all([check(service, sandbox) for service in services])
        for service in services:
            table(service, bare)
        named = {service.name: service for service in services}
        for service in services:
            if (before := named.get(f"{service.name} (before)")) is not None:
                compare(service, before)
    if not ok:
        raise SystemExit("payouts: a check failed")


if __name__ == "__main__":
    main()
