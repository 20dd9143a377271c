"""`reconciler reconcile`: a reconcile run, done here and now, for an operator or for cron.

It queues a run (started by `cli`) and does it inline with the runtime's engine: a live
progress bar on a terminal, plain lines otherwise (a log, cron's mail), both on stderr; then
a summary on stdout. The exit status says what cron needs to know: 0 when nothing the run
saw is left open, 1 when discrepancies remain open, 2 for bad input or a run that failed.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import TextIO

from sqlalchemy.exc import SQLAlchemyError

from reconciler.config import Settings
from reconciler.errors import ReconcilerError
from reconciler.reconcile.progress import ProgressUpdate, RunProgress
from reconciler.reconcile.review import RunSummary, summarise_run
from reconciler.reconcile.runs import SUCCEEDED, check_scope, queue_run
from reconciler.reconcile.scope import Scope
from reconciler.runtime import open_runtime
from reconciler.types import utcnow

CLEAN, OPEN_LEFT, FAILED = 0, 1, 2
# Without a terminal, a line at each new phase, and within one at most this often.
LINE_EVERY_SECONDS = 5.0


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    reconcile = commands.add_parser(
        "reconcile",
        help="compare the ledger with Stripe now and heal what differs (or only report it)",
        description="Exit status: 0 nothing left open, 1 discrepancies remain open, "
        "2 bad input or the run failed.",
    )
    reconcile.add_argument("--account", type=int, metavar="ID", help="one merchant (account id)")
    reconcile.add_argument(
        "--object", metavar="ID", help="one Stripe object: a pi_, ch_, re_, tr_ or acct_ id"
    )
    for name, what in (("since", "at or after"), ("until", "before")):
        reconcile.add_argument(
            f"--{name}",
            type=_moment,
            metavar="TIME",
            help=f"Stripe objects created {what} this (ISO 8601; UTC when it has no zone)",
        )
    reconcile.add_argument("--dry-run", action="store_true", help="only report; heal nothing")


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a time: use ISO 8601, e.g. 2026-11-01 or 2026-11-01T12:00:00Z"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class CommandFailed(ReconcilerError):
    """What the command could not do, said in one line (no traceback)."""


def main(settings: Settings, args: argparse.Namespace) -> int:
    try:
        return asyncio.run(run(settings, args, out=sys.stdout, err=sys.stderr))
    except KeyboardInterrupt:
        print("reconciler: reconcile interrupted", file=sys.stderr)
        return FAILED


async def run(settings: Settings, args: argparse.Namespace, *, out: TextIO, err: TextIO) -> int:
    scope = Scope(
        object_id=args.object, account_id=args.account, since=args.since, until=args.until
    )
    if settings.uses_sandbox:
        raise CommandFailed(
            "no Stripe configured: set STRIPE_API_KEY (and STRIPE_API_BASE for a sandbox) "
            "to reconcile against it"
        )
    # A run here and now needs the engine, not the background work a service does.
    settings = replace(
        settings, inbox_worker_enabled=False, payout_executor_enabled=False, scheduler_enabled=False
    )
    try:
        async with open_runtime(settings) as runtime:
            async with runtime.database.write() as conn:
                await check_scope(conn, scope)
                run_id = await queue_run(
                    conn, scope, dry_run=args.dry_run, started_by="cli", now=utcnow()
                )
            mode = "dry run" if args.dry_run else "heal"
            print(f"reconcile run {run_id} ({mode}, {scope.describe()})", file=err, flush=True)
            with _progress(err) as progress:
                try:
                    await runtime.reconciler.run(run_id, progress=progress)
                except (ReconcilerError, SQLAlchemyError, OSError):
                    raise
                except Exception as error:  # the engine's own failure, said in one line
                    raise CommandFailed(
                        f"reconcile run {run_id} failed: {type(error).__name__}: {error}"
                    ) from None
            async with runtime.database.read() as conn:
                summary = await summarise_run(conn, run_id)
    except (SQLAlchemyError, OSError) as error:
        raise CommandFailed(f"database unavailable: {type(error).__name__}") from None
    print(format_summary(summary), file=out)
    if summary.run.status != SUCCEEDED:
        return FAILED
    return OPEN_LEFT if summary.open_total else CLEAN


@contextmanager
def _progress(err: TextIO) -> Iterator[RunProgress]:
    if not err.isatty():
        yield _Lines(err)
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    counts = "examined {task.fields[examined]:,}  healed {task.fields[healed]:,}  found {task.fields[found]:,}"  # noqa: E501
    bar = Progress(
        SpinnerColumn(),
        TextColumn("{task.description:<18}"),
        BarColumn(),  # pulses: a run does not know how many objects Stripe holds
        TextColumn(counts),
        TimeElapsedColumn(),
        console=Console(file=err),
    )
    task = bar.add_task("starting", total=None, examined=0, healed=0, found=0)

    def show(update: ProgressUpdate) -> None:
        bar.update(
            task,
            description=update.phase,
            examined=update.examined,
            healed=update.healed,
            found=update.found,
        )

    with bar, _logs_above_the_bar(err):
        yield show


@contextmanager
def _logs_above_the_bar(err: TextIO) -> Iterator[None]:
    """Log lines written while the bar is drawn (a Stripe retry, say) go above it, through
    the stand-in for stderr the bar puts in place, instead of through the bar."""
    moved = [
        handler
        for handler in logging.getLogger().handlers
        if isinstance(handler, logging.StreamHandler) and handler.stream is err
    ]
    for handler in moved:
        handler.setStream(sys.stderr)
    try:
        yield
    finally:
        for handler in moved:
            handler.setStream(err)


class _Lines:
    """Progress as plain lines: one when a phase starts, within a phase every few seconds."""

    def __init__(self, err: TextIO, clock: Callable[[], float] = time.monotonic) -> None:
        self._err, self._clock = err, clock
        self._phase: str | None = None
        self._last = 0.0

    def __call__(self, update: ProgressUpdate) -> None:
        now = self._clock()
        if update.phase == self._phase and now - self._last < LINE_EVERY_SECONDS:
            return
        self._phase, self._last = update.phase, now
        print(
            f"{update.phase}: examined {update.examined}, healed {update.healed}, "
            f"found {update.found}",
            file=self._err,
            flush=True,
        )


def format_summary(summary: RunSummary) -> str:
    """The run's outcome, its counts, and what it left open by kind."""
    run = summary.run
    took = "" if run.duration_ms is None else f" in {run.duration_ms / 1000:.1f} s"
    mode = "dry run" if run.dry_run else "heal"
    lines = [f"reconcile run {run.id} ({mode}, {run.scope.describe()}): {run.status}{took}"]
    if run.error:
        lines.append(f"error: {' '.join(run.error.split())}")
    width = max(len(f"{n:,}") for n in (run.examined, run.healed, run.found))
    for label, count in (("examined", run.examined), ("healed", run.healed), ("found", run.found)):
        lines.append(f"  {label:<9} {count:>{width},}")
    if not summary.open_by_kind:
        lines.append("no open discrepancies")
        return "\n".join(lines)
    lines.append(f"open discrepancies: {summary.open_total}")
    kind_width = max(len("KIND"), *map(len, summary.open_by_kind))
    lines.append(f"  {'KIND':<{kind_width}}  OPEN")
    for kind, count in summary.open_by_kind.items():
        lines.append(f"  {kind:<{kind_width}}  {count:>4}")
    lines.append("see them: GET /api/v1/discrepancies?status=open")
    return "\n".join(lines)
