"""Discrepancies: one open row per kind and object, however often the difference is seen."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import select, update

from reconciler.db.engine import Database
from reconciler.db.tables import discrepancies
from reconciler.reconcile.discrepancies import record_discrepancy


async def record(db: Database, now: datetime, detail: str = "seen") -> bool:
    async with db.write() as conn:
        return await record_discrepancy(
            conn,
            kind="unattributed_object",
            object_type="transfer",
            object_id="tr_1",
            detail=detail,
            detected_by="webhook",
            now=now,
            stripe_value={"amount": 500},
        )


async def test_a_difference_seen_again_while_open_is_not_news(db: Database, now: datetime) -> None:
    assert await record(db, now) is True
    assert await record(db, now, "seen again") is False
    async with db.read() as conn:
        rows = (await conn.execute(select(discrepancies.c.detail, discrepancies.c.status))).all()
    assert [tuple(row) for row in rows] == [("seen", "open")]


async def test_once_resolved_the_same_difference_opens_anew(db: Database, now: datetime) -> None:
    await record(db, now)
    async with db.write() as conn:
        await conn.execute(update(discrepancies).values(status="resolved"))
    assert await record(db, now, "back") is True
    async with db.read() as conn:
        statuses = (await conn.execute(select(discrepancies.c.status))).scalars().all()
    assert sorted(statuses) == ["open", "resolved"]


async def test_an_unknown_kind_is_refused(db: Database, now: datetime) -> None:
    async with db.write() as conn:
        with pytest.raises(ValueError, match="unknown discrepancy kind"):
            await record_discrepancy(
                conn,
                kind="vibes",
                object_type="transfer",
                object_id="tr_1",
                detail="",
                detected_by="webhook",
                now=now,
            )
