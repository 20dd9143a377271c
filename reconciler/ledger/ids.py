"""Ids for new ledger rows, taken before their INSERT, so a new payment's id can name its
journal entries before anything is written."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from reconciler.db.dialect import is_postgres, sequence_ids

MAX_BLOCK = 1024  # ids a PostgreSQL transaction takes at once, at most


class IdAllocator:
    """One transaction's source of new ids, per table.

    SQLite: the transaction holds the only write lock, so the ids after the largest (those
    SQLite itself would give) are ours for as long as it lasts. PostgreSQL: from the table's
    sequence, so concurrent instances never take the same id; a block doubles as the
    transaction needs more, and ids it leaves unused are gaps, as any rolled-back insert
    leaves.
    """

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn
        self._from_sequence = is_postgres(conn)
        self._spare: dict[str, list[int]] = defaultdict(list)
        self._block: dict[str, int] = {}
        self._first_block = 1
        self._next_sqlite_id: dict[str, int] = {}

    def expect(self, count: int) -> None:
        """About this many rows per table may be inserted (a batch of events): on PostgreSQL,
        take ids in blocks of that size rather than growing from one."""
        self._first_block = max(1, min(count, MAX_BLOCK))

    async def next_id(self, table: Table) -> int:
        if not self._from_sequence:
            return await self._after_largest(table)
        spare = self._spare[table.name]
        if not spare:
            block = self._block.get(table.name, self._first_block)
            spare.extend(await sequence_ids(self._conn, table, block))
            self._block[table.name] = min(block * 2, MAX_BLOCK)
        return spare.pop(0)

    async def _after_largest(self, table: Table) -> int:
        if table.name not in self._next_sqlite_id:
            largest = await self._conn.scalar(select(func.max(table.c.id)))
            self._next_sqlite_id[table.name] = int(largest or 0) + 1
        row_id = self._next_sqlite_id[table.name]
        self._next_sqlite_id[table.name] += 1
        return row_id
