"""SQLite writers of one process queue for the write lock in the event loop."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest

from reconciler.db.dialect import is_postgres
from reconciler.db.engine import Database
from reconciler.ledger.merchants import create_merchant
from reconciler.ledger.session import ledger_session


async def test_a_write_inside_a_write_is_refused_not_waited_for(db: Database) -> None:
    if is_postgres(db):
        pytest.skip("PostgreSQL transactions do not queue in the event loop")
    async with asyncio.timeout(5), db.write():  # the same task: waiting would be forever
        with pytest.raises(RuntimeError, match="inside another"):
            async with db.write():
                pass


async def test_concurrent_writers_each_get_their_turn(db: Database, now: datetime) -> None:
    async def merchant(n: int) -> int:
        async with ledger_session(db) as tx:
            return await create_merchant(tx, name=f"m{n}", now=now)

    ids = await asyncio.wait_for(asyncio.gather(*(merchant(n) for n in range(20))), timeout=30)
    assert len(set(ids)) == 20
