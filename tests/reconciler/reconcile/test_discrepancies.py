"""Discrepancies: one open row per kind and object, however often the difference is seen,
saying what was seen last."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select, update

from reconciler.db.engine import Database
from reconciler.db.tables import discrepancies
from reconciler.reconcile.discrepancies import record_discrepancy


async def record(db: Database, now: datetime, detail: str = "seen", amount: int = 500) -> None:
    async with db.write() as conn:
        await record_discrepancy(
            conn,
            kind="unattributed_object",
            object_type="transfer",
            object_id="tr_1",
            detail=detail,
            detected_by="webhook",
            now=now,
            stripe_value={"amount": amount},
        )


async def test_a_difference_seen_again_while_open_updates_its_row(
    db: Database, now: datetime
) -> None:
    await record(db, now)
    later = now + timedelta(hours=1)
    await record(db, later, "seen again", amount=700)
    async with db.read() as conn:
        rows = (
            await conn.execute(
                select(
                    discrepancies.c.detail,
                    discrepancies.c.status,
                    discrepancies.c.stripe_value,
                    discrepancies.c.created_at,
                    discrepancies.c.updated_at,
                )
            )
        ).all()
    assert [tuple(row) for row in rows] == [("seen again", "open", {"amount": 700}, now, later)]


async def test_once_resolved_the_same_difference_opens_anew(db: Database, now: datetime) -> None:
    await record(db, now)
    async with db.write() as conn:
        await conn.execute(update(discrepancies).values(status="resolved"))
    await record(db, now, "back")
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
