"""Reconcile runs, for operators: queue one, see how they went.

`POST /reconcile` answers `202` with the run's id at once; the engine does the run in the
background. An optional `Idempotency-Key` (scoped to the token) makes a retried POST answer
with the run it queued instead of queueing another.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Literal, cast

from pydantic import Field

from handlers.api.endpoints import STAFF, Call, Endpoint
from handlers.api.errors import ApiError
from handlers.api.idempotency import optional_token_key
from handlers.api.models import Answer, Body, Id, Page, PageQuery
from reconciler.errors import NotFound
from reconciler.reconcile.review import summarise_run
from reconciler.reconcile.runs import (
    ReconcileRun,
    check_scope,
    get_run,
    list_runs,
    queue_requested_run,
    queue_run,
)
from reconciler.reconcile.scope import Scope
from reconciler.types import utcnow

log = logging.getLogger("reconciler.api")
RunStatus = Literal["queued", "running", "succeeded", "failed", "interrupted"]


class ScopeBody(Body):
    """Everything when empty. `object` stands alone; `account_id` and the window may be
    combined."""

    object: str | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        description="one Stripe object: a pi_, ch_, re_, tr_ or acct_ id",
    )
    account_id: Id | None = Field(default=None, description="one merchant (ICPay account id)")
    since: datetime | None = Field(
        default=None, description="Stripe objects created at or after this"
    )
    until: datetime | None = Field(default=None, description="Stripe objects created before this")

    def to_scope(self) -> Scope:
        return Scope(
            object_id=self.object, account_id=self.account_id, since=self.since, until=self.until
        )


class ReconcileCreate(Body):
    scope: ScopeBody = Field(default_factory=lambda: ScopeBody(), description="{} for everything")
    dry_run: bool = Field(False, description="only report what differs; heal nothing")


class RunQueued(Answer):
    id: int
    status: RunStatus


class ScopeAnswer(Answer):
    object: str | None
    account_id: int | None
    since: datetime | None
    until: datetime | None
    description: str = Field(description="the scope in words, e.g. `merchant 7`")

    @classmethod
    def of(cls, scope: Scope) -> ScopeAnswer:
        return cls(
            object=scope.object_id,
            account_id=scope.account_id,
            since=scope.since,
            until=scope.until,
            description=scope.describe(),
        )


class RunAnswer(Answer):
    id: int
    scope: ScopeAnswer
    dry_run: bool
    started_by: str = Field(description="`role:name` of the token that asked, `cli`, or a job")
    status: RunStatus
    examined: int
    healed: int
    found: int
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None

    @classmethod
    def of(cls, run: ReconcileRun) -> RunAnswer:
        return cls(
            id=run.id,
            scope=ScopeAnswer.of(run.scope),
            dry_run=run.dry_run,
            started_by=run.started_by,
            status=cast(RunStatus, run.status),
            examined=run.examined,
            healed=run.healed,
            found=run.found,
            error=run.error,
            created_at=run.created_at,
            started_at=run.started_at,
            finished_at=run.finished_at,
            duration_ms=run.duration_ms,
        )


class RunDetail(RunAnswer):
    open_by_kind: dict[str, int] = Field(
        description="the discrepancies this run saw last that are still open, by kind"
    )


class RunQuery(PageQuery):
    status: RunStatus | None = None


async def create_run(call: Call) -> tuple[int, RunQueued]:
    body: ReconcileCreate = call.body
    scope = body.scope.to_scope()  # `InvalidScope` names the field at fault
    request = optional_token_key(call, body.model_dump_json())
    now = utcnow()
    async with call.runtime.database.write() as conn:
        try:
            await check_scope(conn, scope)
        except NotFound as error:
            raise ApiError("not_found", str(error), param="scope.account_id") from None
        started_by = call.principal.label
        if request is None:
            run_id = await queue_run(
                conn, scope, dry_run=body.dry_run, started_by=started_by, now=now
            )
            new = True
        else:
            run_id, new = await queue_requested_run(
                conn, scope, dry_run=body.dry_run, started_by=started_by, now=now, request=request
            )
    if new:
        _start(call, run_id)
    async with call.runtime.database.read() as conn:
        run = await get_run(conn, run_id)
    assert run is not None  # runs are never deleted
    return 202, RunQueued(id=run.id, status=cast(RunStatus, run.status))


def _start(call: Call, run_id: int) -> None:
    """The run is queued (durable) already: an engine that cannot start it now leaves it
    queued for another start, and the answer is still its id."""
    try:
        call.runtime.reconciler.start(run_id)
    except Exception:
        log.exception("starting reconcile run %d failed: it stays queued", run_id)


async def list_reconcile_runs(call: Call) -> Page[RunAnswer]:
    query: RunQuery = call.query
    async with call.runtime.database.read() as conn:
        runs, more = await list_runs(
            conn, limit=query.limit, starting_after=query.starting_after, status=query.status
        )
    return Page[RunAnswer](data=[RunAnswer.of(run) for run in runs], has_more=more)


async def get_reconcile_run(call: Call) -> RunDetail:
    run_id = call.path["run_id"]
    async with call.runtime.database.read() as conn:
        try:
            summary = await summarise_run(conn, run_id)
        except NotFound as error:
            raise ApiError("not_found", str(error), param="run_id") from None
    return RunDetail(**RunAnswer.of(summary.run).model_dump(), open_by_kind=summary.open_by_kind)


ENDPOINTS = [
    Endpoint(
        "POST",
        "/reconcile",
        create_run,
        "Queue a reconcile run of one object, one merchant, a window or everything "
        "(operators and admins; Idempotency-Key optional)",
        RunQueued,
        roles=STAFF,
        status=202,
        body=ReconcileCreate,
        idempotency_key="optional",
        errors=("not_found", "idempotency_conflict"),
    ),
    Endpoint(
        "GET",
        "/reconcile/runs",
        list_reconcile_runs,
        "List reconcile runs, newest first",
        Page[RunAnswer],
        roles=STAFF,
        query=RunQuery,
    ),
    Endpoint(
        "GET",
        "/reconcile/runs/{run_id}",
        get_reconcile_run,
        "A reconcile run: its scope, who started it, its counts, how it ended, what is open",
        RunDetail,
        roles=STAFF,
        path_params={"run_id": int},
    ),
]
