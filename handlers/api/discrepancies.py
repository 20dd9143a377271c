"""Discrepancies, for operators: what differs between the ledger and Stripe, and resolving
by hand what only a person can (with a note saying what was done)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, cast

from pydantic import Field, field_validator

from handlers.api.endpoints import STAFF, Call, Endpoint
from handlers.api.errors import ApiError
from handlers.api.models import Answer, Body, Id, Page, PageQuery
from reconciler.reconcile.discrepancies import KINDS
from reconciler.reconcile.review import (
    Discrepancy,
    get_discrepancy,
    list_discrepancies,
    resolve_by_operator,
)
from reconciler.types import utcnow

DiscrepancyStatus = Literal["open", "resolved", "dismissed"]


class ResolutionAnswer(Answer):
    how: str = Field(
        description="healed (a run applied Stripe's truth), operator (a person, with a note), "
        "cleared (a run no longer saw it) or ended (the path that opened it saw it end)"
    )
    by: str | None
    note: str | None
    run_id: int | None = Field(description="the run that healed or cleared it")
    resolved_at: datetime | None


class DiscrepancyAnswer(Answer):
    id: int
    kind: str
    object_type: str
    object_id: str
    account_id: int | None
    ledger_value: Any = Field(description="what the ledger holds (JSON), if it holds anything")
    stripe_value: Any = Field(description="what Stripe holds (JSON), if it holds anything")
    detail: str
    detected_by: str
    status: DiscrepancyStatus
    first_seen_at: datetime
    last_seen_at: datetime
    first_run_id: int | None
    last_run_id: int | None
    resolution: ResolutionAnswer | None

    @classmethod
    def of(cls, found: Discrepancy) -> DiscrepancyAnswer:
        resolution = None
        if found.status != "open":
            resolution = ResolutionAnswer(
                how=found.resolved_how or "ended",
                by=found.resolved_by,
                note=found.resolution,
                run_id=found.resolved_run_id,
                resolved_at=found.resolved_at,
            )
        return cls(
            id=found.id,
            kind=found.kind,
            object_type=found.object_type,
            object_id=found.object_id,
            account_id=found.merchant_id,
            ledger_value=found.ledger_value,
            stripe_value=found.stripe_value,
            detail=found.detail,
            detected_by=found.detected_by,
            status=cast(DiscrepancyStatus, found.status),
            first_seen_at=found.first_seen_at,
            last_seen_at=found.last_seen_at,
            first_run_id=found.first_run_id,
            last_run_id=found.last_run_id,
            resolution=resolution,
        )


class DiscrepancyQuery(PageQuery):
    status: Literal["open", "resolved"] | None = None
    kind: Annotated[str, Field(json_schema_extra={"enum": list(KINDS)})] | None = None
    account_id: Id | None = Field(None, description="one merchant's")

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, kind: str | None) -> str | None:
        if kind is not None and kind not in KINDS:
            raise ValueError(f"unknown kind; one of {', '.join(KINDS)}")
        return kind


class ResolveBody(Body):
    note: str = Field(
        min_length=1, max_length=2000, description="what was done about it, for the record"
    )


async def list_all(call: Call) -> Page[DiscrepancyAnswer]:
    query: DiscrepancyQuery = call.query
    async with call.runtime.database.read() as conn:
        found, more = await list_discrepancies(
            conn,
            limit=query.limit,
            starting_after=query.starting_after,
            status=query.status,
            kind=query.kind,
            merchant_id=query.account_id,
        )
    return Page[DiscrepancyAnswer](data=[DiscrepancyAnswer.of(d) for d in found], has_more=more)


async def get_one(call: Call) -> DiscrepancyAnswer:
    discrepancy_id = call.path["discrepancy_id"]
    async with call.runtime.database.read() as conn:
        found = await get_discrepancy(conn, discrepancy_id)
    if found is None:
        raise ApiError("not_found", f"no discrepancy {discrepancy_id}", param="discrepancy_id")
    return DiscrepancyAnswer.of(found)


async def resolve(call: Call) -> DiscrepancyAnswer:
    body: ResolveBody = call.body
    note = body.note.strip()
    if not note:
        raise ApiError("invalid_request", "the note must say something", param="note")
    async with call.runtime.database.write() as conn:
        resolved = await resolve_by_operator(
            conn, call.path["discrepancy_id"], note, call.principal.label, utcnow()
        )
    return DiscrepancyAnswer.of(resolved)


DISCREPANCY = {"discrepancy_id": int}
ENDPOINTS = [
    Endpoint(
        "GET",
        "/discrepancies",
        list_all,
        "List discrepancies, newest first, by status, kind or merchant",
        Page[DiscrepancyAnswer],
        roles=STAFF,
        query=DiscrepancyQuery,
    ),
    Endpoint(
        "GET",
        "/discrepancies/{discrepancy_id}",
        get_one,
        "A discrepancy: the object, both values, when it was seen, how it was resolved",
        DiscrepancyAnswer,
        roles=STAFF,
        path_params=DISCREPANCY,
    ),
    Endpoint(
        "POST",
        "/discrepancies/{discrepancy_id}/resolve",
        resolve,
        "Resolve an open discrepancy by hand, with a note saying what was done",
        DiscrepancyAnswer,
        roles=STAFF,
        body=ResolveBody,
        path_params=DISCREPANCY,
        errors=("illegal_transition",),
    ),
]
