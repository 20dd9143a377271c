"""Whole scenarios, asserted as the full journal history and all three balance computations.

Every scenario starts from one paid card payment: 100.00 USD, ICPay's fee 10% (10.00),
Stripe's fee 2.9% + 30c (3.20), so the merchant's share is 90.00.
"""

from __future__ import annotations

from datetime import datetime

from reconciler.db.engine import Database
from reconciler.ledger import accounts
from reconciler.ledger.balances import account_balance, check_balance_invariant
from reconciler.ledger.payments import advance_payment, create_payment, get_payment, release_funds
from reconciler.ledger.payouts import advance_payout, get_payout, record_reversals, reserve_payout
from reconciler.ledger.refunds import advance_refund, create_refund, get_refund
from reconciler.ledger.session import ledger_reader, ledger_session
from tests.factories import TEN_PERCENT, all_balances, journal_history, payable_merchant

PAYABLE = "merchant:1:payable"
AVAILABLE = accounts.PLATFORM_AVAILABLE
PENDING = accounts.PLATFORM_PENDING
IN_FLIGHT = accounts.PAYOUTS_IN_FLIGHT

PAYMENT_HISTORY = [
    (
        "payment:1:succeeded",
        [(PAYABLE, 0, 9000), (accounts.FEE_REVENUE, 0, 1000), (PENDING, 10000, 0)],
    ),
    ("payment:1:stripe_fee", [(accounts.STRIPE_FEES, 320, 0), (PENDING, 0, 320)]),
    ("payment:1:funds_available", [(AVAILABLE, 9680, 0), (PENDING, 0, 9680)]),
]


async def pay(db: Database, now: datetime) -> int:
    async with ledger_session(db) as conn:
        merchant_id = await payable_merchant(conn, now)
        payment_id = await create_payment(
            conn,
            merchant_id=merchant_id,
            amount=10000,
            currency="usd",
            fees=TEN_PERCENT,
            now=now,
            payment_intent_id="pi_1",
        )
        await advance_payment(conn, payment_id, "processing", now=now)
        await advance_payment(
            conn, payment_id, "succeeded", now=now, charge_id="ch_1", stripe_fee=320
        )
        await release_funds(conn, payment_id, now=now)
    return payment_id


async def assert_books(db: Database, history: list[object], balance: int) -> None:
    async with ledger_reader(db) as conn:
        assert await journal_history(conn) == history
        assert await all_balances(conn, 1) == (balance, balance, balance)
        assert await check_balance_invariant(conn) == []


async def test_payment_completes(db: Database, now: datetime) -> None:
    payment_id = await pay(db, now)

    await assert_books(db, PAYMENT_HISTORY, 9000)
    async with ledger_reader(db) as conn:
        payment = await get_payment(conn, payment_id)
        assert (payment.status, payment.charge_id, payment.platform_fee) == (
            "succeeded",
            "ch_1",
            1000,
        )
        assert payment.ledger == "stripe_usd"
        assert await account_balance(conn, AVAILABLE, "usd") == 9680
        assert await account_balance(conn, PENDING, "usd") == 0
        assert await account_balance(conn, accounts.FEE_REVENUE, "usd") == 1000
        assert await account_balance(conn, accounts.STRIPE_FEES, "usd") == 320


async def test_partial_refund(db: Database, now: datetime) -> None:
    payment_id = await pay(db, now)
    async with ledger_session(db) as conn:
        refund_id = await create_refund(
            conn, payment_id=payment_id, amount=2500, now=now, stripe_refund_id="re_1"
        )
        await advance_refund(conn, refund_id, "succeeded", now=now)

    await assert_books(
        db,
        [*PAYMENT_HISTORY, ("refund:1:booked", [(PAYABLE, 2500, 0), (AVAILABLE, 0, 2500)])],
        6500,
    )
    async with ledger_reader(db) as conn:
        payment = await get_payment(conn, payment_id)
        assert (payment.status, payment.amount_refunded) == ("partially_refunded", 2500)
        assert (await get_refund(conn, refund_id)).status == "succeeded"


async def test_refund_that_fails_later_gives_the_money_back(db: Database, now: datetime) -> None:
    payment_id = await pay(db, now)
    async with ledger_session(db) as conn:
        refund_id = await create_refund(conn, payment_id=payment_id, amount=10000 - 1000, now=now)
        await advance_refund(conn, refund_id, "succeeded", now=now)
    async with ledger_reader(db) as conn:
        assert await all_balances(conn, 1) == (0, 0, 0)
        assert (await get_payment(conn, payment_id)).status == "partially_refunded"

    async with ledger_session(db) as conn:
        await advance_refund(
            conn, refund_id, "failed", now=now, failure_reason="expired_or_canceled_card"
        )

    await assert_books(
        db,
        [
            *PAYMENT_HISTORY,
            ("refund:1:booked", [(PAYABLE, 9000, 0), (AVAILABLE, 0, 9000)]),
            ("refund:1:returned", [(PAYABLE, 0, 9000), (AVAILABLE, 9000, 0)]),
        ],
        9000,
    )
    async with ledger_reader(db) as conn:
        refund = await get_refund(conn, refund_id)
        assert (refund.status, refund.failure_reason) == ("failed", "expired_or_canceled_card")
        payment = await get_payment(conn, payment_id)
        assert (payment.status, payment.amount_refunded) == ("succeeded", 0)


