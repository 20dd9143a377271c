"""The ledger's unit of work: every ledger change reads and writes through one of these.

A `LedgerSession` wraps one transaction. Rows it has read are held once each (an identity
map, also indexed by their Stripe ids), so asking again costs no statement; changes and
journal entries are kept in memory and written together by `flush`: one multi-row INSERT or
executemany UPDATE per table, however many events the transaction applies. Anything that
queries the database directly goes through `execute`, which flushes first, so a query never
misses a change made earlier in the same transaction.

Serialisation is unchanged by the buffering. On SQLite the transaction holds the write lock
from its start (`BEGIN IMMEDIATE`), so every row it reads is current. On PostgreSQL `lock`
takes the owning merchant's row `FOR UPDATE` the first time the transaction touches that
merchant, and re-reads whatever it already held of the merchant, so decisions are made on
committed state. Ids of new rows are taken before the INSERT (SQLite: after the largest
under the write lock; PostgreSQL: from the table's sequence), so a new payment's id can name
its journal entries before anything is written.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, Table, bindparam, func, literal, select, text, true
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import CursorResult, Dialect
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import Executable

from reconciler.db.bulk import insert_rows
from reconciler.db.dialect import is_postgres
from reconciler.db.engine import Database
from reconciler.db.tables import (
    merchants,
    payments,
    payouts,
    refunds,
)
from reconciler.errors import NotFound
from reconciler.ledger._posting import Entry, write_entries
from reconciler.ledger.journal import Leg, check_balanced

# Parents before children: the order new rows are inserted in.
LEDGER_TABLES = (merchants, payments, refunds, payouts)
# Columns (besides the id) that name one row, by which rows are looked up and indexed.
LOOKUP_COLUMNS = {
    "merchants": ("stripe_account_id",),
    "payments": ("payment_intent_id", "charge_id"),
    "refunds": ("stripe_refund_id",),
    "payouts": ("stripe_transfer_id",),
}
SINGULAR = {
    "merchants": "merchant",
    "payments": "payment",
    "refunds": "refund",
    "payouts": "payout",
}
_IN_CHUNK = 500  # values per IN (...) list: well under every driver's parameter limit
_MAX_ID_BLOCK = 1024  # ids a PostgreSQL transaction takes at once, at most


class ReadOnlySession(RuntimeError):
    """A change was attempted through a session opened for reading."""


class UnlockedChange(RuntimeError):
    """A held row was changed before its merchant was locked (a bug in the caller)."""


class Record:
    """One ledger row held by a session. Read like a Row (`payment.status`); changed only
    through `LedgerSession.update`, so the session knows what to write."""

    __slots__ = ("table", "values")

    def __init__(self, table: Table, values: dict[str, Any]) -> None:
        self.table = table
        self.values = values

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    def __repr__(self) -> str:
        return f"Record({self.table.name}, {self.values!r})"


class LedgerSession:
    """Reads, changes and journal entries of one transaction; see the module docstring."""

    def __init__(self, conn: AsyncConnection, *, writable: bool = True) -> None:
        self._conn = conn
        self._writable = writable
        self._locks_rows = is_postgres(conn)
        self._rows: dict[tuple[str, int], Record] = {}
        # (table, column, value) -> row id, or None when known to be absent.
        self._index: dict[tuple[str, str, Any], int | None] = {}
        self._locked: set[int] = set()
        self._new: dict[tuple[str, int], Record] = {}
        # Held rows changed, with the columns changed: only those are written back.
        self._dirty: dict[tuple[str, int], tuple[Record, set[str]]] = {}
        self._entries: list[Entry] = []
        self._posted: set[str] = set()
        self._spare_ids: dict[str, list[int]] = defaultdict(list)
        self._id_block: dict[str, int] = {}
        self._first_id_block = 1
        self._next_sqlite_id: dict[str, int] = {}

    @property
    def dialect(self) -> Dialect:
        return self._conn.dialect

    # -- queries -------------------------------------------------------------------------

    async def execute(
        self, statement: Executable, parameters: Any = None
    ) -> CursorResult[*tuple[Any, ...]]:
        """Run a statement of the caller's own, after writing everything held so far."""
        await self.flush()
        return await self._conn.execute(statement, parameters)

    async def scalar(self, statement: Executable) -> Any:
        return (await self.execute(statement)).scalar()

    # -- rows ----------------------------------------------------------------------------

    async def get(self, table: Table, row_id: int) -> Record:
        """The row with this id; `NotFound` if there is none."""
        record = await self.find(table, "id", row_id)
        if record is None:
            raise NotFound(f"{SINGULAR.get(table.name, table.name)} {row_id} does not exist")
        return record

    async def find(self, table: Table, column: str, value: Any) -> Record | None:
        """The row whose `column` (the id or a lookup column) holds `value`, or None."""
        if value is None:
            return None
        if not self._known(table, column, value):
            await self.load(table, column, [value])
        return self._cached(table, column, value)

    async def load(self, table: Table, column: str, values: Iterable[Any]) -> None:
        """Read every row whose `column` is one of `values` in one statement, so later
        `find`s cost nothing. Values already known (held, or known absent) are skipped."""
        wanted = [
            v for v in dict.fromkeys(values) if v is not None and not self._known(table, column, v)
        ]
        for start in range(0, len(wanted), _IN_CHUNK):
            chunk = wanted[start : start + _IN_CHUNK]
            rows = await self.execute(_rows_where(table, column, chunk, self.dialect))
            for row in rows.mappings():
                self._hold(table, dict(row))
            for value in chunk:
                self._index.setdefault((table.name, column, value), None)

    async def lock(self, table: Table, row_id: int) -> Record:
        """The row, decided on current data: on PostgreSQL its merchant is locked first
        (always merchant first, one order, so these locks cannot deadlock each other)."""
        if self._locks_rows:
            held = self._rows.get((table.name, row_id))
            merchant_id = None if held is None else _merchant_of(held)
            if merchant_id is None or merchant_id not in self._locked:
                owner = table.c.id if table is merchants else table.c.merchant_id
                owner_of_row = select(owner).where(table.c.id == row_id).scalar_subquery()
                await self._lock_merchants(merchants.c.id == owner_of_row)
        return await self.get(table, row_id)

    async def lock_merchant(self, merchant_id: int) -> Record:
        """The merchant's row, held until the transaction ends (PostgreSQL)."""
        return await self.lock(merchants, merchant_id)

    async def lock_merchants(self, merchant_ids: Iterable[int]) -> None:
        """Lock several merchants at once, in id order (a batch of many merchants' events)."""
        if not self._locks_rows:
            return
        wanted = sorted(set(merchant_ids) - self._locked)
        if wanted:
            await self._lock_merchants(merchants.c.id.in_(wanted))

    async def _lock_merchants(self, which: ColumnElement[bool]) -> None:
        query = select(merchants.c.id).where(which).order_by(merchants.c.id).with_for_update()
        locked = [int(merchant_id) for (merchant_id,) in await self.execute(query)]
        fresh = set(locked) - self._locked
        self._locked |= fresh
        await self._reread(fresh)
        if fresh:
            # "Not there" was learnt before the lock: let the next lookup ask again.
            self._index = {key: row_id for key, row_id in self._index.items() if row_id is not None}

    async def _reread(self, merchant_ids: set[int]) -> None:
        """Rows read before their merchant was locked may be stale: read them again, in place
        (callers keep the same Record). Nothing is unwritten here: locking flushed first."""
        if not merchant_ids:
            return
        stale: dict[str, list[int]] = defaultdict(list)
        for (table_name, row_id), record in self._rows.items():
            if _merchant_of(record) in merchant_ids:
                stale[table_name].append(row_id)
        for table in LEDGER_TABLES:
            ids = stale.get(table.name)
            for start in range(0, len(ids or ()), _IN_CHUNK):
                chunk = (ids or [])[start : start + _IN_CHUNK]
                rows = await self._conn.execute(select(table).where(table.c.id.in_(chunk)))
                for row in rows.mappings():
                    self._hold(table, dict(row))

    def held_merchants(self) -> set[int]:
        """The merchants of every row held."""
        owners = (_merchant_of(record) for record in self._rows.values())
        return {owner for owner in owners if owner is not None}

    async def insert(self, table: Table, **values: Any) -> Record:
        """A new row, written at the next flush; its id is known now."""
        self._check_writable()
        values["id"] = await self._next_id(table)
        record = Record(table, values)
        self._rows[(table.name, values["id"])] = record
        self._index_record(record)
        self._new[(table.name, values["id"])] = record
        return record

    def update(self, record: Record, *, now: datetime, **values: Any) -> None:
        """Change a held row (and its `updated_at`); written at the next flush. On PostgreSQL
        a row that exists already may change only once its merchant is locked (`lock`): a
        change decided on an unlocked read could undo one committed meanwhile."""
        self._check_writable()
        key = (record.table.name, record.values["id"])
        if self._locks_rows and key not in self._new and _merchant_of(record) not in self._locked:
            raise UnlockedChange(
                f"{SINGULAR.get(record.table.name, record.table.name)} {key[1]} changed "
                "without its merchant locked"
            )
        for column in LOOKUP_COLUMNS.get(record.table.name, ()):
            if column in values and values[column] != record.values.get(column):
                self._index.pop((record.table.name, column, record.values.get(column)), None)
        record.values.update(values, updated_at=now)
        self._index_record(record)
        if key not in self._new:
            changed = self._dirty.setdefault(key, (record, set()))[1]
            changed.update(values, ("updated_at",))

    def post(
        self,
        key: str,
        kind: str,
        legs: list[Leg],
        *,
        now: datetime,
        merchant_id: int | None = None,
    ) -> None:
        """Post a journal entry once: a key already posted (now or in an earlier transaction,
        which the unique key finds at flush) changes nothing."""
        self._check_writable()
        legs = [leg for leg in legs if leg.debit or leg.credit]
        check_balanced(legs)
        if key in self._posted:
            return
        self._posted.add(key)
        self._entries.append(Entry(key, kind, legs, merchant_id, now))

    # -- writing -------------------------------------------------------------------------

    async def flush(self) -> None:
        """Write every held change and entry: a few statements, whatever their number."""
        if not (self._new or self._dirty or self._entries):
            return
        new, dirty, entries = self._new, self._dirty, self._entries
        self._new, self._dirty, self._entries = {}, {}, []
        for table in LEDGER_TABLES:
            # One executemany per shape of row (the columns given), usually exactly one.
            shapes: dict[frozenset[str], list[dict[str, Any]]] = defaultdict(list)
            for record in new.values():
                if record.table is table:
                    shapes[frozenset(record.values)].append(dict(record.values))
            for rows in shapes.values():
                await insert_rows(self._conn, table, rows)
        for table in LEDGER_TABLES:
            # One executemany per set of columns changed.
            by_columns: dict[frozenset[str], list[Record]] = defaultdict(list)
            for record, changed in dirty.values():
                if record.table is table:
                    by_columns[frozenset(changed)].append(record)
            for names, records in by_columns.items():
                await self._write_changes(table, sorted(names), records)
        if entries:
            await write_entries(self._conn, entries)

    async def _write_changes(
        self, table: Table, columns: Sequence[str], records: Sequence[Record]
    ) -> None:
        statement = (
            table.update()
            .where(table.c.id == bindparam("_id"))
            .values({column: bindparam(column) for column in columns})
        )
        await self._conn.execute(
            statement,
            [
                {"_id": record.values["id"], **{c: record.values[c] for c in columns}}
                for record in records
            ],
        )

    # -- internals -----------------------------------------------------------------------

    def _check_writable(self) -> None:
        if not self._writable:
            raise ReadOnlySession("this ledger session was opened for reading")

    def _known(self, table: Table, column: str, value: Any) -> bool:
        if column == "id":
            return (table.name, value) in self._rows or (table.name, "id", value) in self._index
        return (table.name, column, value) in self._index

    def _cached(self, table: Table, column: str, value: Any) -> Record | None:
        row_id = value if column == "id" else self._index.get((table.name, column, value))
        return None if row_id is None else self._rows.get((table.name, row_id))

    def _hold(self, table: Table, values: dict[str, Any]) -> None:
        held = self._rows.get((table.name, values["id"]))
        if held is None:
            held = self._rows[(table.name, values["id"])] = Record(table, values)
        else:
            held.values.update(values)
        self._index_record(held)

    def _index_record(self, record: Record) -> None:
        for column in LOOKUP_COLUMNS.get(record.table.name, ()):
            value = record.values.get(column)
            if value is not None:
                self._index[(record.table.name, column, value)] = record.values["id"]

    async def _next_id(self, table: Table) -> int:
        if not self._locks_rows:
            return (await self._take_ids(table, 1))[0]
        spare = self._spare_ids[table.name]
        if not spare:
            block = self._id_block.get(table.name, self._first_id_block)
            spare.extend(await self._take_ids(table, block))
            self._id_block[table.name] = min(block * 2, _MAX_ID_BLOCK)
        return spare.pop(0)

    def expect_inserts(self, count: int) -> None:
        """About this many rows per table may be inserted (a batch of events): on PostgreSQL,
        take ids in blocks of that size rather than growing from one."""
        self._first_id_block = max(1, min(count, _MAX_ID_BLOCK))

    async def _take_ids(self, table: Table, count: int) -> list[int]:
        if not self._locks_rows:
            # SQLite: this transaction holds the only write lock, so the ids after the largest
            # (those SQLite itself would give) are ours for as long as it lasts.
            if table.name not in self._next_sqlite_id:
                largest = await self._conn.scalar(select(func.max(table.c.id)))
                self._next_sqlite_id[table.name] = int(largest or 0) + 1
            first = self._next_sqlite_id[table.name]
            self._next_sqlite_id[table.name] += count
            return list(range(first, first + count))
        # PostgreSQL: from the sequence, so concurrent instances never take the same id. A
        # block doubles as the transaction needs more; ids it leaves unused are gaps, as any
        # rolled-back insert leaves.
        rows = await self._conn.execute(
            text(
                "SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :n)"
            ),
            {"table": table.name, "n": count},
        )
        return [int(value) for (value,) in rows]


