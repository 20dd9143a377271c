"""Whole stories told through the sandbox, each ending in exact ledger assertions.

A scenario acts on Stripe (through the SDK and the sandbox's Dashboard and clock), calls
`scene.settle()` to let the ledger catch up, and asserts. How it catches up is the driver's
business: `tests/reconciler/apply` feeds the sandbox's events to the applier (in order,
reversed, repeated); `tests/e2e` lets the sandbox deliver real signed webhooks to the running
service (with duplicates, reordering and drops). Both must end in the same ledger.

Each payment is 100.00 USD with ICPay's fee at 10%: the merchant's share is 90.00, Stripe's
fee 2.9% + 30c = 3.20, the net 96.80.

Captured asynchronously (`POST /_sandbox/settings {"async_capture": true}`), a charge shows
its balance transaction only a moment of sandbox time after it succeeded (`charge.updated`):
until then Stripe's fee is unknown and nothing is released, whatever balance.available said.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
import stripe
from sqlalchemy import Table, select

from reconciler.apply.context import ApplyContext
from reconciler.db.engine import Database
from reconciler.db.tables import (
    discrepancies,
    merchants,
    payments,
    payouts,
    platform_balance_snapshots,
    refunds,
)
from reconciler.errors import AccountCannotReceive
from reconciler.ledger.balances import account_balance, check_balance_invariant
from reconciler.ledger.merchants import create_merchant
from reconciler.ledger.payouts import reserve_payout
from reconciler.ledger.session import ledger_reader, ledger_session
from reconciler.money import FeeSchedule
from reconciler.paths.platform_balance import BalanceRefresher
from tests.factories import Legs, all_balances, journal_history, payable_merchant
from tests.stripe_world import TWO_DAYS_AND_A_BIT, StripeWorld

FEE_PERCENT = Decimal(10)
AVAILABLE = "platform:stripe_available"
PENDING = "platform:stripe_pending"
PAYABLE = "merchant:1:payable"
IN_FLIGHT = "platform:payouts_in_flight"

# The journal of one paid 100.00 card payment, once its funds are available.
PAID = [
    (
        "payment:1:succeeded",
        [(PAYABLE, 0, 9000), ("platform:fee_revenue", 0, 1000), (PENDING, 10000, 0)],
    ),
    ("payment:1:stripe_fee", [("platform:stripe_fees", 320, 0), (PENDING, 0, 320)]),
]
AVAILABLE_NOW = [("payment:1:funds_available", [(AVAILABLE, 9680, 0), (PENDING, 0, 9680)])]


def _by_rank(key: str, ranks: dict[str, dict[int, int]]) -> str:
    """`payment:7:succeeded` as `payment:<its rank>:succeeded`."""
    kind, _, rest = key.partition(":")
    row_id, _, fact = rest.partition(":")
    if kind not in ranks or not row_id.isdigit():
        return key
    return f"{kind}:{ranks[kind].get(int(row_id), row_id)}:{fact}"


@dataclass
class Scene:
    db: Database
    world: StripeWorld
    settle: Callable[[], Awaitable[None]]
    now: datetime

    async def rows(self, table: Table, *columns: str) -> list[tuple[Any, ...]]:
        async with ledger_reader(self.db) as conn:
            query = select(*(table.c[column] for column in columns)).order_by(table.c.id)
            return [tuple(row) for row in await conn.execute(query)]

    async def assert_balances(self, merchant_id: int, merchant: int, available: int) -> None:
        async with ledger_reader(self.db) as conn:
            assert await all_balances(conn, merchant_id) == (merchant, merchant, merchant)
            assert await account_balance(conn, AVAILABLE, "usd") == available
            assert await check_balance_invariant(conn) == []

    async def assert_journal(self, expected: list[tuple[str, Legs]]) -> None:
        """Every entry, exactly. Compared by the fact each records: the order events arrive in
        may change the order entries were posted in, never what they are."""
        async with ledger_reader(self.db) as conn:
            ranks = {
                name: {
                    row_id: rank for rank, (row_id,) in enumerate(await self.rows(table, "id"), 1)
                }
                for name, table in (("payment", payments), ("refund", refunds), ("payout", payouts))
            }
            found = [(_by_rank(key, ranks), legs) for key, legs in await journal_history(conn)]
        assert sorted(found) == sorted(expected)

    async def rank(self, table: Table, row_id: int) -> int:
        """The row's place among its table's rows (1 for the first made), as journal keys are
        compared: ids themselves may skip a number (one lost to a race or a rolled-back batch
        is not given out again)."""
        ids = [found for (found,) in await self.rows(table, "id")]
        return ids.index(row_id) + 1

    async def refresh_balance(self) -> None:
        """What the scheduled refresh does: store the platform balance Stripe reports now.
        A story that ends on a balance newer than its last balance.available says so with
        this, so it ends the same whether events brought snapshots or were thin (a thin
        balance.available fetches the balance as it is when applied)."""
        ctx = ApplyContext(db=self.db, stripe=self.world.gateway, fees=FeeSchedule())
        await BalanceRefresher(ctx).refresh("usd")

    async def merchant(self) -> int:
        async with ledger_session(self.db) as conn:
            return await payable_merchant(conn, self.now)

    async def connected_merchant(self) -> tuple[int, str]:
        """A merchant with an onboarded Express account at the sandbox."""
        account = await self.world.client.v1.accounts.create_async(
            params={"type": "express", "country": "US"}
        )
        await self.world.control_post(f"accounts/{account.id}/onboarding")
        async with ledger_session(self.db) as conn:
            merchant_id = await create_merchant(
                conn, name="Acme", now=self.now, stripe_account_id=account.id
            )
        return merchant_id, account.id


async def visa_payment_is_pending_then_available(scene: Scene) -> None:
    merchant_id = await scene.merchant()
    intent = await scene.world.pay(merchant_id, 10000, "pm_card_visa")
    await scene.settle()
    assert await scene.rows(
        payments, "payment_intent_id", "status", "platform_fee", "stripe_fee", "funds_available"
    ) == [(intent.id, "succeeded", 1000, 320, False)]
    await scene.assert_balances(merchant_id, 9000, available=0)
    await scene.assert_journal(PAID)

    await scene.world.control_post("clock/advance", {"seconds": TWO_DAYS_AND_A_BIT})
    await scene.settle()
    assert await scene.rows(payments, "funds_available") == [(True,)]
    await scene.assert_balances(merchant_id, 9000, available=9680)
    await scene.assert_journal(PAID + AVAILABLE_NOW)
    async with ledger_reader(scene.db) as conn:
        assert await account_balance(conn, PENDING, "usd") == 0


async def bypass_pending_card_is_available_at_once(scene: Scene) -> None:
    merchant_id = await scene.merchant()
    await scene.world.pay(merchant_id, 10000, "pm_card_bypassPending")
    await scene.settle()
    assert await scene.rows(payments, "status", "funds_available") == [("succeeded", True)]
    await scene.assert_balances(merchant_id, 9000, available=9680)
    await scene.assert_journal(PAID + AVAILABLE_NOW)


async def declined_card_books_nothing(scene: Scene) -> None:
    merchant_id = await scene.merchant()
    with pytest.raises(stripe.CardError, match="declined"):
        await scene.world.pay(merchant_id, 10000, "pm_card_chargeDeclined")
    await scene.settle()
    assert await scene.rows(payments, "status") == [("failed",)]
    await scene.assert_balances(merchant_id, 0, available=0)
    await scene.assert_journal([])


async def dashboard_refund_becomes_a_dashboard_refund_record(scene: Scene) -> None:
    merchant_id = await scene.merchant()
    intent = await scene.world.pay(merchant_id, 10000, "pm_card_bypassPending")
    await scene.world.control_post(
        "dashboard/refunds", {"payment_intent": intent.id, "amount": 2500}
    )
    await scene.settle()
    assert await scene.rows(refunds, "amount", "status", "source") == [
        (2500, "succeeded", "dashboard")
    ]
    assert await scene.rows(payments, "status", "amount_refunded") == [("partially_refunded", 2500)]
    await scene.assert_balances(merchant_id, 6500, available=9680 - 2500)
    await scene.assert_journal(
        [*PAID, *AVAILABLE_NOW, ("refund:1:booked", [(PAYABLE, 2500, 0), (AVAILABLE, 0, 2500)])]
    )


async def full_refund_keeps_the_fee_and_reports_what_the_merchant_owes(scene: Scene) -> None:
    merchant_id = await scene.merchant()
    intent = await scene.world.pay(merchant_id, 10000, "pm_card_bypassPending")
    await scene.world.control_post("dashboard/refunds", {"payment_intent": intent.id})
    await scene.settle()
    await scene.refresh_balance()
    assert await scene.rows(payments, "status", "amount_refunded") == [("refunded", 10000)]
    # ICPay keeps its 10.00 fee, as Stripe keeps an application fee: the merchant owes it.
    await scene.assert_balances(merchant_id, -1000, available=9680 - 10000)
    await scene.assert_journal(
        [*PAID, *AVAILABLE_NOW, ("refund:1:booked", [(PAYABLE, 10000, 0), (AVAILABLE, 0, 10000)])]
    )
    found = await scene.rows(discrepancies, "kind", "object_type", "object_id", "merchant_id")
    [refund] = (await scene.world.client.v1.refunds.list_async()).data
    # 96.80 available does not cover 100.00: Stripe holds the refund until funds arrive.
    assert (refund.status, refund.pending_reason) == ("pending", "insufficient_funds")
    assert sorted(found) == [
        ("negative_merchant_balance", "merchant", str(merchant_id), merchant_id),
        # Stripe took the refund from the available balance at once: -3.20 while it waits.
        ("negative_platform_balance", "balance", "usd", None),
        ("refund_waiting_for_funds", "refund", refund.id, merchant_id),
    ]


async def refund_fail_card_refund_fails_and_gives_the_money_back(scene: Scene) -> None:
    merchant_id = await scene.merchant()
    intent = await scene.world.pay(merchant_id, 10000, "pm_card_refundFail")
    await scene.world.control_post("clock/advance", {"seconds": TWO_DAYS_AND_A_BIT})
    await scene.world.client.v1.refunds.create_async(
        params={"payment_intent": intent.id, "amount": 4000}
    )
    await scene.world.control_post("clock/advance", {"seconds": 60})
    await scene.settle()
    assert await scene.rows(refunds, "amount", "status", "failure_reason", "source") == [
        (4000, "failed", "expired_or_canceled_card", "dashboard")
    ]
    assert await scene.rows(payments, "status", "amount_refunded") == [("succeeded", 0)]
    await scene.assert_balances(merchant_id, 9000, available=9680)
    await scene.assert_journal(
        [
            *PAID,
            *AVAILABLE_NOW,
            ("refund:1:booked", [(PAYABLE, 4000, 0), (AVAILABLE, 0, 4000)]),
            ("refund:1:returned", [(PAYABLE, 0, 4000), (AVAILABLE, 4000, 0)]),
        ]
    )


async def refund_canceled_after_success_gives_the_money_back(scene: Scene) -> None:
    merchant_id = await scene.merchant()
    intent = await scene.world.pay(merchant_id, 10000, "pm_card_bypassPending")
    refund = await scene.world.control_post(
        "dashboard/refunds", {"payment_intent": intent.id, "amount": 2500}
    )
    assert refund["status"] == "succeeded"
    # Canceled from the Dashboard in the short while Stripe allows after it succeeded.
    await scene.world.control_post(f"dashboard/refunds/{refund['id']}/cancel")
    await scene.settle()
    assert await scene.rows(refunds, "amount", "status", "source") == [
        (2500, "canceled", "dashboard")
    ]
    assert await scene.rows(payments, "status", "amount_refunded") == [("succeeded", 0)]
    await scene.assert_balances(merchant_id, 9000, available=9680)
    await scene.assert_journal(
        [
            *PAID,
            *AVAILABLE_NOW,
            ("refund:1:booked", [(PAYABLE, 2500, 0), (AVAILABLE, 0, 2500)]),
            ("refund:1:returned", [(PAYABLE, 0, 2500), (AVAILABLE, 2500, 0)]),
        ]
    )


async def _transfer(scene: Scene, account_id: str, payout_id: int, amount: int) -> Any:
    return await scene.world.client.v1.transfers.create_async(
        params={
            "amount": amount,
            "currency": "usd",
            "destination": account_id,
            "metadata": {"icpay_payout_id": str(payout_id)},
        }
    )


async def _reserve(scene: Scene, merchant_id: int, amount: int) -> int:
    async with ledger_session(scene.db) as conn:
        return await reserve_payout(
            conn, merchant_id=merchant_id, amount=amount, currency="usd", now=scene.now
        )


async def refund_held_for_funds_refuses_a_transfer_then_both_settle(scene: Scene) -> None:
    merchant_id, account_id = await scene.connected_merchant()
    first = await scene.world.pay(merchant_id, 10000, "pm_card_bypassPending")  # 96.80 available
    second = await scene.world.pay(merchant_id, 10000, "pm_card_visa")  # pending for two days
    await scene.settle()
    paid_out = await _transfer(scene, account_id, await _reserve(scene, merchant_id, 9000), 9000)
    # 6.80 available: Stripe takes the 50.00 refund at once, below zero, and holds it.
    refund = await scene.world.control_post(
        "dashboard/refunds", {"payment_intent": first.id, "amount": 5000}
    )
    assert (refund["status"], refund["pending_reason"]) == ("pending", "insufficient_funds")
    second_payout = await _reserve(scene, merchant_id, 500)
    with pytest.raises(stripe.InvalidRequestError) as refused:
        await _transfer(scene, account_id, second_payout, 500)
    assert refused.value.code == "balance_insufficient"
    await scene.settle()
    assert await scene.rows(refunds, "amount", "status") == [(5000, "pending")]
    open_now = await scene.rows(discrepancies, "kind", "object_id", "status")
    assert open_now == [("refund_waiting_for_funds", refund["id"], "open")]

    # The second payment's funds arrive: the refund is paid, and the transfer goes through.
    await scene.world.control_post("clock/advance", {"seconds": TWO_DAYS_AND_A_BIT})
    transfer = await _transfer(scene, account_id, second_payout, 500)
    await scene.settle()
    assert await scene.rows(refunds, "amount", "status") == [(5000, "succeeded")]
    assert await scene.rows(payouts, "amount", "status", "stripe_transfer_id") == [
        (9000, "completed", paid_out.id),
        (500, "completed", transfer.id),
    ]
    found = await scene.rows(discrepancies, "kind", "status")
    assert all(status != "open" for _, status in found), found
    # 2 x 90.00 earned, 90.00 and 5.00 paid out, 50.00 refunded; Stripe holds 48.60.
    await scene.assert_balances(merchant_id, 3500, available=4860)
    # Rows made from events are made in the order the events were applied.
    ids = dict(await scene.rows(payments, "payment_intent_id", "id"))
    await scene.assert_journal(
        [
            *paid_entries(await scene.rank(payments, ids[first.id])),
            *paid_entries(await scene.rank(payments, ids[second.id])),
            ("payout:1:reserved", [(PAYABLE, 9000, 0), (IN_FLIGHT, 0, 9000)]),
            ("payout:1:transferred", [(IN_FLIGHT, 9000, 0), (AVAILABLE, 0, 9000)]),
            ("refund:1:booked", [(PAYABLE, 5000, 0), (AVAILABLE, 0, 5000)]),
            ("payout:2:reserved", [(PAYABLE, 500, 0), (IN_FLIGHT, 0, 500)]),
            ("payout:2:transferred", [(IN_FLIGHT, 500, 0), (AVAILABLE, 0, 500)]),
        ]
    )


def paid_entries(payment_id: int) -> list[tuple[str, Legs]]:
    """The journal of one paid 100.00 card payment of merchant 1, its funds available."""
    key = f"payment:{payment_id}"
    return [
        (
            f"{key}:succeeded",
            [(PAYABLE, 0, 9000), ("platform:fee_revenue", 0, 1000), (PENDING, 10000, 0)],
        ),
        (f"{key}:stripe_fee", [("platform:stripe_fees", 320, 0), (PENDING, 0, 320)]),
        (f"{key}:funds_available", [(AVAILABLE, 9680, 0), (PENDING, 0, 9680)]),
    ]


async def transfer_reversed_in_the_dashboard_gives_the_payout_back(scene: Scene) -> None:
    merchant_id, account_id = await scene.connected_merchant()
    await scene.world.pay(merchant_id, 10000, "pm_card_bypassPending")
    await scene.settle()  # the onboarding and the payment are booked
    async with ledger_session(scene.db) as conn:
        payout_id = await reserve_payout(
            conn, merchant_id=merchant_id, amount=5000, currency="usd", now=scene.now
        )
    transfer = await scene.world.client.v1.transfers.create_async(
        params={
            "amount": 5000,
            "currency": "usd",
            "destination": account_id,
            "metadata": {"icpay_payout_id": str(payout_id)},
        }
    )
    # Two partial reversals: each is an entry of its own, whatever order the events come in.
    reversals = f"dashboard/transfers/{transfer.id}/reversals"
    first = await scene.world.control_post(reversals, {"amount": 2000})
    second = await scene.world.control_post(reversals, {"amount": 1000})
    await scene.settle()
    assert await scene.rows(payouts, "status", "stripe_transfer_id", "amount_reversed") == [
        ("amount_reversed", transfer.id, 3000)
    ]
    await scene.assert_balances(merchant_id, 7000, available=9680 - 2000)
    await scene.assert_journal(
        [
            *PAID,
            *AVAILABLE_NOW,
            ("payout:1:reserved", [(PAYABLE, 5000, 0), (IN_FLIGHT, 0, 5000)]),
            ("payout:1:transferred", [(IN_FLIGHT, 5000, 0), (AVAILABLE, 0, 5000)]),
            (f"payout:1:reversal:{first['id']}", [(PAYABLE, 0, 2000), (AVAILABLE, 2000, 0)]),
            (f"payout:1:reversal:{second['id']}", [(PAYABLE, 0, 1000), (AVAILABLE, 1000, 0)]),
        ]
    )


async def onboarding_completed_enables_the_merchant(scene: Scene) -> None:
    async with ledger_session(scene.db) as conn:
        merchant_id = await create_merchant(conn, name="Acme", now=scene.now)
    account = await scene.world.client.v1.accounts.create_async(
        params={
            "type": "express",
            "country": "US",
            "metadata": {"icpay_account_id": str(merchant_id)},
        }
    )
    await scene.world.control_post(f"accounts/{account.id}/onboarding")
    await scene.settle()
    [(account_id, status, payouts_enabled, capabilities, requirements)] = await scene.rows(
        merchants,
        "stripe_account_id",
        "connect_status",
        "payouts_enabled",
        "capabilities",
        "requirements",
    )
    assert (account_id, status, payouts_enabled) == (account.id, "enabled", True)
    assert capabilities["transfers"] == "active"
    assert (requirements["currently_due"], requirements["past_due"]) == ([], [])
    await scene.assert_journal([])


async def connect_state(scene: Scene) -> tuple[str, bool, str, dict[str, Any]]:
    [(status, payouts_enabled, capabilities, requirements)] = await scene.rows(
        merchants, "connect_status", "payouts_enabled", "capabilities", "requirements"
    )
    return status, payouts_enabled, capabilities.get("transfers", "unknown"), requirements


async def transfers_active_with_payouts_disabled_still_pays_the_merchant(scene: Scene) -> None:
    merchant_id, account_id = await scene.connected_merchant()
    await scene.world.control_post(f"accounts/{account_id}/payouts", {"enabled": False})
    await scene.world.pay(merchant_id, 10000, "pm_card_bypassPending")
    await scene.settle()
    # The merchant's own bank payouts are off; ICPay's transfers to them are not.
    assert (await connect_state(scene))[:3] == ("enabled", False, "active")
    async with ledger_session(scene.db) as conn:
        payout_id = await reserve_payout(
            conn, merchant_id=merchant_id, amount=5000, currency="usd", now=scene.now
        )
    await scene.world.client.v1.transfers.create_async(
        params={
            "amount": 5000,
            "currency": "usd",
            "destination": account_id,
            "metadata": {"icpay_payout_id": str(payout_id)},
        }
    )
    await scene.settle()
    assert await scene.rows(payouts, "status") == [("completed",)]
    await scene.assert_balances(merchant_id, 4000, available=9680 - 5000)
    await scene.assert_journal(
        [
            *PAID,
            *AVAILABLE_NOW,
            ("payout:1:reserved", [(PAYABLE, 5000, 0), (IN_FLIGHT, 0, 5000)]),
            ("payout:1:transferred", [(IN_FLIGHT, 5000, 0), (AVAILABLE, 0, 5000)]),
        ]
    )


async def payouts_enabled_without_transfers_cannot_be_paid(scene: Scene) -> None:
    merchant_id, account_id = await scene.connected_merchant()
    await scene.world.control_post(
        f"accounts/{account_id}/capabilities", {"capabilities": {"transfers": "inactive"}}
    )
    await scene.world.pay(merchant_id, 10000, "pm_card_bypassPending")
    await scene.settle()
    assert (await connect_state(scene))[:3] == ("restricted", True, "inactive")
    async with ledger_session(scene.db) as conn:
        with pytest.raises(AccountCannotReceive, match="transfers capability"):
            await reserve_payout(
                conn, merchant_id=merchant_id, amount=5000, currency="usd", now=scene.now
            )
    with pytest.raises(stripe.InvalidRequestError) as refused:  # and Stripe agrees
        await scene.world.client.v1.transfers.create_async(
            params={"amount": 5000, "currency": "usd", "destination": account_id}
        )
    assert refused.value.code == "insufficient_capabilities_for_transfer"
    await scene.assert_balances(merchant_id, 9000, available=9680)
    await scene.assert_journal(PAID + AVAILABLE_NOW)


async def requirements_past_due_restrict_the_merchant(scene: Scene) -> None:
    _, account_id = await scene.connected_merchant()
    await scene.world.control_post(
        f"accounts/{account_id}/requirements",
        {"currently_due": ["external_account"], "past_due": ["external_account"]},
    )
    await scene.settle()
    status, payouts_enabled, transfers, requirements = await connect_state(scene)
    assert (status, payouts_enabled, transfers) == ("restricted", False, "inactive")
    assert requirements["past_due"] == ["external_account"]
    assert requirements["disabled_reason"] == "requirements.past_due"
    await scene.assert_journal([])


async def deauthorization_with_money_owed_is_reported(scene: Scene) -> None:
    merchant_id, account_id = await scene.connected_merchant()
    await scene.world.pay(merchant_id, 10000, "pm_card_bypassPending")
    # An account.updated that may arrive after the disconnection, when Stripe no longer
    # answers for the account.
    await scene.world.control_post(f"accounts/{account_id}/payouts", {"enabled": False})
    await scene.world.control_post(f"accounts/{account_id}/deauthorize")
    await scene.settle()
    assert (await connect_state(scene))[:2] == ("deauthorized", False)
    await scene.assert_balances(merchant_id, 9000, available=9680)  # still owed
    await scene.assert_journal(PAID + AVAILABLE_NOW)
    found = await scene.rows(discrepancies, "kind", "object_id", "merchant_id", "ledger_value")
    assert found == [
        ("deauthorized_merchant_owed", account_id, merchant_id, {"owed": {"usd": 9000}})
    ]


async def what_is_not_ours_becomes_a_discrepancy_never_a_booking(scene: Scene) -> None:
    merchant_id, account_id = await scene.connected_merchant()
    intent = await scene.world.client.v1.payment_intents.create_async(
        params={
            "amount": 10000,
            "currency": "usd",
            "payment_method": "pm_card_bypassPending",
            "payment_method_types": ["card"],
            "confirm": True,
        }
    )
    foreign = await scene.world.client.v1.transfers.create_async(
        params={"amount": 1000, "currency": "usd", "destination": account_id}
    )
    await scene.settle()
    assert await scene.rows(payments, "id") == []
    assert await scene.rows(payouts, "id") == []
    await scene.assert_journal([])
    found = await scene.rows(discrepancies, "kind", "object_type", "object_id", "merchant_id")
    assert sorted(found, key=str) == sorted(
        [
            ("unattributed_object", "payment_intent", intent.id, None),
            # Sent to a merchant's account, yet never booked as their payout.
            ("unattributed_object", "transfer", foreign.id, merchant_id),
        ],
        key=str,
    )


async def balance_available_stores_the_platform_balance(scene: Scene) -> None:
    merchant_id = await scene.merchant()
    await scene.world.pay(merchant_id, 10000, "pm_card_visa")
    await scene.world.control_post("clock/advance", {"seconds": TWO_DAYS_AND_A_BIT})
    await scene.settle()
    snapshots = await scene.rows(
        platform_balance_snapshots, "currency", "available", "pending", "source"
    )
    assert snapshots and snapshots[-1] == ("usd", 9680, 0, "balance.available")
    await scene.assert_journal(PAID + AVAILABLE_NOW)


ASYNC_CAPTURE = {"async_capture": True, "balance_transaction_delay": 5}
SUCCEEDED_ONLY = PAID[:1]


async def async_capture_funds_available_before_the_charge_shows_its_transaction(
    scene: Scene,
) -> None:
    merchant_id = await scene.merchant()
    await scene.world.control_post("settings", ASYNC_CAPTURE)
    await scene.world.pay(merchant_id, 10000, "pm_card_bypassPending")
    await scene.settle()
    # balance.available came first; the charge has no balance transaction yet.
    assert await scene.rows(payments, "status", "stripe_fee", "funds_available") == [
        ("succeeded", None, False)
    ]
    await scene.assert_balances(merchant_id, 9000, available=0)
    await scene.assert_journal(SUCCEEDED_ONLY)

    await scene.world.control_post("clock/advance", {"seconds": 5})  # charge.updated
    await scene.settle()
    assert await scene.rows(payments, "status", "stripe_fee", "funds_available") == [
        ("succeeded", 320, True)
    ]
    await scene.assert_balances(merchant_id, 9000, available=9680)
    await scene.assert_journal(PAID + AVAILABLE_NOW)


async def async_capture_the_charge_shows_its_transaction_before_funds_are_available(
    scene: Scene,
) -> None:
    merchant_id = await scene.merchant()
    await scene.world.control_post("settings", ASYNC_CAPTURE)
    await scene.world.pay(merchant_id, 10000, "pm_card_visa")
    await scene.settle()
    assert await scene.rows(payments, "stripe_fee", "funds_available") == [(None, False)]
    await scene.assert_journal(SUCCEEDED_ONLY)

    await scene.world.control_post("clock/advance", {"seconds": 5})  # charge.updated
    await scene.settle()
    assert await scene.rows(payments, "stripe_fee", "funds_available") == [(320, False)]
    await scene.assert_balances(merchant_id, 9000, available=0)
    await scene.assert_journal(PAID)

    await scene.world.control_post("clock/advance", {"seconds": TWO_DAYS_AND_A_BIT})
    await scene.settle()  # balance.available
    assert await scene.rows(payments, "stripe_fee", "funds_available") == [(320, True)]
    await scene.assert_balances(merchant_id, 9000, available=9680)
    await scene.assert_journal(PAID + AVAILABLE_NOW)


# 100.00 EUR settled as 108.00 USD (the sandbox's rate, 1.08): ICPay's 10% is 10.80, the
# merchant's share 97.20; Stripe's fee 2.9% + 30c (3.43) + 1% conversion (1.08) = 4.51.
EUR_PAID = [
    (
        "payment:1:succeeded",
        [(PAYABLE, 0, 9720), ("platform:fee_revenue", 0, 1080), (PENDING, 10800, 0)],
    ),
    ("payment:1:stripe_fee", [("platform:stripe_fees", 451, 0), (PENDING, 0, 451)]),
    ("payment:1:funds_available", [(AVAILABLE, 10349, 0), (PENDING, 0, 10349)]),
]


async def eur_payment_is_booked_in_usd_as_stripe_settled_it(scene: Scene) -> None:
    merchant_id = await scene.merchant()
    intent = await scene.world.pay(merchant_id, 10000, "pm_card_bypassPending", currency="eur")
    await scene.settle()
    assert await scene.rows(
        payments,
        "amount",
        "currency",
        "presentment_amount",
        "presentment_currency",
        "status",
        "platform_fee",
        "stripe_fee",
        "funds_available",
    ) == [(10800, "usd", 10000, "eur", "succeeded", 1080, 451, True)]
    await scene.assert_balances(merchant_id, 9720, available=10349)
    await scene.assert_journal(EUR_PAID)
    found = await scene.rows(
        discrepancies, "kind", "object_id", "merchant_id", "ledger_value", "stripe_value"
    )
    assert found == [
        (
            "unsupported_currency",
            intent.id,
            merchant_id,
            {"amount": 10800, "currency": "usd"},
            {"amount": 10000, "currency": "eur", "exchange_rate": 1.08},
        )
    ]


async def eur_refund_is_booked_at_the_usd_stripe_took_for_it(scene: Scene) -> None:
    merchant_id = await scene.merchant()
    intent = await scene.world.pay(merchant_id, 10000, "pm_card_bypassPending", currency="eur")
    # The euro is dearer by the time of the refund: 25.00 EUR now costs 28.00 USD.
    await scene.world.control_post("settings", {"exchange_rates": {"eur": 1.12}})
    refund = await scene.world.control_post(
        "dashboard/refunds", {"payment_intent": intent.id, "amount": 2500}
    )
    await scene.settle()
    assert await scene.rows(refunds, "amount", "currency", "status", "source") == [
        (2800, "usd", "succeeded", "dashboard")
    ]
    assert await scene.rows(payments, "status", "amount_refunded") == [("partially_refunded", 2800)]
    await scene.assert_balances(merchant_id, 9720 - 2800, available=10349 - 2800)
    await scene.assert_journal(
        [*EUR_PAID, ("refund:1:booked", [(PAYABLE, 2800, 0), (AVAILABLE, 0, 2800)])]
    )
    found = await scene.rows(discrepancies, "kind", "object_id", "ledger_value")
    assert sorted(found, key=str) == sorted(
        [
            ("unsupported_currency", intent.id, {"amount": 10800, "currency": "usd"}),
            ("unsupported_currency", refund["id"], {"amount": 2800, "currency": "usd"}),
        ],
        key=str,
    )


async def eur_payment_captured_asynchronously_is_booked_once_stripe_settles_it(
    scene: Scene,
) -> None:
    merchant_id = await scene.merchant()
    await scene.world.control_post("settings", ASYNC_CAPTURE)
    intent = await scene.world.pay(merchant_id, 10000, "pm_card_bypassPending", currency="eur")
    await scene.settle()
    # What it settles as is not known yet: nothing to book, nothing to report yet.
    assert await scene.rows(payments, "id") == []
    assert await scene.rows(discrepancies, "kind") == []
    await scene.assert_journal([])

    await scene.world.control_post("clock/advance", {"seconds": 5})  # charge.updated
    await scene.settle()
    assert await scene.rows(
        payments, "amount", "currency", "presentment_amount", "stripe_fee", "funds_available"
    ) == [(10800, "usd", 10000, 451, True)]
    await scene.assert_balances(merchant_id, 9720, available=10349)
    await scene.assert_journal(EUR_PAID)
    found = await scene.rows(discrepancies, "kind", "object_id", "ledger_value")
    assert found == [("unsupported_currency", intent.id, {"amount": 10800, "currency": "usd"})]


SCENARIOS: list[Callable[[Scene], Awaitable[None]]] = [
    visa_payment_is_pending_then_available,
    bypass_pending_card_is_available_at_once,
    declined_card_books_nothing,
    dashboard_refund_becomes_a_dashboard_refund_record,
    full_refund_keeps_the_fee_and_reports_what_the_merchant_owes,
    refund_fail_card_refund_fails_and_gives_the_money_back,
    transfer_reversed_in_the_dashboard_gives_the_payout_back,
    refund_canceled_after_success_gives_the_money_back,
    refund_held_for_funds_refuses_a_transfer_then_both_settle,
    onboarding_completed_enables_the_merchant,
    what_is_not_ours_becomes_a_discrepancy_never_a_booking,
    transfers_active_with_payouts_disabled_still_pays_the_merchant,
    payouts_enabled_without_transfers_cannot_be_paid,
    requirements_past_due_restrict_the_merchant,
    deauthorization_with_money_owed_is_reported,
    balance_available_stores_the_platform_balance,
    async_capture_funds_available_before_the_charge_shows_its_transaction,
    async_capture_the_charge_shows_its_transaction_before_funds_are_available,
    eur_payment_is_booked_in_usd_as_stripe_settled_it,
    eur_refund_is_booked_at_the_usd_stripe_took_for_it,
    eur_payment_captured_asynchronously_is_booked_once_stripe_settles_it,
]