async def test_payout_completes(db: Database, now: datetime) -> None:
    await pay(db, now)
    async with ledger_session(db) as conn:
        payout_id = await reserve_payout(conn, merchant_id=1, amount=5000, currency="usd", now=now)
        await advance_payout(conn, payout_id, "processing", now=now, transfer_id="tr_1")
        await advance_payout(conn, payout_id, "completed", now=now)

    await assert_books(
        db,
        [
            *PAYMENT_HISTORY,
            ("payout:1:reserved", [(PAYABLE, 5000, 0), (IN_FLIGHT, 0, 5000)]),
            ("payout:1:transferred", [(IN_FLIGHT, 5000, 0), (AVAILABLE, 0, 5000)]),
        ],
        4000,
    )
    async with ledger_reader(db) as conn:
        payout = await get_payout(conn, payout_id)
        assert (payout.status, payout.stripe_transfer_id) == ("completed", "tr_1")
        assert await account_balance(conn, IN_FLIGHT, "usd") == 0


async def test_payout_that_fails_gives_the_money_back(db: Database, now: datetime) -> None:
    await pay(db, now)
    async with ledger_session(db) as conn:
        payout_id = await reserve_payout(conn, merchant_id=1, amount=5000, currency="usd", now=now)
        await advance_payout(conn, payout_id, "processing", now=now)
    async with ledger_reader(db) as conn:
        assert await all_balances(conn, 1) == (4000, 4000, 4000)

    async with ledger_session(db) as conn:
        await advance_payout(
            conn, payout_id, "failed", now=now, failure_message="balance_insufficient"
        )

    await assert_books(
        db,
        [
            *PAYMENT_HISTORY,
            ("payout:1:reserved", [(PAYABLE, 5000, 0), (IN_FLIGHT, 0, 5000)]),
            ("payout:1:released", [(PAYABLE, 0, 5000), (IN_FLIGHT, 5000, 0)]),
        ],
        9000,
    )
    async with ledger_reader(db) as conn:
        payout = await get_payout(conn, payout_id)
        assert (payout.status, payout.failure_message) == ("failed", "balance_insufficient")


async def test_reversed_payout_partly_then_fully(db: Database, now: datetime) -> None:
    await pay(db, now)
    async with ledger_session(db) as conn:
        payout_id = await reserve_payout(conn, merchant_id=1, amount=5000, currency="usd", now=now)
        await advance_payout(conn, payout_id, "processing", now=now, transfer_id="tr_1")
        await advance_payout(conn, payout_id, "completed", now=now)
        assert await record_reversals(conn, payout_id, [("trr_1", 2000)], now=now)
        assert (await get_payout(conn, payout_id)).status == "amount_reversed"
        assert await all_balances(conn, 1) == (6000, 6000, 6000)
        # The same list again, or an older one (a stale snapshot), changes nothing.
        assert not await record_reversals(conn, payout_id, [("trr_1", 2000)], now=now)
        assert not await record_reversals(conn, payout_id, [], now=now)
        assert await record_reversals(conn, payout_id, [("trr_2", 3000), ("trr_1", 2000)], now=now)

    await assert_books(
        db,
        [
            *PAYMENT_HISTORY,
            ("payout:1:reserved", [(PAYABLE, 5000, 0), (IN_FLIGHT, 0, 5000)]),
            ("payout:1:transferred", [(IN_FLIGHT, 5000, 0), (AVAILABLE, 0, 5000)]),
            ("payout:1:reversal:trr_1", [(PAYABLE, 0, 2000), (AVAILABLE, 2000, 0)]),
            ("payout:1:reversal:trr_2", [(PAYABLE, 0, 3000), (AVAILABLE, 3000, 0)]),
        ],
        9000,
    )
    async with ledger_reader(db) as conn:
        payout = await get_payout(conn, payout_id)
        assert (payout.status, payout.amount_reversed) == ("reversed", 5000)


async def test_refund_canceled_after_it_succeeded_gives_the_money_back(
    db: Database, now: datetime
) -> None:
    payment_id = await pay(db, now)
    async with ledger_session(db) as conn:
        refund_id = await create_refund(conn, payment_id=payment_id, amount=3000, now=now)
        await advance_refund(conn, refund_id, "succeeded", now=now)
    async with ledger_session(db) as conn:  # canceled from the Dashboard, a moment later
        await advance_refund(conn, refund_id, "canceled", now=now)

    await assert_books(
        db,
        [
            *PAYMENT_HISTORY,
            ("refund:1:booked", [(PAYABLE, 3000, 0), (AVAILABLE, 0, 3000)]),
            ("refund:1:returned", [(PAYABLE, 0, 3000), (AVAILABLE, 3000, 0)]),
        ],
        9000,
    )
    async with ledger_reader(db) as conn:
        assert (await get_refund(conn, refund_id)).status == "canceled"
        payment = await get_payment(conn, payment_id)
        assert (payment.status, payment.amount_refunded) == ("succeeded", 0)


async def test_full_refund_marks_the_payment_refunded(db: Database, now: datetime) -> None:
    payment_id = await pay(db, now)
    async with ledger_session(db) as conn:
        first = await create_refund(conn, payment_id=payment_id, amount=4000, now=now)
        second = await create_refund(
            conn,
            payment_id=payment_id,
            amount=6000,
            now=now,
            source="dashboard",
            require_balance=False,
        )
        await advance_refund(conn, first, "succeeded", now=now)
        await advance_refund(conn, second, "succeeded", now=now)
        payment = await get_payment(conn, payment_id)
        assert (payment.status, payment.amount_refunded) == ("refunded", 10000)
        # The Dashboard refunded beyond the merchant's share: the books show the debt.
        assert await all_balances(conn, 1) == (-1000, -1000, -1000)
        assert await check_balance_invariant(conn) == []
