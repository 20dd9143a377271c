"""Moves the ledger must refuse, each with a clear error and nothing written."""

from __future__ import annotations

from datetime import datetime

import pytest

from reconciler.db.engine import Database
from reconciler.errors import (
    AccountCannotReceive,
    IllegalTransition,
    InsufficientBalance,
    InvalidAmount,
    RefundExceedsPayment,
    UnknownCurrency,
)
from reconciler.ledger.merchants import create_merchant
from reconciler.ledger.payments import advance_payment, create_payment
from reconciler.ledger.payouts import advance_payout, record_reversals, reserve_payout
from reconciler.ledger.refunds import advance_refund, create_refund
from reconciler.ledger.session import ledger_session
from tests.factories import (
    NO_FEES,
    all_balances,
    journal_history,
    payable_merchant,
    settled_payment,
)


async def test_completed_payout_cannot_go_back_to_pending(db: Database, now: datetime) -> None:
    async with ledger_session(db) as conn:
        merchant_id = await payable_merchant(conn, now)
        await settled_payment(conn, merchant_id, 10000, now)
        payout_id = await reserve_payout(
            conn, merchant_id=merchant_id, amount=100, currency="usd", now=now
        )
        await advance_payout(conn, payout_id, "processing", now=now)
        await advance_payout(conn, payout_id, "completed", now=now)
        with pytest.raises(IllegalTransition, match="payout cannot move from completed to pending"):
            await advance_payout(conn, payout_id, "pending", now=now)
        with pytest.raises(IllegalTransition, match="from completed to failed"):
            await advance_payout(conn, payout_id, "failed", now=now)
        with pytest.raises(IllegalTransition, match="unknown payout status 'paid'"):
            await advance_payout(conn, payout_id, "paid", now=now)


async def test_stale_snapshot_is_ignored_not_applied(db: Database, now: datetime) -> None:
    async with ledger_session(db) as conn:
        merchant_id = await payable_merchant(conn, now)
        payment_id = await settled_payment(conn, merchant_id, 10000, now)
        history = await journal_history(conn)
        decision = await advance_payment(
            conn, payment_id, "processing", now=now, from_snapshot=True
        )
        assert decision.value == "stale"
        assert await journal_history(conn) == history
        with pytest.raises(IllegalTransition):
            await advance_payment(conn, payment_id, "processing", now=now)


async def test_refund_larger_than_what_is_left_is_refused(db: Database, now: datetime) -> None:
    async with ledger_session(db) as conn:
        merchant_id = await payable_merchant(conn, now)
        payment_id = await settled_payment(conn, merchant_id, 10000, now)
        await create_refund(conn, payment_id=payment_id, amount=6000, now=now)
        with pytest.raises(RefundExceedsPayment, match="exceeds the 4000 left to refund"):
            await create_refund(conn, payment_id=payment_id, amount=4001, now=now)
        assert await all_balances(conn, merchant_id) == (4000, 4000, 4000)


async def test_failed_refund_cannot_succeed_again(db: Database, now: datetime) -> None:
    async with ledger_session(db) as conn:
        merchant_id = await payable_merchant(conn, now)
        payment_id = await settled_payment(conn, merchant_id, 10000, now)
        refund_id = await create_refund(conn, payment_id=payment_id, amount=100, now=now)
        await advance_refund(conn, refund_id, "failed", now=now)
        with pytest.raises(IllegalTransition, match="refund cannot move from failed to succeeded"):
            await advance_refund(conn, refund_id, "succeeded", now=now)


@pytest.mark.parametrize("amount", [0, -500, 10.5, True])
async def test_non_positive_or_fractional_amounts_are_refused(
    db: Database, now: datetime, amount: int
) -> None:
    async with ledger_session(db) as conn:
        merchant_id = await payable_merchant(conn, now)
        payment_id = await settled_payment(conn, merchant_id, 10000, now)
        with pytest.raises(InvalidAmount):
            await reserve_payout(
                conn, merchant_id=merchant_id, amount=amount, currency="usd", now=now
            )
        with pytest.raises(InvalidAmount):
            await create_refund(conn, payment_id=payment_id, amount=amount, now=now)
        with pytest.raises(InvalidAmount):
            await create_payment(
                conn, merchant_id=merchant_id, amount=amount, currency="usd", fees=NO_FEES, now=now
            )


async def test_unknown_currency_is_refused(db: Database, now: datetime) -> None:
    async with ledger_session(db) as conn:
        merchant_id = await payable_merchant(conn, now)
        with pytest.raises(UnknownCurrency, match="unknown currency 'eur'"):
            await create_payment(
                conn, merchant_id=merchant_id, amount=100, currency="eur", fees=NO_FEES, now=now
            )
        with pytest.raises(UnknownCurrency):
            await reserve_payout(conn, merchant_id=merchant_id, amount=100, currency="xxx", now=now)


async def test_payout_beyond_the_balance_is_refused(db: Database, now: datetime) -> None:
    async with ledger_session(db) as conn:
        merchant_id = await payable_merchant(conn, now)
        await settled_payment(conn, merchant_id, 1000, now)
        with pytest.raises(InsufficientBalance, match="balance 1000 does not cover payout 1001"):
            await reserve_payout(
                conn, merchant_id=merchant_id, amount=1001, currency="usd", now=now
            )


async def test_payout_needs_an_enabled_connected_account(db: Database, now: datetime) -> None:
    async with ledger_session(db) as conn:
        merchant_id = await create_merchant(conn, name="NoConnect", now=now)
        await settled_payment(conn, merchant_id, 1000, now)
        with pytest.raises(AccountCannotReceive):
            await reserve_payout(conn, merchant_id=merchant_id, amount=10, currency="usd", now=now)


async def test_reversal_of_a_payout_never_sent_is_refused(db: Database, now: datetime) -> None:
    async with ledger_session(db) as conn:
        merchant_id = await payable_merchant(conn, now)
        await settled_payment(conn, merchant_id, 1000, now)
        payout_id = await reserve_payout(
            conn, merchant_id=merchant_id, amount=500, currency="usd", now=now
        )
        with pytest.raises(IllegalTransition, match="no transfer to reverse"):
            await record_reversals(conn, payout_id, [("trr_1", 100)], now=now)
        with pytest.raises(IllegalTransition, match="record_reversals"):
            await advance_payout(conn, payout_id, "reversed", now=now)
