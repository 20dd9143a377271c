"""Inserting many rows through the database's own bulk paths.

SQLAlchemy's executemany prepares each row's parameters one by one, which costs more than the
database's own work once a transaction writes thousands of rows. Here each column's value is
converted by the column's own type (the same conversion SQLAlchemy applies, so what is stored
is identical), then the rows go to the database whole:
- `insert_rows`: COPY on PostgreSQL (asyncpg), one prepared INSERT run over every row on
  SQLite (sqlite3's executemany, a loop in C).
- `insert_new`: one `INSERT ... SELECT ... ON CONFLICT DO NOTHING RETURNING` whose rows come
  in as arrays (PostgreSQL `unnest`) or one JSON array (SQLite `json_each`): deduplication
  stays the unique constraint's, set-based, and the answer says which rows were new.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, Table, text
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection

from reconciler.db.dialect import is_postgres
from reconciler.db.tables import UTCDateTime

_LENGTH = re.compile(r"\(\d+\)")


# SQLAlchemy's SQLite DATETIME text (its default storage format): what `sqlite_utc_text`
# writes in one step.
SQLITE_DATETIME = (
    "%(year)04d-%(month)02d-%(day)02d %(hour)02d:%(minute)02d:%(second)02d.%(microsecond)06d"
)


def sqlite_utc_text(value: datetime | None) -> str | None:
    """An aware datetime as `UTCDateTime` then SQLite's DATETIME store it (the UTC instant,
    `YYYY-MM-DD HH:MM:SS.ffffff`), with the same refusal of a naive one: one call instead of
    a decorator's and a dialect's, for the several timestamps of every row a batch writes."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime given to the database; pass an aware UTC datetime")
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None).isoformat(" ", "microseconds")


def _converter(column: Column[Any], dialect: Dialect) -> Callable[[Any], Any] | None:
    if isinstance(column.type, UTCDateTime) and not is_postgres(dialect):
        storage = getattr(column.type.impl.dialect_impl(dialect), "_storage_format", None)
        if storage == SQLITE_DATETIME:
            return sqlite_utc_text
    processor: Callable[[Any], Any] | None = column.type.dialect_impl(dialect).bind_processor(
        dialect
    )
    return processor


def _records(
    columns: Sequence[Column[Any]], rows: Sequence[Mapping[str, Any]], dialect: Dialect
) -> list[tuple[Any, ...]]:
    names = [column.name for column in columns]
    # The values in column order, taken in C (itemgetter), then the few columns whose type
    # converts (timestamps, mostly) converted in place.
    values = operator.itemgetter(*names)
    records = [(values(row),) for row in rows] if len(names) == 1 else [values(row) for row in rows]
    converters = [
        (position, convert)
        for position, convert in enumerate(_converter(column, dialect) for column in columns)
        if convert is not None
    ]
    if not converters:
        return records
    converted = []
    for record in records:
        fields = list(record)
        for position, convert in converters:
            fields[position] = convert(fields[position])
        converted.append(tuple(fields))
    return converted


async def insert_rows(
    conn: AsyncConnection, table: Table, rows: Sequence[Mapping[str, Any]]
) -> None:
    """Insert `rows` (each with the same keys) into `table` in the current transaction."""
    if not rows:
        return
    columns = [table.c[name] for name in rows[0]]
    records = _records(columns, rows, conn.dialect)
    if is_postgres(conn):
        raw = (await conn.get_raw_connection()).driver_connection
        assert raw is not None
        if not raw.is_in_transaction():
            # SQLAlchemy's asyncpg adapter opens the transaction with its first statement;
            # COPY goes straight to the driver, so make sure it runs inside it.
            await conn.execute(text("SELECT 1"))
        await raw.copy_records_to_table(
            table.name, records=records, columns=[column.name for column in columns]
        )
        return
    placeholders = ", ".join("?" for _ in columns)
    names = ", ".join(f'"{column.name}"' for column in columns)
    await conn.exec_driver_sql(
        f'INSERT INTO "{table.name}" ({names}) VALUES ({placeholders})', records
    )


def new_rows_statement(
    table: Table,
    columns: Sequence[Column[Any]],
    dialect: Dialect,
    unique: str,
    placeholder: Callable[[int], str],
) -> str:
    """The one statement `insert_new` runs: rows in as arrays (PostgreSQL, one parameter per
    column) or as one JSON array (SQLite, one parameter), spelled with `placeholder(n)`."""
    names = ", ".join(f'"{column.name}"' for column in columns)
    conflict = f'ON CONFLICT ("{unique}") DO NOTHING RETURNING "{unique}", "id"'
    if is_postgres(dialect):
        # Arrays of the base type, without a length: an explicit cast to VARCHAR(n) would cut
        # a longer value short in silence; the INSERT's own conversion refuses it instead.
        sources = ", ".join(
            f"CAST({placeholder(i)} AS {_LENGTH.sub('', column.type.compile(dialect))}[])"
            for i, column in enumerate(columns)
        )
        return f'INSERT INTO "{table.name}" ({names}) SELECT * FROM unnest({sources}) {conflict}'
    fields = ", ".join(f"json_extract(value, '$[{i}]')" for i in range(len(columns)))
    # `WHERE true`: SQLite's grammar needs it to read ON CONFLICT as the upsert, not a join.
    return (
        f'INSERT INTO "{table.name}" ({names}) SELECT {fields} '
        f"FROM json_each({placeholder(0)}) WHERE true {conflict}"
    )


def new_rows_parameters(
    columns: Sequence[Column[Any]], rows: Sequence[Mapping[str, Any]], dialect: Dialect
) -> list[Any]:
    """The parameters of `new_rows_statement`, in placeholder order."""
    records = _records(columns, rows, dialect)
    if is_postgres(dialect):
        return [[record[i] for record in records] for i in range(len(columns))]
    return [json.dumps(records)]


async def insert_new(
    conn: AsyncConnection, table: Table, rows: Sequence[Mapping[str, Any]], unique: str
) -> dict[Any, int]:
    """Insert the `rows` (each with the same keys) whose `unique` column value is not stored
    yet, in one statement; return the `unique` value of each row inserted, with its id."""
    if not rows:
        return {}
    columns = [table.c[name] for name in rows[0]]
    sql = new_rows_statement(table, columns, conn.dialect, unique, lambda i: f":p{i}")
    values = new_rows_parameters(columns, rows, conn.dialect)
    parameters = {f"p{i}": value for i, value in enumerate(values)}
    return {key: row_id for key, row_id in await conn.execute(text(sql), parameters)}
