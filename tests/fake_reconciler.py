"""A TEST FAKE of the reconcile engine (`runtime.reconciler`), for the operator API and CLI
tests that are about the API and CLI themselves (what they answer, print and exit with for
each end of a run): it has the engine's `start` and `run` and does no comparing at all.

`start()` only records the run ids it was given. `run()` takes the run, reports the progress
it is told to, records the discrepancies it is told to (as seen by this run) and finishes
the run with the counts it is told to, or fails it, or raises.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import update

from reconciler.db.engine import Database
from reconciler.db.tables import discrepancies
from reconciler.reconcile.discrepancies import record_discrepancy
from reconciler.reconcile.progress import ProgressUpdate, RunProgress
from reconciler.reconcile.runs import (
    FAILED,
    SUCCEEDED,
    ReconcileRun,
    finish_run,
    get_run,
    save_progress,
    take_run,
)
from reconciler.runtime import Runtime
from reconciler.types import utcnow


@dataclass(frozen=True)
class Planted:
    """A discrepancy the fake run "finds"."""

    kind: str
    object_type: str
    object_id: str
    merchant_id: int | None = None


@dataclass
class FakeReconciler:
    # The runtime's, given by `install` unless given here.
    database: Database | None = None
    phases: Sequence[str] = ("payment_intents", "transfers")
    examined_per_phase: int = 3
    healed: int = 0
    finds: Sequence[Planted] = ()
    # Set to end the run `failed` with this error, as an engine does when Stripe is down.
    fail_with: str | None = None
    # Set to raise from `run()` instead, as a broken engine would.
    raises: Exception | None = None
    started: list[int] = field(default_factory=list)
    ran: list[int] = field(default_factory=list)

    def start(self, run_id: int) -> None:
        self.started.append(run_id)

    async def run(self, run_id: int, *, progress: RunProgress | None = None) -> ReconcileRun:
        self.ran.append(run_id)
        if self.raises is not None:
            raise self.raises
        assert self.database is not None, "install() the fake in a runtime first"
        async with self.database.write() as conn:
            assert await take_run(conn, run_id, utcnow()), f"run {run_id} is not startable"
        examined = 0
        for phase in self.phases:
            examined += self.examined_per_phase
            found = len(self.finds) if phase == self.phases[-1] else 0
            async with self.database.write() as conn:
                await save_progress(
                    conn, run_id, examined=examined, healed=0, found=found, resume_from=None
                )
            if progress is not None:
                progress(ProgressUpdate(phase, examined, 0, found))
        async with self.database.write() as conn:
            for planted in self.finds:
                await _record(conn, run_id, planted)
            await save_progress(
                conn,
                run_id,
                examined=examined,
                healed=self.healed,
                found=len(self.finds),
                resume_from=None,
            )
            await finish_run(
                conn,
                run_id,
                status=FAILED if self.fail_with else SUCCEEDED,
                now=utcnow(),
                duration_ms=42,
                error=self.fail_with,
            )
            run = await get_run(conn, run_id)
        assert run is not None
        return run


async def _record(conn: Any, run_id: int, planted: Planted) -> None:
    await record_discrepancy(
        conn,
        kind=planted.kind,
        object_type=planted.object_type,
        object_id=planted.object_id,
        detail=f"planted by the fake engine in run {run_id}",
        detected_by="reconcile",
        now=utcnow(),
        merchant_id=planted.merchant_id,
    )
    # The engine says which run saw it; record_discrepancy does not know runs.
    await conn.execute(
        update(discrepancies)
        .where(
            discrepancies.c.kind == planted.kind,
            discrepancies.c.object_id == planted.object_id,
            discrepancies.c.status == "open",
        )
        .values(last_run_id=run_id, last_seen_at=utcnow())
    )


def install(runtime: Runtime, fake: FakeReconciler) -> FakeReconciler:
    """Put the fake where the engine goes (`runtime.reconciler`), on the runtime's database.
    The runtime is a frozen dataclass, hence `object.__setattr__`."""
    if fake.database is None:
        fake.database = runtime.database
    object.__setattr__(runtime, "reconciler", fake)
    return fake
