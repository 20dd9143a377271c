"""Typed ledger rows: read by anyone, changed only through the session that holds them."""

from __future__ import annotations

import dataclasses
from datetime import datetime

import pytest

from reconciler.db.engine import Database
from reconciler.ledger.rows import ROW_TYPES, Payment
from reconciler.ledger.session import ledger_reader, ledger_session
from tests.factories import payable_merchant, settled_payment


def test_every_row_type_has_exactly_its_tables_columns() -> None:
    for row_type in ROW_TYPES:
        assert row_type.field_names() == tuple(row_type.table.c.keys()), row_type.__name__


async def test_a_row_cannot_be_changed_behind_its_sessions_back(
    db: Database, now: datetime
) -> None:
    async with ledger_session(db) as tx:
        merchant_id = await payable_merchant(tx, now)
        payment_id = await settled_payment(tx, merchant_id, 1000, now)
    async with ledger_session(db) as tx:
        payment = await tx.lock(Payment, payment_id)
        with pytest.raises(dataclasses.FrozenInstanceError):
            payment.status = "failed"  # type: ignore[misc]
        with pytest.raises(TypeError, match="no column"):
            tx.update(payment, now=now, stauts="failed")
        tx.update(payment, now=now, status="canceled")
        assert payment.status == "canceled"  # the one held row changed in place
    async with ledger_reader(db) as tx:
        assert (await tx.get(Payment, payment_id)).status == "canceled"


async def test_a_new_row_must_name_every_column(db: Database, now: datetime) -> None:
    async with ledger_session(db) as tx:
        merchant_id = await payable_merchant(tx, now)
        with pytest.raises(TypeError):
            await tx.insert(Payment, merchant_id=merchant_id, amount=100)
