"""The record of reconcile runs (`reconcile_runs`): what each looked at, who asked, how far it
got, what it found, how it ended.

A run is queued (the API answers with its id at once), then taken by an engine: `running`,
with its counts and the last page finished (`resume_from`) saved as it goes, so a run cut
short (`interrupted`: the process stopped or died) goes on from where it was. It ends
`succeeded` or `failed` (with the error).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from reconciler.db.dialect import insert_for
from reconciler.db.tables import merchants, reconcile_runs
from reconciler.errors import IdempotencyConflict, NotFound
from reconciler.ledger.requests import RequestKey
from reconciler.reconcile.scope import Scope
from reconciler.types import Queryable

QUEUED, RUNNING, SUCCEEDED, FAILED, INTERRUPTED = (
    "queued",
    "running",
    "succeeded",
    "failed",
    "interrupted",
)
STATUSES = (QUEUED, RUNNING, SUCCEEDED, FAILED, INTERRUPTED)
# A run in one of these may be taken by an engine (again).
STARTABLE = (QUEUED, INTERRUPTED)
ERROR_LENGTH = 2000


@dataclass(frozen=True)
class ReconcileRun:
    id: int
    scope: Scope
    dry_run: bool
    started_by: str
    status: str
    examined: int
    healed: int
    found: int
    resume_from: dict[str, Any] | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None

    @property
    def finished(self) -> bool:
        return self.status in (SUCCEEDED, FAILED)


async def check_scope(conn: Queryable, scope: Scope) -> None:
    """`NotFound` when the scope names a merchant there is none of: a run of nothing is a
    mistake to say at once, not an empty success later."""
    if scope.account_id is None:
        return
    known = await conn.execute(select(merchants.c.id).where(merchants.c.id == scope.account_id))
    if known.first() is None:
        raise NotFound(f"no account {scope.account_id}")


def _queued(scope: Scope, *, dry_run: bool, started_by: str, now: datetime) -> dict[str, Any]:
    return {
        "scope": scope.to_json(),
        "dry_run": dry_run,
        "started_by": started_by,
        "status": QUEUED,
        "created_at": now,
    }


async def queue_run(
    conn: Queryable, scope: Scope, *, dry_run: bool, started_by: str, now: datetime
) -> int:
    result = await conn.execute(
        reconcile_runs.insert()
        .values(_queued(scope, dry_run=dry_run, started_by=started_by, now=now))
        .returning(reconcile_runs.c.id)
    )
    return int(result.scalar_one())


async def queue_requested_run(
    conn: Queryable,
    scope: Scope,
    *,
    dry_run: bool,
    started_by: str,
    now: datetime,
    request: RequestKey,
) -> tuple[int, bool]:
    """Queue a run for an API request with an Idempotency-Key: the run's id, and whether it
    is new. A repeat of the request answers with the run it queued; the same key for another
    request is `IdempotencyConflict`. The unique index decides, so two at once queue one."""
    statement = insert_for(conn, reconcile_runs).values(
        **_queued(scope, dry_run=dry_run, started_by=started_by, now=now), **request.columns()
    )
    inserted = await conn.execute(
        statement.on_conflict_do_nothing(index_elements=["request_scope", "request_key"]).returning(
            reconcile_runs.c.id
        )
    )
    run_id = inserted.scalar_one_or_none()
    if run_id is not None:
        return int(run_id), True
    found = await conn.execute(
        select(reconcile_runs.c.id, reconcile_runs.c.request_digest).where(
            reconcile_runs.c.request_scope == request.scope,
            reconcile_runs.c.request_key == request.key,
        )
    )
    earlier = found.one()
    if earlier.request_digest != request.digest:
        raise IdempotencyConflict(
            f"Idempotency-Key {request.key!r} was used for another request (reconcile run "
            f"{earlier.id}): use a new key for a new run"
        )
    return int(earlier.id), False


async def get_run(conn: Queryable, run_id: int) -> ReconcileRun | None:
    result = await conn.execute(select(reconcile_runs).where(reconcile_runs.c.id == run_id))
    row = result.one_or_none()
    return None if row is None else _run(row)


async def list_runs(
    conn: Queryable,
    *,
    limit: int,
    starting_after: int | None = None,
    status: str | None = None,
) -> tuple[list[ReconcileRun], bool]:
    """A page of runs, newest first, and whether there are more."""
    statement = select(reconcile_runs).order_by(reconcile_runs.c.id.desc()).limit(limit + 1)
    if starting_after is not None:
        statement = statement.where(reconcile_runs.c.id < starting_after)
    if status is not None:
        statement = statement.where(reconcile_runs.c.status == status)
    rows = [_run(row) for row in await conn.execute(statement)]
    return rows[:limit], len(rows) > limit


async def take_run(conn: Queryable, run_id: int, now: datetime) -> bool:
    """Mark a queued or interrupted run `running`; False if it is not startable (another
    engine took it, or it has ended). `started_at` stays the first start's."""
    result = await conn.execute(
        update(reconcile_runs)
        .where(reconcile_runs.c.id == run_id, reconcile_runs.c.status.in_(STARTABLE))
        .values(status=RUNNING, error=None)
    )
    if not result.rowcount:
        return False
    await conn.execute(
        update(reconcile_runs)
        .where(reconcile_runs.c.id == run_id, reconcile_runs.c.started_at.is_(None))
        .values(started_at=now)
    )
    return True


async def save_progress(
    conn: Queryable,
    run_id: int,
    *,
    examined: int,
    healed: int,
    found: int,
    resume_from: dict[str, Any] | None,
) -> None:
    await conn.execute(
        update(reconcile_runs)
        .where(reconcile_runs.c.id == run_id)
        .values(examined=examined, healed=healed, found=found, resume_from=resume_from)
    )


async def finish_run(
    conn: Queryable,
    run_id: int,
    *,
    status: str,
    now: datetime,
    duration_ms: int,
    error: str | None = None,
) -> None:
    """End a run: succeeded or failed, or interrupted (it may be taken again)."""
    if status not in (SUCCEEDED, FAILED, INTERRUPTED):
        raise ValueError(f"a run cannot end {status!r}")
    await conn.execute(
        update(reconcile_runs)
        .where(reconcile_runs.c.id == run_id)
        .values(
            status=status,
            error=None if error is None else error[:ERROR_LENGTH],
            finished_at=None if status == INTERRUPTED else now,
            duration_ms=duration_ms,
        )
    )


async def interrupt_abandoned(conn: Queryable, ids: list[int] | None = None) -> list[int]:
    """Mark `running` runs (all, or these) `interrupted`: at start, the runs a dead process
    left; at stop, this process's own. Returns their ids, so they can be resumed."""
    statement = select(reconcile_runs.c.id).where(reconcile_runs.c.status == RUNNING)
    if ids is not None:
        statement = statement.where(reconcile_runs.c.id.in_(ids))
    found = [int(run_id) for (run_id,) in await conn.execute(statement)]
    if found:
        await conn.execute(
            update(reconcile_runs)
            .where(reconcile_runs.c.id.in_(found), reconcile_runs.c.status == RUNNING)
            .values(status=INTERRUPTED)
        )
    return found


def _run(row: Any) -> ReconcileRun:
    return ReconcileRun(
        id=int(row.id),
        scope=Scope.from_json(row.scope),
        dry_run=bool(row.dry_run),
        started_by=row.started_by,
        status=row.status,
        examined=int(row.examined),
        healed=int(row.healed),
        found=int(row.found),
        resume_from=row.resume_from,
        error=row.error,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        duration_ms=row.duration_ms,
    )
