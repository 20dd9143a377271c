"""Snapshots the ledger cannot follow: fetched fresh once, then reported, never forced."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from reconciler.apply import _find, apply_object
from reconciler.apply.context import ApplyContext
from reconciler.db.engine import Database
from reconciler.db.tables import discrepancies, refunds
from reconciler.ledger.merchants import get_merchant, mark_deauthorized, set_connect_state
from reconciler.ledger.payments import advance_payment, create_payment, get_payment
from reconciler.ledger.payouts import advance_payout, get_payout, reserve_payout
from reconciler.ledger.refunds import create_refund, get_refund
from reconciler.ledger.rows import Payment
from reconciler.ledger.session import ledger_reader, ledger_session
from reconciler.money import FeeSchedule
from tests.factories import (
    ONBOARDED,
    all_balances,
    journal_history,
    payable_merchant,
    settled_payment,
)


async def discrepancy_rows(db: Database) -> list[tuple[str, str]]:
    async with ledger_reader(db) as conn:
        found = await conn.execute(select(discrepancies.c.kind, discrepancies.c.object_id))
        return [(kind, object_id) for kind, object_id in found]


class FakeStripe:
    """Answers every fetch with a fixed object and counts the fetches."""

    def __init__(self, fresh: dict[str, Any]) -> None:
        self.fresh = fresh
        self.fetched: list[tuple[str, str]] = []

    def _fetch(self, object_type: str, object_id: str) -> dict[str, Any]:
        self.fetched.append((object_type, object_id))
        return self.fresh

    async def payment_intent(self, intent_id: str) -> dict[str, Any]:
        return self._fetch("payment_intent", intent_id)

    async def charge(self, charge_id: str) -> dict[str, Any]:
        return self._fetch("charge", charge_id)

    async def refund(self, refund_id: str) -> dict[str, Any]:
        return self._fetch("refund", refund_id)

    async def transfer(self, transfer_id: str) -> dict[str, Any]:
        return self._fetch("transfer", transfer_id)

    async def transfer_reversals(self, transfer_id: str) -> list[dict[str, Any]]:
        self.fetched.append(("transfer_reversals", transfer_id))
        return list((self.fresh.get("reversals") or {}).get("data") or [])

    async def account(self, account_id: str) -> dict[str, Any]:
        return self._fetch("account", account_id)


async def test_transfer_for_a_cancelled_payout_is_reported_not_booked(
    db: Database, now: datetime
) -> None:
    async with ledger_session(db) as conn:
        merchant_id = await payable_merchant(conn, now)
        await settled_payment(conn, merchant_id, 10000, now)
        payout_id = await reserve_payout(
            conn, merchant_id=merchant_id, amount=5000, currency="usd", now=now
        )
        await advance_payout(conn, payout_id, "cancelled", now=now)
    transfer = {
        "id": "tr_1",
        "object": "transfer",
        "amount": 5000,
        "currency": "usd",
        "amount_reversed": 0,
        "destination": "acct_acme",
        "metadata": {"icpay_payout_id": str(payout_id)},
    }
    stripe = FakeStripe(transfer)
    ctx = ApplyContext(db=db, stripe=stripe, fees=FeeSchedule(), clock=lambda: now)  # type: ignore[arg-type]

    await apply_object(ctx, transfer)
    await apply_object(ctx, transfer)  # seeing it again is not news

    assert stripe.fetched == [("transfer", "tr_1"), ("transfer", "tr_1")]
    async with ledger_reader(db) as conn:
        assert (await get_payout(conn, payout_id)).status == "cancelled"
        assert await all_balances(conn, merchant_id) == (10000, 10000, 10000)
        found = (
            await conn.execute(
                select(discrepancies.c.kind, discrepancies.c.object_id, discrepancies.c.status)
            )
        ).all()
    assert [tuple(row) for row in found] == [("status_mismatch", "tr_1", "open")]


async def completed_payout(db: Database, now: datetime, account: str = "acct_acme") -> int:
    async with ledger_session(db) as conn:
        merchant_id = await payable_merchant(conn, now)
        await settled_payment(conn, merchant_id, 10000, now)
        payout_id = await reserve_payout(
            conn, merchant_id=merchant_id, amount=5000, currency="usd", now=now
        )
        await advance_payout(conn, payout_id, "processing", now=now, transfer_id="tr_A")
        await advance_payout(conn, payout_id, "completed", now=now)
    return payout_id


def transfer_for(payout_id: int, **fields: Any) -> dict[str, Any]:
    return {
        "id": "tr_A",
        "object": "transfer",
        "amount": 5000,
        "currency": "usd",
        "amount_reversed": 0,
        "destination": "acct_acme",
        "metadata": {"icpay_payout_id": str(payout_id)},
        **fields,
    }


@pytest.mark.parametrize(
    ("fields", "kind"),
    [
        ({"id": "tr_B", "amount_reversed": 5000}, "unattributed_object"),  # a second transfer
        ({"id": "tr_A", "amount": 4000}, "amount_mismatch"),
        ({"id": "tr_A", "destination": "acct_someone_else"}, "unattributed_object"),
    ],
)
async def test_a_transfer_that_is_not_the_payouts_is_reported_not_booked(
    db: Database, now: datetime, fields: dict[str, Any], kind: str
) -> None:
    payout_id = await completed_payout(db, now)
    transfer = transfer_for(payout_id, **fields)
    ctx = ApplyContext(db=db, stripe=FakeStripe(transfer), fees=FeeSchedule(), clock=lambda: now)  # type: ignore[arg-type]

    await apply_object(ctx, transfer)

    async with ledger_reader(db) as conn:
        payout = await get_payout(conn, payout_id)
        assert (payout.status, payout.stripe_transfer_id, payout.amount_reversed) == (
            "completed",
            "tr_A",
            0,
        )
        assert await all_balances(conn, 1) == (5000, 5000, 5000)
    assert await discrepancy_rows(db) == [(kind, transfer["id"])]


async def test_a_deauthorized_merchant_stays_deauthorized(db: Database, now: datetime) -> None:
    async with ledger_session(db) as conn:
        merchant_id = await payable_merchant(conn, now)
        await mark_deauthorized(conn, merchant_id, now=now)
        await set_connect_state(conn, merchant_id, ONBOARDED, now=now)
        merchant = await get_merchant(conn, merchant_id)
    assert (merchant.connect_status, merchant.payouts_enabled) == ("deauthorized", False)


async def pending_payment_of(db: Database, now: datetime) -> tuple[int, int]:
    async with ledger_session(db) as conn:
        merchant_id = await payable_merchant(conn, now)
        payment_id = await create_payment(
            conn,
            merchant_id=merchant_id,
            amount=10000,
            currency="usd",
            fees=FeeSchedule(),
            now=now,
            payment_intent_id="pi_1",
        )
    return merchant_id, payment_id


INTENT_FOR_LESS = {
    "id": "pi_1",
    "object": "payment_intent",
    "status": "succeeded",
    "amount": 10000,
    "amount_received": 9000,
    "currency": "usd",
    "latest_charge": None,
    "metadata": {},
}
CHARGE_FOR_LESS = {
    "id": "ch_1",
    "object": "charge",
    "payment_intent": "pi_1",
    "status": "succeeded",
    "captured": True,
    "amount": 10000,
    "amount_captured": 9000,
    "amount_refunded": 0,
    "refunded": False,
    "balance_transaction": {"fee": 320, "status": "available", "available_on": 1},
}


# The same number of another currency's minor units is another amount: money compares whole.
INTENT_IN_EUR = {**INTENT_FOR_LESS, "amount": 10000, "amount_received": 10000, "currency": "eur"}
CHARGE_IN_EUR = {**CHARGE_FOR_LESS, "amount_captured": 10000, "currency": "eur"}


@pytest.mark.parametrize(
    "snapshot",
    [INTENT_FOR_LESS, CHARGE_FOR_LESS, INTENT_IN_EUR, CHARGE_IN_EUR],
    ids=["intent", "charge", "intent-other-currency", "charge-other-currency"],
)
async def test_a_success_for_another_amount_is_reported_not_booked(
    db: Database, now: datetime, snapshot: dict[str, Any]
) -> None:
    merchant_id, payment_id = await pending_payment_of(db, now)
    ctx = ApplyContext(db=db, stripe=FakeStripe(snapshot), fees=FeeSchedule(), clock=lambda: now)  # type: ignore[arg-type]

    await apply_object(ctx, snapshot)

    async with ledger_reader(db) as conn:
        assert (await get_payment(conn, payment_id)).status == "pending"
        assert await all_balances(conn, merchant_id) == (0, 0, 0)
    assert await discrepancy_rows(db) == [("amount_mismatch", snapshot["id"])]


async def test_our_row_named_in_metadata_takes_the_stripe_id_once(
    db: Database, now: datetime
) -> None:
    async with ledger_session(db) as conn:
        merchant_id = await payable_merchant(conn, now)
        payment_id = await create_payment(
            conn,
            merchant_id=merchant_id,
            amount=10000,
            currency="usd",
            fees=FeeSchedule(),
            now=now,
        )
        named = {"id": "pi_1", "metadata": {"icpay_payment_id": str(payment_id)}}
        claimed = await _find.ours(
            conn, Payment, "payment_intent_id", named, "icpay_payment_id", now=now
        )
        assert claimed is not None and (claimed.id, claimed.payment_intent_id) == (
            payment_id,
            "pi_1",
        )
        # Another intent naming the same payment cannot take it over.
        other = {"id": "pi_2", "metadata": {"icpay_payment_id": str(payment_id)}}
        assert (
            await _find.ours(conn, Payment, "payment_intent_id", other, "icpay_payment_id", now=now)
            is None
        )
        assert (await get_payment(conn, payment_id)).payment_intent_id == "pi_1"


class KindedStripe:
    """A fixed answer per kind of object, counting the calls."""

    def __init__(self, intent: dict[str, Any], charge: dict[str, Any]) -> None:
        self.intent, self.charge_copy = intent, charge
        self.refunds: dict[str, dict[str, Any]] = {}
        self.calls: list[str] = []

    async def refund(self, refund_id: str) -> dict[str, Any]:
        self.calls.append(refund_id)
        return self.refunds[refund_id]

    async def payment_intent(self, intent_id: str) -> dict[str, Any]:
        self.calls.append(intent_id)
        return self.intent

    async def charge(self, charge_id: str) -> dict[str, Any]:
        self.calls.append(charge_id)
        return self.charge_copy

    async def refunds_for_charge(self, charge_id: str) -> list[dict[str, Any]]:
        self.calls.append(f"refunds of {charge_id}")
        return list(self.charge_copy["refunds"]["data"])


def refund_of_ch_1(status: str) -> dict[str, Any]:
    return {
        "id": "re_1",
        "object": "refund",
        "amount": 1000,
        "charge": "ch_1",
        "payment_intent": "pi_1",
        "status": status,
        "currency": "usd",
        "metadata": {},
    }


def charge_showing(refunds: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    listed = {"object": "list", "has_more": False, "data": refunds}
    return {**CHARGE_FOR_LESS, "currency": "usd", "refunds": listed, **fields}


@pytest.mark.parametrize("refund_status", ["succeeded", "failed"])
async def test_a_charge_refused_for_its_amount_books_none_of_its_refunds(
    db: Database, now: datetime, refund_status: str
) -> None:
    merchant_id, payment_id = await pending_payment_of(db, now)
    charge = charge_showing([refund_of_ch_1(refund_status)], amount_refunded=1000)
    stripe = KindedStripe({**INTENT_FOR_LESS, "latest_charge": "ch_1"}, charge)
    ctx = ApplyContext(db=db, stripe=stripe, fees=FeeSchedule(), clock=lambda: now)  # type: ignore[arg-type]

    await apply_object(ctx, charge)

    assert await discrepancy_rows(db) == [("amount_mismatch", "ch_1")]
    assert stripe.calls == []
    async with ledger_reader(db) as conn:
        assert (await get_payment(conn, payment_id)).status == "pending"
        assert await conn.scalar(select(func.count()).select_from(refunds)) == 0
        assert await journal_history(conn) == []
        assert await all_balances(conn, merchant_id) == (0, 0, 0)


async def test_a_charges_refunds_are_read_from_its_fresh_copy(db: Database, now: datetime) -> None:
    _, payment_id = await pending_payment_of(db, now)
    # The webhook's snapshot predates the refund; the copy fetched to settle it shows it.
    snapshot = charge_showing(
        [], amount_captured=10000, amount_refunded=0, balance_transaction="txn_1"
    )
    fresh = charge_showing(
        [refund_of_ch_1("succeeded")],
        amount_captured=10000,
        amount_refunded=1000,
        balance_transaction={"fee": 320, "status": "pending", "available_on": 1},
    )
    intent = {**INTENT_FOR_LESS, "amount_received": 10000, "latest_charge": "ch_1"}
    ctx = ApplyContext(
        db=db, stripe=KindedStripe(intent, fresh), fees=FeeSchedule(), clock=lambda: now
    )  # type: ignore[arg-type]

    await apply_object(ctx, snapshot)

    async with ledger_reader(db) as conn:
        payment = await get_payment(conn, payment_id)
        assert (payment.status, payment.amount_refunded) == ("partially_refunded", 1000)


async def test_a_refund_given_back_leaves_an_uncaptured_payment_as_it_was(
    db: Database, now: datetime
) -> None:
    merchant_id, payment_id = await pending_payment_of(db, now)
    # Stripe's intent is for another amount: the payment stays pending, the refund is a fact.
    stripe = KindedStripe({**INTENT_FOR_LESS, "latest_charge": None}, charge_showing([]))
    ctx = ApplyContext(db=db, stripe=stripe, fees=FeeSchedule(), clock=lambda: now)  # type: ignore[arg-type]

    await apply_object(ctx, refund_of_ch_1("failed"))

    async with ledger_reader(db) as conn:
        payment = await get_payment(conn, payment_id)
        assert (payment.status, payment.amount_refunded) == ("pending", 0)
        assert await all_balances(conn, merchant_id) == (0, 0, 0)


async def test_a_refund_beyond_what_is_left_brings_its_charges_refunds_up_first(
    db: Database, now: datetime
) -> None:
    """The ledger holds refund re_1 (60.00) pending; at Stripe it failed, and re_2 (60.00)
    was made after. re_2's event, first to arrive, asks for more than is left: the charge is
    fetched and its refunds applied, the released one first, then re_2 fits."""
    async with ledger_session(db) as conn:
        merchant_id = await payable_merchant(conn, now)
        payment_id = await settled_payment(conn, merchant_id, 10000, now, intent="pi_1")
        await advance_payment(conn, payment_id, "succeeded", now=now, charge_id="ch_1")
        first = await create_refund(
            conn, payment_id=payment_id, amount=6000, now=now, stripe_refund_id="re_1"
        )
    second = {**refund_of_ch_1("pending"), "id": "re_2", "amount": 6000}
    failed = {**refund_of_ch_1("failed"), "amount": 6000}
    charge = charge_showing(
        [second, failed],  # newest first, as Stripe lists them
        amount=10000,
        amount_captured=10000,
        amount_refunded=6000,
        balance_transaction={"fee": 0, "status": "available", "available_on": 1},
    )
    stripe = KindedStripe({**INTENT_FOR_LESS, "amount_received": 10000}, charge)
    stripe.refunds = {"re_2": second}
    ctx = ApplyContext(db=db, stripe=stripe, fees=FeeSchedule(), clock=lambda: now)  # type: ignore[arg-type]

    await apply_object(ctx, second)

    assert await discrepancy_rows(db) == []
    async with ledger_reader(db) as conn:
        assert (await get_refund(conn, first)).status == "failed"
        payment = await get_payment(conn, payment_id)
        assert (payment.status, payment.amount_refunded) == ("partially_refunded", 6000)
        assert await all_balances(conn, merchant_id) == (4000, 4000, 4000)
