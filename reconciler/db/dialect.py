"""Which database this is, spelled one way, and the few statements whose spelling differs
between SQLite and PostgreSQL."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, Protocol

from sqlalchemy import (
    ColumnElement,
    Select,
    Table,
    any_,
    bindparam,
    func,
    literal,
    select,
    text,
    true,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection


class Connected(Protocol):
    """A database, a connection, or anything running statements on one (a ledger session)."""

    @property
    def dialect(self) -> Dialect: ...


def is_postgres(target: Connected | Dialect) -> bool:
    """PostgreSQL (row locks, SKIP LOCKED, sequences), as opposed to SQLite (one writer at a
    time under BEGIN IMMEDIATE). The service runs on these two only (config refuses others)."""
    dialect = target if isinstance(target, Dialect) else target.dialect
    return dialect.name == "postgresql"


def insert_for(conn: Connected, table: Table) -> Any:
    """An INSERT that understands ON CONFLICT on the connection's database."""
    if is_postgres(conn):
        return postgresql.insert(table)
    return sqlite.insert(table)


def rows_where(
    table: Table, column: str, values: list[Any], dialect: Dialect
) -> tuple[Select[Any], dict[str, Any]]:
    """The rows whose `column` is one of `values`: a statement and its parameters. SQLite
    looks each value up in the column's unique index. PostgreSQL gets the values as one
    array, each looked up on its own (a lateral join): an IN list is compared row by row, and
    on a table not yet analysed the planner may choose to scan it all, once per batch,
    however large it has grown. The statement is built once per table and column, the values
    its one parameter, so it is compiled once too."""
    return _rows_where(table, column, is_postgres(dialect)), {"wanted": values}


def one_of(
    column: ColumnElement[Any], values: Sequence[Any], dialect: Dialect
) -> ColumnElement[bool]:
    """`column IN values`, spelled so the statement is the same whatever the values' number:
    on PostgreSQL one array parameter (`= ANY`), so it is compiled and prepared once rather
    than once per length of list, with a placeholder per value rendered each time."""
    if is_postgres(dialect):
        return column == any_(literal(list(values), ARRAY(column.type)))
    return column.in_(values)


@functools.cache
def _rows_where(table: Table, column: str, postgres: bool) -> Select[Any]:
    if not postgres:
        return select(table).where(table.c[column].in_(bindparam("wanted", expanding=True)))
    keys = (
        func.unnest(bindparam("wanted", type_=ARRAY(table.c[column].type)))
        .table_valued("value")
        .render_derived(name="wanted")
    )
    match = select(table).where(table.c[column] == keys.c.value).lateral()
    return select(*match.c).select_from(keys).join(match, true())


async def sequence_ids(conn: AsyncConnection, table: Table, count: int) -> list[int]:
    """`count` ids from the table's own sequence (PostgreSQL): never the same twice, whatever
    other transactions take meanwhile."""
    rows = await conn.execute(
        text("SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :n)"),
        {"table": table.name, "n": count},
    )
    return [int(value) for (value,) in rows]


class Executes(Connected, Protocol):
    async def execute(self, statement: Any, parameters: Any = None) -> Any: ...


# One key for the platform's money: every check of the platform balance that then commits
# to spending it holds this lock, so two merchants cannot both spend the last dollar.
PLATFORM_SPEND_LOCK = 0x1C0A7_5BE4D


async def lock_platform_spending(conn: Executes) -> None:
    """Serialise the transactions that check the platform's balance and then spend from it.
    PostgreSQL: a transaction-scoped advisory lock. SQLite: already so, one writer at a time."""
    if is_postgres(conn):
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PLATFORM_SPEND_LOCK})
