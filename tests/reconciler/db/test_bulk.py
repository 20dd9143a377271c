from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import Table, func, select, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import StatementError
from sqlalchemy.ext.asyncio import AsyncConnection

from reconciler.db.bulk import insert_new, insert_rows, sqlite_utc_text
from reconciler.db.dialect import is_postgres
from reconciler.db.engine import Database
from reconciler.db.tables import discrepancies, inbox_events, merchants

# An aware time that is not UTC, with microseconds: stored, it must come back as this instant
# in UTC, to the microsecond.
AT = datetime(2026, 11, 26, 14, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
AT_UTC = datetime(2026, 11, 26, 12, 0, 0, 123456, tzinfo=UTC)


def inbox_row(stripe_id: str) -> dict[str, Any]:
    """Strings, a boolean, NULLs, integers (one beyond 32 bits) and aware datetimes."""
    return {
        "stripe_event_id": stripe_id,
        "endpoint": "connect",
        "event_type": "payout.paid",
        "livemode": True,
        "account": None,
        "stripe_created": 2**40 + 7,
        "payload": '{"id": "evt", "text": "caf\\u00e9 \'quoted\'"}',
        "status": "received",
        "attempts": 3,
        "next_attempt_at": AT,
        "locked_until": None,
        "last_error": 'it\'s "quoted"',
        "received_at": AT,
        "processed_at": AT + timedelta(seconds=1),
    }


def merchant_row(account: str, name: str = "Café O'Brien") -> dict[str, Any]:
    """Booleans both ways, a JSON column holding a list and an object."""
    return {
        "name": name,
        "email": None,
        "stripe_account_id": account,
        "connect_status": "restricted",
        "charges_enabled": True,
        "payouts_enabled": False,
        "details_submitted": True,
        "capabilities": {"transfers": "inactive"},
        "requirements": {"currently_due": ["external_account"], "disabled_reason": None},
        "created_at": AT,
        "updated_at": AT_UTC,
    }


def discrepancy_row(object_id: str) -> dict[str, Any]:
    """JSON columns given None (the JSON type stores a JSON null) and a nested value; a NULL
    foreign key."""
    return {
        "kind": "amount_mismatch",
        "object_type": "payment",
        "object_id": object_id,
        "merchant_id": None,
        "ledger_value": None,
        "stripe_value": {"amount": 1200, "currency": "usd", "refunds": [1, 2]},
        "detail": "differs",
        "status": "open",
        "detected_by": "test",
        "resolved_by": None,
        "resolution": None,
        "created_at": AT,
        "updated_at": AT,
        "resolved_at": None,
        "last_seen_at": AT,
        "first_run_id": None,
        "last_run_id": None,
        "resolved_how": None,
        "resolved_run_id": None,
    }


async def typed_row(conn: AsyncConnection, table: Table, row_id: int) -> dict[str, Any]:
    row = (await conn.execute(select(table).where(table.c.id == row_id))).one()
    return dict(row._mapping)


async def raw_row(conn: AsyncConnection, table: Table, row_id: int) -> dict[str, Any]:
    """What the database holds, as the driver hands it back: no SQLAlchemy type processing,
    so e.g. a JSON null and an SQL NULL, or two spellings of one timestamp, differ here."""
    sql = text(f"SELECT * FROM {table.name} WHERE id = :id")
    row = (await conn.execute(sql, {"id": row_id})).one()
    return dict(row._mapping)


async def id_of(conn: AsyncConnection, table: Table, column: str, value: str) -> int:
    row_id = await conn.scalar(select(table.c.id).where(table.c[column] == value))
    assert isinstance(row_id, int)
    return row_id


CASES = [
    pytest.param(inbox_events, "stripe_event_id", inbox_row, id="inbox_events"),
    pytest.param(merchants, "stripe_account_id", merchant_row, id="merchants"),
]
# insert_new needs a unique column; insert_rows takes any table.
ALL_CASES = [
    *CASES,
    pytest.param(discrepancies, "object_id", discrepancy_row, id="discrepancies"),
]


@pytest.mark.parametrize(("table", "key", "make"), ALL_CASES)
async def test_insert_rows_stores_exactly_what_sqlalchemy_insert_stores(
    db: Database, table: Table, key: str, make: Any
) -> None:
    ours, theirs = make("bulk"), make("core")
    async with db.write() as conn:
        await insert_rows(conn, table, [ours])
        await conn.execute(table.insert(), theirs)
    async with db.read() as conn:
        bulk_id = await id_of(conn, table, key, "bulk")
        core_id = await id_of(conn, table, key, "core")
        bulk, core = await typed_row(conn, table, bulk_id), await typed_row(conn, table, core_id)
        raw_bulk, raw_core = (
            await raw_row(conn, table, bulk_id),
            await raw_row(conn, table, core_id),
        )
    for row in (bulk, core, raw_bulk, raw_core):
        del row["id"]
        del row[key]
    assert bulk == core
    assert raw_bulk == raw_core
    # And what comes back is what went in; times as the same instant, in UTC.
    expected = {name: value for name, value in ours.items() if name != key}
    assert bulk == {
        name: (value.astimezone(UTC) if isinstance(value, datetime) else value)
        for name, value in expected.items()
    }
    times = [value for value in bulk.values() if isinstance(value, datetime)]
    assert times and all(value.tzinfo is UTC for value in times)


async def test_insert_rows_writes_many_rows_in_order(db: Database) -> None:
    rows = [inbox_row(f"evt_{n}") for n in range(250)]
    async with db.write() as conn:
        await insert_rows(conn, inbox_events, rows)
        await insert_rows(conn, inbox_events, [])  # nothing to do, nothing done
    async with db.read() as conn:
        stored = (
            await conn.execute(select(inbox_events.c.stripe_event_id).order_by(inbox_events.c.id))
        ).scalars()
        assert list(stored) == [f"evt_{n}" for n in range(250)]


async def test_insert_rows_is_undone_with_its_transaction(db: Database) -> None:
    # PostgreSQL copies through the driver's connection, around SQLAlchemy: the rows must
    # still belong to the transaction, even when the copy is its first statement.
    class Abandon(Exception):
        pass

    with pytest.raises(Abandon):
        async with db.write() as conn:
            await insert_rows(conn, inbox_events, [inbox_row("evt_1"), inbox_row("evt_2")])
            raise Abandon
    async with db.read() as conn:
        assert await conn.scalar(select(func.count()).select_from(inbox_events)) == 0


async def test_insert_rows_sees_and_is_seen_by_its_transaction(db: Database) -> None:
    async with db.write() as conn:
        await conn.execute(inbox_events.insert(), inbox_row("evt_before"))
        await insert_rows(conn, inbox_events, [inbox_row("evt_bulk")])
        count = select(func.count()).select_from(inbox_events)
        assert await conn.scalar(count) == 2
    async with db.read() as conn:
        assert await conn.scalar(count) == 2


async def stored_ids(conn: AsyncConnection) -> dict[str, int]:
    rows = await conn.execute(select(merchants.c.stripe_account_id, merchants.c.id))
    return {account: row_id for account, row_id in rows}


async def test_insert_new_inserts_only_new_values_and_returns_their_real_ids(
    db: Database,
) -> None:
    async with db.write() as conn:
        await conn.execute(merchants.insert(), merchant_row("acct_old", "old"))
    async with db.write() as conn:
        inserted = await insert_new(
            conn,
            merchants,
            [
                merchant_row("acct_old", "not stored"),
                merchant_row("acct_a", "a"),
                merchant_row("acct_b", "b"),
            ],
            unique="stripe_account_id",
        )
    async with db.read() as conn:
        ids = await stored_ids(conn)
        names = dict(
            (await conn.execute(select(merchants.c.stripe_account_id, merchants.c.name))).all()
        )
    assert inserted == {"acct_a": ids["acct_a"], "acct_b": ids["acct_b"]}
    assert set(ids) == {"acct_old", "acct_a", "acct_b"}
    assert names == {"acct_old": "old", "acct_a": "a", "acct_b": "b"}  # the old row untouched


async def test_insert_new_keeps_one_row_of_a_value_repeated_in_one_call(db: Database) -> None:
    # ON CONFLICT DO NOTHING also skips a row that conflicts with one inserted earlier by the
    # same statement (both databases). Which of the two is kept is not promised; that one row
    # is kept, and its real id returned, is.
    async with db.write() as conn:
        inserted = await insert_new(
            conn,
            merchants,
            [merchant_row("acct_a", "first"), merchant_row("acct_a", "second")],
            unique="stripe_account_id",
        )
    async with db.read() as conn:
        rows = (await conn.execute(select(merchants.c.id, merchants.c.name))).all()
    [(row_id, name)] = rows
    assert inserted == {"acct_a": row_id}
    assert name in {"first", "second"}


async def test_insert_new_of_nothing_new_returns_nothing(db: Database) -> None:
    async with db.write() as conn:
        first = await insert_new(conn, inbox_events, [inbox_row("evt_1")], "stripe_event_id")
        again = await insert_new(conn, inbox_events, [inbox_row("evt_1")], "stripe_event_id")
        empty = await insert_new(conn, inbox_events, [], "stripe_event_id")
        assert first == {"evt_1": await id_of(conn, inbox_events, "stripe_event_id", "evt_1")}
    assert (again, empty) == ({}, {})


@pytest.mark.parametrize(("table", "key", "make"), CASES)
async def test_insert_new_stores_exactly_what_sqlalchemy_insert_stores(
    db: Database, table: Table, key: str, make: Any
) -> None:
    # Rows reach the database as arrays (PostgreSQL) or one JSON document (SQLite): every
    # value must still land as SQLAlchemy would have stored it.
    ours: Mapping[str, Any] = make("bulk")
    async with db.write() as conn:
        inserted = await insert_new(conn, table, [ours], unique=key)
        await conn.execute(table.insert(), make("core"))
    async with db.read() as conn:
        core_id = await id_of(conn, table, key, "core")
        bulk, core = (
            await typed_row(conn, table, inserted["bulk"]),
            await typed_row(conn, table, core_id),
        )
        raw_bulk, raw_core = (
            await raw_row(conn, table, inserted["bulk"]),
            await raw_row(conn, table, core_id),
        )
    for row in (bulk, core, raw_bulk, raw_core):
        del row["id"]
        del row[key]
    assert bulk == core
    assert raw_bulk == raw_core


async def test_bulk_inserts_refuse_a_naive_datetime_as_sqlalchemy_does(db: Database) -> None:
    # The column types' own conversion runs on these paths too, checks included.
    naive = {**inbox_row("evt_naive"), "received_at": datetime(2026, 11, 26, 12, 0)}
    async with db.write() as conn:
        with pytest.raises(ValueError, match="naive datetime"):
            await insert_rows(conn, inbox_events, [naive])
        with pytest.raises(ValueError, match="naive datetime"):
            await insert_new(conn, inbox_events, [naive], "stripe_event_id")
        with pytest.raises(StatementError, match="naive datetime"):
            await conn.execute(inbox_events.insert(), naive)


@pytest.mark.postgres
async def test_insert_new_refuses_a_value_too_long_rather_than_cutting_it(db: Database) -> None:
    if not is_postgres(db):
        pytest.skip("SQLite keeps text whole whatever the declared length")
    too_long = "acct_" + "x" * 64  # the column is VARCHAR(64)
    with pytest.raises(StatementError, match="too long"):
        async with db.write() as conn:
            await insert_new(
                conn, merchants, [merchant_row(too_long, "long")], unique="stripe_account_id"
            )
    async with db.read() as conn:
        assert await stored_ids(conn) == {}


@pytest.mark.parametrize(
    "value",
    [
        AT,
        AT_UTC,
        datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),  # no microseconds: still written
        datetime(999, 12, 31, 23, 59, 59, 1, tzinfo=timezone(timedelta(hours=-5))),
        None,
    ],
)
def test_sqlite_timestamps_are_written_as_sqlalchemy_writes_them(value: datetime | None) -> None:
    dialect = sqlite.dialect()
    column_type = inbox_events.c.received_at.type
    expected = column_type.dialect_impl(dialect).bind_processor(dialect)(value)
    assert sqlite_utc_text(value) == expected