def _rows_where(table: Table, column: str, values: list[Any], dialect: Dialect) -> Select[Any]:
    """The rows whose `column` is one of `values`. SQLite looks each value up in the column's
    unique index. PostgreSQL gets the values as one array, each looked up on its own (a
    lateral join): an IN list is compared row by row, and on a table not yet analysed the
    planner may choose to scan it all, once per batch, however large it has grown."""
    if not is_postgres(dialect):
        return select(table).where(table.c[column].in_(values))
    keys = (
        func.unnest(literal(values, ARRAY(table.c[column].type)))
        .table_valued("value")
        .render_derived(name="wanted")
    )
    match = select(table).where(table.c[column] == keys.c.value).lateral()
    return select(*match.c).select_from(keys).join(match, true())


def _merchant_of(record: Record) -> int | None:
    value = record.values.get("id" if record.table is merchants else "merchant_id")
    return int(value) if value is not None else None


@asynccontextmanager
async def ledger_session(database: Database) -> AsyncIterator[LedgerSession]:
    """A write transaction for ledger changes, flushed and committed at the end (rolled back,
    with nothing written, if the block raises)."""
    async with database.write() as conn:
        session = LedgerSession(conn)
        yield session
        await session.flush()


@asynccontextmanager
async def ledger_reader(database: Database) -> AsyncIterator[LedgerSession]:
    """A read-only view with the same lookups (a change through it is refused)."""
    async with database.read() as conn:
        yield LedgerSession(conn, writable=False)
