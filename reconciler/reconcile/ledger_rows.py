"""The ledger's rows for one page of Stripe objects, read by their Stripe ids: a statement per
kind of lookup, whatever the page's size, and nothing held once the page is compared."""

from __future__ import annotations

from collections.abc import Iterable
from operator import itemgetter
from typing import TypeVar

from reconciler.db.dialect import rows_where
from reconciler.ledger.rows import LedgerRow, Merchant, Payment, Payout, Refund
from reconciler.types import Queryable

Row = TypeVar("Row", bound=LedgerRow)


async def rows_by(
    conn: Queryable, kind: type[Row], column: str, values: Iterable[object]
) -> dict[object, Row]:
    """The rows of `kind` whose `column` is one of `values`, by that column's value."""
    wanted = sorted({value for value in values if value is not None}, key=str)
    if not wanted:
        return {}
    result = await conn.execute(*rows_where(kind.table, column, wanted, conn.dialect))
    # The fields by their place in the row, found once a statement: a mapping made for each
    # row (`_asdict`, then `from_mapping`) was most of a page's lookup (~15 us a row).
    keys = list(result.keys())
    fields = itemgetter(*(keys.index(name) for name in kind.field_names()))
    found: dict[object, Row] = {}
    for row in result:
        typed = kind.from_values(fields(row))
        found[getattr(typed, column)] = typed
    return found


async def payments_by_intent(conn: Queryable, ids: Iterable[str]) -> dict[object, Payment]:
    return await rows_by(conn, Payment, "payment_intent_id", ids)


async def payments_by_charge(conn: Queryable, ids: Iterable[str | None]) -> dict[object, Payment]:
    return await rows_by(conn, Payment, "charge_id", ids)


async def refunds_by_stripe_id(conn: Queryable, ids: Iterable[str]) -> dict[object, Refund]:
    return await rows_by(conn, Refund, "stripe_refund_id", ids)


async def payouts_by_transfer(conn: Queryable, ids: Iterable[str]) -> dict[object, Payout]:
    return await rows_by(conn, Payout, "stripe_transfer_id", ids)


async def payouts_by_id(conn: Queryable, ids: Iterable[int | None]) -> dict[object, Payout]:
    return await rows_by(conn, Payout, "id", ids)


async def merchants_by_account(
    conn: Queryable, ids: Iterable[str | None]
) -> dict[object, Merchant]:
    return await rows_by(conn, Merchant, "stripe_account_id", ids)


async def merchant(conn: Queryable, merchant_id: int) -> Merchant | None:
    return (await rows_by(conn, Merchant, "id", [merchant_id])).get(merchant_id)
