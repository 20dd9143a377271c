"""Ledger rows as a caller may see them: one by id, or a page, newest first.

A merchant token sees its own rows only, and another merchant's row answers exactly as one
that does not exist (404), so ids cannot be probed.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import ColumnElement, select

from handlers.api.errors import ApiError
from handlers.api.models import PageQuery
from reconciler.ledger.rows import LedgerRow
from reconciler.ledger.session import LedgerSession
from reconciler.tokens import Principal

Row = TypeVar("Row", bound=LedgerRow)


async def visible_row(
    tx: LedgerSession, principal: Principal, kind: type[Row], row_id: int, *, param: str
) -> Row:
    """The row, if this caller may see it; `not_found` otherwise."""
    row = await tx.find(kind, "id", row_id)
    if row is None or not principal.may_see(row.merchant):
        raise ApiError("not_found", f"no {kind.singular} {row_id}", param=param)
    return row


async def page_of(
    tx: LedgerSession,
    principal: Principal,
    kind: type[Row],
    page: PageQuery,
    *filters: ColumnElement[Any],
) -> tuple[list[Row], bool]:
    """The page of rows matching `filters` this caller may see, and whether there are more."""
    table = kind.table
    statement = select(table.c.id).where(*filters).order_by(table.c.id.desc()).limit(page.limit + 1)
    if page.starting_after is not None:
        statement = statement.where(table.c.id < page.starting_after)
    if not principal.is_staff:
        statement = statement.where(table.c[kind.owner_column] == principal.merchant_id)
    ids = [int(row_id) for (row_id,) in await tx.execute(statement)]
    await tx.load(kind, "id", ids[: page.limit])
    return [await tx.get(kind, row_id) for row_id in ids[: page.limit]], len(ids) > page.limit
