"""What operators read and do with discrepancies: list them, look at one, resolve one with a
note, and count what a run left open.

Runs and the paths open and close discrepancies by themselves (`discrepancies.py`); a person
resolves what only a person can (a transfer made outside ICPay attributed by hand, say), and
the note says what was done.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update

from reconciler.db.tables import discrepancies
from reconciler.errors import IllegalTransition, NotFound
from reconciler.reconcile.runs import ReconcileRun, get_run
from reconciler.types import Queryable

OPEN, RESOLVED = "open", "resolved"
STATUSES = (OPEN, RESOLVED)
# resolved_by is this long in the table.
WHO_LENGTH = 100


@dataclass(frozen=True)
class Discrepancy:
    id: int
    kind: str
    object_type: str
    object_id: str
    merchant_id: int | None
    ledger_value: Any
    stripe_value: Any
    detail: str
    status: str
    detected_by: str
    first_seen_at: datetime
    last_seen_at: datetime
    first_run_id: int | None
    last_run_id: int | None
    # How it ended: healed, operator, cleared or ended; None while open.
    resolved_how: str | None
    resolved_by: str | None
    resolution: str | None
    resolved_at: datetime | None
    resolved_run_id: int | None


async def list_discrepancies(
    conn: Queryable,
    *,
    limit: int,
    starting_after: int | None = None,
    status: str | None = None,
    kind: str | None = None,
    merchant_id: int | None = None,
) -> tuple[list[Discrepancy], bool]:
    """A page of discrepancies, newest first, and whether there are more."""
    statement = select(discrepancies).order_by(discrepancies.c.id.desc()).limit(limit + 1)
    if starting_after is not None:
        statement = statement.where(discrepancies.c.id < starting_after)
    if status is not None:
        statement = statement.where(discrepancies.c.status == status)
    if kind is not None:
        statement = statement.where(discrepancies.c.kind == kind)
    if merchant_id is not None:
        statement = statement.where(discrepancies.c.merchant_id == merchant_id)
    rows = [_discrepancy(row) for row in await conn.execute(statement)]
    return rows[:limit], len(rows) > limit


async def get_discrepancy(conn: Queryable, discrepancy_id: int) -> Discrepancy | None:
    result = await conn.execute(select(discrepancies).where(discrepancies.c.id == discrepancy_id))
    row = result.one_or_none()
    return None if row is None else _discrepancy(row)


async def resolve_by_operator(
    conn: Queryable, discrepancy_id: int, note: str, who: str, now: datetime
) -> Discrepancy:
    """Resolve an open discrepancy by hand, keeping the note. One statement checks and acts,
    so of two operators resolving it at once exactly one does; the other, and anyone
    resolving a resolved one, gets `IllegalTransition`."""
    result = await conn.execute(
        update(discrepancies)
        .where(discrepancies.c.id == discrepancy_id, discrepancies.c.status == OPEN)
        .values(
            status=RESOLVED,
            resolved_how="operator",
            resolved_by=who[:WHO_LENGTH],
            resolution=note,
            resolved_at=now,
            # What was last seen stays what it was: resolving is not seeing it again.
            last_seen_at=func.coalesce(discrepancies.c.last_seen_at, discrepancies.c.updated_at),
            updated_at=now,
        )
    )
    found = await get_discrepancy(conn, discrepancy_id)
    if found is None:
        raise NotFound(f"no discrepancy {discrepancy_id}")
    if not result.rowcount:
        raise IllegalTransition(
            f"discrepancy {discrepancy_id} is {found.status} already"
            + (f" ({found.resolved_how})" if found.resolved_how else "")
            + ": only an open one can be resolved"
        )
    return found


@dataclass(frozen=True)
class RunSummary:
    """A run's record and the discrepancies it saw that are still open, by kind."""

    run: ReconcileRun
    open_by_kind: dict[str, int]

    @property
    def open_total(self) -> int:
        return sum(self.open_by_kind.values())


async def summarise_run(conn: Queryable, run_id: int) -> RunSummary:
    """`NotFound` if there is no such run."""
    run = await get_run(conn, run_id)
    if run is None:
        raise NotFound(f"no reconcile run {run_id}")
    counted = await conn.execute(
        select(discrepancies.c.kind, func.count())
        .where(discrepancies.c.last_run_id == run_id, discrepancies.c.status == OPEN)
        .group_by(discrepancies.c.kind)
    )
    by_kind = {kind: int(count) for kind, count in counted}
    return RunSummary(run=run, open_by_kind=dict(sorted(by_kind.items())))


def _discrepancy(row: Any) -> Discrepancy:
    return Discrepancy(
        id=int(row.id),
        kind=row.kind,
        object_type=row.object_type,
        object_id=row.object_id,
        merchant_id=row.merchant_id,
        ledger_value=row.ledger_value,
        stripe_value=row.stripe_value,
        detail=row.detail,
        status=row.status,
        detected_by=row.detected_by,
        first_seen_at=row.created_at,
        # Rows written before runs kept `last_seen_at` were brought up to date on each sighting.
        last_seen_at=row.last_seen_at or row.updated_at,
        first_run_id=row.first_run_id,
        last_run_id=row.last_run_id,
        resolved_how=row.resolved_how,
        resolved_by=row.resolved_by,
        resolution=row.resolution,
        resolved_at=row.resolved_at,
        resolved_run_id=row.resolved_run_id,
    )
