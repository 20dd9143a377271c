"""The ledger's unit of work: every ledger change reads and writes through one of these.

A `LedgerSession` wraps one transaction. Rows it has read are held once each (an identity
map, also indexed by their Stripe ids), typed (`reconciler.ledger.rows`), so asking again
costs no statement; changes and journal entries are kept in memory and written together by
`flush`: one multi-row INSERT or executemany UPDATE per table, however many events the
transaction applies. Anything that queries the database directly goes through `execute`,
which flushes first, so a query never misses a change made earlier in the same transaction.

Serialisation is unchanged by the buffering. On SQLite the transaction holds the write lock
from its start (`BEGIN IMMEDIATE`), so every row it reads is current. On PostgreSQL `lock`
takes the owning merchant's row `FOR UPDATE` the first time the transaction touches that
merchant, and re-reads whatever it already held of the merchant, so decisions are made on
committed state. Ids of new rows come from `ledger.ids` before anything is written.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, bindparam, select
from sqlalchemy.engine import CursorResult, Dialect
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import Executable

from reconciler.db.bulk import insert_rows
from reconciler.db.dialect import is_postgres, one_of, rows_where
from reconciler.db.engine import Database
from reconciler.db.tables import merchants
from reconciler.errors import NotFound
from reconciler.ledger._posting import Entry, write_entries
from reconciler.ledger.ids import IdAllocator
from reconciler.ledger.journal import Leg, check_balanced
from reconciler.ledger.rows import ROW_TYPES, LedgerRow, Merchant

Row = TypeVar("Row", bound=LedgerRow)
RowKey = tuple[type[LedgerRow], int]
_IN_CHUNK = 500  # values per IN (...) list: well under every driver's parameter limit


class ReadOnlySession(RuntimeError):
    """A change was attempted through a session opened for reading."""


class UnlockedChange(RuntimeError):
    """A held row was changed before its merchant was locked (a bug in the caller)."""


class LedgerSession:
    """Reads, changes and journal entries of one transaction; see the module docstring."""

    def __init__(self, conn: AsyncConnection, *, writable: bool = True) -> None:
        self._conn = conn
        self._writable = writable
        self._locks_rows = is_postgres(conn)
        self._ids = IdAllocator(conn)
        self._rows: dict[RowKey, LedgerRow] = {}
        # (row type, column, value) -> row id, or None when known to be absent.
        self._index: dict[tuple[type[LedgerRow], str, Any], int | None] = {}
        self._locked: set[int] = set()
        self._new: dict[RowKey, LedgerRow] = {}
        # Held rows changed, with the columns changed: only those are written back.
        self._dirty: dict[RowKey, tuple[LedgerRow, set[str]]] = {}
        self._entries: list[Entry] = []
        self._posted: set[str] = set()

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

    async def get(self, kind: type[Row], row_id: int) -> Row:
        """The row with this id; `NotFound` if there is none."""
        row = await self.find(kind, "id", row_id)
        if row is None:
            raise NotFound(f"{kind.singular} {row_id} does not exist")
        return row

    async def find(self, kind: type[Row], column: str, value: Any) -> Row | None:
        """The row whose `column` (the id or a lookup column) holds `value`, or None."""
        if value is None:
            return None
        if not self._known(kind, column, value):
            await self.load(kind, column, [value])
        row_id = value if column == "id" else self._index.get((kind, column, value))
        row = None if row_id is None else self._rows.get((kind, row_id))
        assert row is None or isinstance(row, kind)
        return row

    async def load(self, kind: type[LedgerRow], column: str, values: Iterable[Any]) -> None:
        """Read every row whose `column` is one of `values` in one statement, so later
        `find`s cost nothing. Values already known (held, or known absent) are skipped."""
        wanted = [
            v for v in dict.fromkeys(values) if v is not None and not self._known(kind, column, v)
        ]
        for start in range(0, len(wanted), _IN_CHUNK):
            chunk = wanted[start : start + _IN_CHUNK]
            rows = await self.execute(*rows_where(kind.table, column, chunk, self.dialect))
            for values_read in rows.mappings():
                self._hold(kind, values_read)
            for value in chunk:
                self._index.setdefault((kind, column, value), None)

    async def lock(self, kind: type[Row], row_id: int) -> Row:
        """The row, decided on current data: on PostgreSQL its merchant is locked first
        (always merchant first, one order, so these locks cannot deadlock each other)."""
        if self._locks_rows:
            held = self._rows.get((kind, row_id))
            if held is None or held.merchant not in self._locked:
                table = kind.table
                owner = table.c[kind.owner_column]
                owner_of_row = select(owner).where(table.c.id == row_id).scalar_subquery()
                await self._lock_merchants(merchants.c.id == owner_of_row)
        return await self.get(kind, row_id)

    async def lock_merchant(self, merchant_id: int) -> Merchant:
        """The merchant's row, held until the transaction ends (PostgreSQL)."""
        return await self.lock(Merchant, merchant_id)

    async def lock_merchants(self, merchant_ids: Iterable[int], *, nowait: bool = False) -> bool:
        """Lock several merchants at once, in id order (a batch of many merchants' events).
        True if any was not locked before (PostgreSQL): their rows were read again. With
        `nowait`, a merchant another transaction holds fails the statement (PostgreSQL's
        `LockNotAvailable`) at once rather than waiting: for locks taken after others, out
        of id order, where waiting could deadlock."""
        if not self._locks_rows:
            return False
        wanted = sorted(set(merchant_ids) - self._locked)
        if not wanted:
            return False
        which = one_of(merchants.c.id, wanted, self.dialect)
        return await self._lock_merchants(which, nowait=nowait)

    async def _lock_merchants(self, which: ColumnElement[bool], *, nowait: bool = False) -> bool:
        # The merchants' rows come with their locks: held (or brought up to date) as read.
        query = (
            select(merchants).where(which).order_by(merchants.c.id).with_for_update(nowait=nowait)
        )
        locked = []
        for values in (await self.execute(query)).mappings():
            self._hold(Merchant, values)
            locked.append(int(values["id"]))
        fresh = set(locked) - self._locked
        self._locked |= fresh
        await self._reread(fresh)
        if fresh:
            # "Not there" was learnt before the lock: let the next lookup ask again.
            self._index = {key: row_id for key, row_id in self._index.items() if row_id is not None}
        return bool(fresh)

    async def _reread(self, merchant_ids: set[int]) -> None:
        """Rows read before their merchant was locked may be stale: read them again, in place
        (callers keep the same row). Nothing is unwritten here: locking flushed first. The
        merchants' own rows were read with their locks."""
        if not merchant_ids:
            return
        stale: dict[type[LedgerRow], list[int]] = defaultdict(list)
        for (kind, row_id), row in self._rows.items():
            if kind is not Merchant and row.merchant in merchant_ids:
                stale[kind].append(row_id)
        for kind in ROW_TYPES:
            ids = stale.get(kind, [])
            for start in range(0, len(ids), _IN_CHUNK):
                chunk = ids[start : start + _IN_CHUNK]
                rows = await self._conn.execute(
                    select(kind.table).where(one_of(kind.table.c.id, chunk, self.dialect))
                )
                for values in rows.mappings():
                    self._hold(kind, values)

    def held_merchants(self) -> set[int]:
        """The merchants of every row held."""
        return {row.merchant for row in self._rows.values()}

    async def insert(self, kind: type[Row], **values: Any) -> Row:
        """A new row, written at the next flush; its id is known now. Every column but the id
        must be given (the row type's constructor refuses a missing or unknown one)."""
        self._check_writable()
        row = kind(**{"id": await self._ids.next_id(kind.table), **values})
        key = (kind, row.id)
        self._rows[key] = row
        self._index_row(row)
        self._new[key] = row
        return row

    def update(self, row: LedgerRow, *, now: datetime, **values: Any) -> None:
        """Change a held row (and its `updated_at`); written at the next flush. On PostgreSQL
        a row that exists already may change only once its merchant is locked (`lock`): a
        change decided on an unlocked read could undo one committed meanwhile."""
        self._check_writable()
        kind = type(row)
        unknown = values.keys() - kind.field_set()
        if unknown or "id" in values:
            raise TypeError(f"{kind.singular} has no column(s) to change named {sorted(unknown)}")
        key = (kind, row.id)
        if self._locks_rows and key not in self._new and row.merchant not in self._locked:
            raise UnlockedChange(f"{kind.singular} {row.id} changed without its merchant locked")
        for column in kind.lookup_columns:
            if column in values and values[column] != getattr(row, column):
                self._index.pop((kind, column, getattr(row, column)), None)
        row._set({**values, "updated_at": now})
        self._index_row(row)
        if key not in self._new:
            changed = self._dirty.setdefault(key, (row, set()))[1]
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

    def expect_inserts(self, count: int) -> None:
        """About this many rows per table may be inserted (see `IdAllocator.expect`)."""
        self._ids.expect(count)

    # -- writing -------------------------------------------------------------------------

    async def flush(self) -> None:
        """Write every held change and entry: a few statements, whatever their number."""
        if not (self._new or self._dirty or self._entries):
            return
        new, dirty, entries = self._new, self._dirty, self._entries
        self._new, self._dirty, self._entries = {}, {}, []
        for kind in ROW_TYPES:
            rows = [row.as_dict() for row in new.values() if type(row) is kind]
            await insert_rows(self._conn, kind.table, rows)
        for kind in ROW_TYPES:
            # One executemany per set of columns changed.
            by_columns: dict[frozenset[str], list[LedgerRow]] = defaultdict(list)
            for row, changed in dirty.values():
                if type(row) is kind:
                    by_columns[frozenset(changed)].append(row)
            for names, changed_rows in by_columns.items():
                await self._write_changes(kind, sorted(names), changed_rows)
        if entries:
            await write_entries(self._conn, entries)

    async def _write_changes(
        self, kind: type[LedgerRow], columns: Sequence[str], rows: Sequence[LedgerRow]
    ) -> None:
        statement = (
            kind.table.update()
            .where(kind.table.c.id == bindparam("_id"))
            .values({column: bindparam(column) for column in columns})
        )
        await self._conn.execute(
            statement,
            [{"_id": row.id, **{c: getattr(row, c) for c in columns}} for row in rows],
        )

    # -- internals -----------------------------------------------------------------------

    def _check_writable(self) -> None:
        if not self._writable:
            raise ReadOnlySession("this ledger session was opened for reading")

    def _known(self, kind: type[LedgerRow], column: str, value: Any) -> bool:
        if column == "id":
            return (kind, value) in self._rows or (kind, "id", value) in self._index
        return (kind, column, value) in self._index

    def _hold(self, kind: type[LedgerRow], values: Any) -> None:
        held = self._rows.get((kind, values["id"]))
        if held is None:
            held = self._rows[(kind, values["id"])] = kind.from_mapping(values)
        else:
            held._set({name: values[name] for name in kind.field_names()})
        self._index_row(held)

    def _index_row(self, row: LedgerRow) -> None:
        kind = type(row)
        for column in kind.lookup_columns:
            value = getattr(row, column)
            if value is not None:
                self._index[(kind, column, value)] = row.id


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
