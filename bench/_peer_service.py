"""The service's side of the peer harness (`bench/ingest_peers.py` runs it; see there).

    python -m bench._peer_service merchants --database-url URL [--count 1000]
    python -m bench._peer_service count --database-url URL [--what payments|inbox] [--report F]

`merchants` makes the merchants the harness's events pay (ids 1..count): a payment of an
unknown merchant is only a discrepancy, and booking payments is the work being measured.
`count` prints how many rows the run stored (inbox rows) or applied (payments booked); with
`--report` it also writes what the inbox timestamps say of the measured run (below).

`ledger_applier` is the end-to-end applier (`INBOX_APPLIER=bench._peer_service:ledger_applier`):
the real `EventApplier` with the canned Stripe of `bench._e2e_applier` (Stripe is remote: its
work is not the service's). The harness names merchants `icpay_acc_0423`; ICPay's checkout
writes the merchant's id, `423`, so each payload is read with that spelling.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select

from bench._e2e_applier import CannedStripe
from reconciler.apply import EventApplier
from reconciler.apply.applier import PreparedEvents, StoredEvent
from reconciler.config import Settings, database_url_with_driver
from reconciler.db.engine import Database
from reconciler.db.tables import inbox_events, payments
from reconciler.inbox.worker import Applier
from reconciler.ledger.merchants import create_merchant
from reconciler.ledger.session import ledger_session

HARNESS_MERCHANT = '"icpay_account_id": "icpay_acc_'
OUR_MERCHANT = '"icpay_account_id": "'
GAP_SECONDS = 1.0  # a pause this long in arrivals separates two load phases


@dataclass(frozen=True)
class _Translated:
    id: int
    payload: str


def _translated(event: StoredEvent) -> StoredEvent:
    return _Translated(event.id, event.payload.replace(HARNESS_MERCHANT, OUR_MERCHANT, 1))


class PeerApplier(EventApplier):
    async def __call__(self, event: StoredEvent) -> None:
        await super().__call__(_translated(event))

    async def prepare(self, events: Sequence[StoredEvent]) -> PreparedEvents:
        return await super().prepare([_translated(event) for event in events])


@asynccontextmanager
async def ledger_applier(database: Database, settings: Settings) -> AsyncIterator[Applier]:
    yield PeerApplier(database, CannedStripe(), settings)


async def make_merchants(url: str, count: int) -> None:
    db = Database(url)
    try:
        async with ledger_session(db) as tx:
            now = datetime.now(UTC)
            for n in range(1, count + 1):
                await create_merchant(tx, name=f"merchant {n}", now=now)
    finally:
        await db.dispose()


def measured_phase(rows: list[tuple[float, float | None]]) -> dict[str, float | int]:
    """The longest run of arrivals without a pause (the harness's measured wrk run), as
    `(received, applied)` unix times: how fast it was taken, and how fast applied."""
    rows.sort(key=lambda row: row[0])
    phases: list[list[tuple[float, float | None]]] = [[]]
    for row in rows:
        if phases[-1] and row[0] - phases[-1][-1][0] > GAP_SECONDS:
            phases.append([])
        phases[-1].append(row)
    phase = max(phases, key=len)
    began, last_in = phase[0][0], phase[-1][0]
    applied = [done for _, done in phase if done is not None]
    lags = sorted(done - received for received, done in phase if done is not None)
    result: dict[str, float | int] = {
        "events": len(phase),
        "seconds_in": round(last_in - began, 3),
        "received_per_s": round(len(phase) / max(last_in - began, 1e-9), 1),
        "applied": len(applied),
    }
    if applied and len(applied) == len(phase):
        last_done = max(applied)
        result["seconds_to_apply"] = round(last_done - began, 3)
        result["end_to_end_per_s"] = round(len(phase) / max(last_done - began, 1e-9), 1)
        result["apply_lag_p50_s"] = round(lags[len(lags) // 2], 3)
        result["apply_lag_max_s"] = round(lags[-1], 3)
        result["drained_after_s"] = round(last_done - last_in, 3)
    return result


def _unix(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


async def count(url: str, what: str, report: bool) -> tuple[int, dict[str, float | int]]:
    """The rows counted and, with `report`, what the inbox says of the measured run."""
    db = Database(url)
    phase: dict[str, float | int] = {}
    try:
        async with db.read() as conn:
            table = payments if what == "payments" else inbox_events
            total = int(await conn.scalar(select(func.count()).select_from(table)) or 0)
            if report:
                found = await conn.execute(
                    select(inbox_events.c.received_at, inbox_events.c.processed_at)
                )
                rows = [(r.received_at.timestamp(), _unix(r.processed_at)) for r in found]
                phase = measured_phase(rows) if rows else {}
        return total, phase
    finally:
        await db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    merchants = commands.add_parser("merchants")
    merchants.add_argument("--database-url", required=True)
    merchants.add_argument("--count", type=int, default=1000)
    counting = commands.add_parser("count")
    counting.add_argument("--database-url", required=True)
    counting.add_argument("--what", choices=["payments", "inbox"], default="inbox")
    counting.add_argument("--report", type=Path)
    args = parser.parse_args()
    url = database_url_with_driver(args.database_url)
    if args.command == "merchants":
        asyncio.run(make_merchants(url, args.count))
    else:
        total, phase = asyncio.run(count(url, args.what, args.report is not None))
        if args.report is not None:
            args.report.write_text(json.dumps({"count": total, "measured": phase}))
        print(total)


if __name__ == "__main__":
    main()
