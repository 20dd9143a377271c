"""One reconcile run, in a process of its own, as the service runs it: the runtime built from
the environment (`DATABASE_URL`, `STRIPE_API_BASE`, `STRIPE_RATE_LIMIT=0`, ...), a full run
(`Scope()`) queued and run by `runtime.reconciler`. Prints one JSON line: how it ended, how
long it took, and the process's memory.

    python -m bench._reconcile_run [--dry-run] [--tracemalloc]

Peak RSS is the kernel's high-water mark for this process (`VmHWM`), start-up included; the
RSS just before the run is printed beside it, so what the run itself added can be told.
`--tracemalloc` also traces every allocation (the peak of Python's own heap during the run),
which slows the run down: its seconds are then not the run's speed.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import time
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import select

from reconciler.config import Settings
from reconciler.db.tables import discrepancies
from reconciler.reconcile.progress import ProgressUpdate
from reconciler.reconcile.runs import queue_run
from reconciler.reconcile.scope import Scope
from reconciler.runtime import open_runtime
from reconciler.types import utcnow


def memory_kib(field: str) -> int:
    """`VmRSS` or `VmHWM` of this process, in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


def page_times(started: float, marks: list[tuple[float, str]]) -> dict[str, dict[str, Any]]:
    """Per phase: its pages (progress updates), their seconds in all, and how long its first,
    middle and last page took, in ms: a page that costs more the further the run goes shows
    here."""
    by_phase: dict[str, list[float]] = {}
    previous = started
    for at, phase in marks:
        by_phase.setdefault(phase, []).append(at - previous)
        previous = at
    return {
        phase: {
            "pages": len(times),
            "seconds": sum(times),
            "ms": [times[0] * 1000, times[len(times) // 2] * 1000, times[-1] * 1000],
        }
        for phase, times in by_phase.items()
    }


async def reconcile(dry_run: bool, traced: bool) -> dict[str, Any]:
    settings = Settings.from_environ()
    async with open_runtime(settings) as runtime:
        async with runtime.database.write() as conn:
            run_id = await queue_run(
                conn, Scope(), dry_run=dry_run, started_by="bench", now=utcnow()
            )
        gc.freeze()  # as `reconciler serve` does once it is up
        before = memory_kib("VmRSS")
        if traced:
            tracemalloc.start()
        marks: list[tuple[float, str]] = []

        def progress(update: ProgressUpdate) -> None:
            marks.append((time.perf_counter(), update.phase))

        started = time.perf_counter()
        run = await runtime.reconciler.run(run_id, progress=progress)
        seconds = time.perf_counter() - started
        traced_peak = tracemalloc.get_traced_memory()[1] if traced else None
        tracemalloc.stop()
        async with runtime.database.read() as conn:
            found = await conn.execute(
                select(discrepancies.c.kind, discrepancies.c.detail)
                .where(discrepancies.c.status == "open")
                .order_by(discrepancies.c.id)
            )
            kinds = Counter(kind for kind, _ in found)
        return {
            "discrepancies": dict(kinds),
            "status": run.status,
            "error": run.error,
            "examined": run.examined,
            "healed": run.healed,
            "found": run.found,
            "seconds": seconds,
            "rss_before_kib": before,
            "peak_rss_kib": memory_kib("VmHWM"),
            "tracemalloc_peak_bytes": traced_peak,
            "page_ms": page_times(started, marks),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--tracemalloc", action="store_true")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(reconcile(args.dry_run, args.tracemalloc))))


if __name__ == "__main__":
    main()
