"""Connect accounts: a merchant who disconnects, and what is still owed to them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from reconciler import gateway
from reconciler.apply.context import ApplyContext
from reconciler.apply.events import apply_event, stripe_reads
from reconciler.db.engine import Database
from reconciler.db.tables import discrepancies
from reconciler.ledger.merchants import get_merchant
from reconciler.ledger.session import ledger_reader, ledger_session
from reconciler.money import FeeSchedule
from tests.factories import all_balances, payable_merchant, settled_payment

ACCOUNT = "acct_acme"  # payable_merchant's account


class AccessRevoked:
    """A Stripe that no longer answers for the account, as after a deauthorization."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def account(self, account_id: str) -> dict[str, Any]:
        self.asked.append(account_id)
        raise PermissionError(f"the platform has no access to {account_id}")


class Revoked(AccessRevoked):
    """The gateway's answer for an account Stripe no longer answers for (403)."""

    async def account(self, account_id: str) -> dict[str, Any]:
        self.asked.append(account_id)
        raise gateway.AccessRevoked(
            "PermissionError: no access", retryable=False, http_status=403, code="account_invalid"
        )


def deauthorized() -> dict[str, Any]:
    return {
        "id": "evt_deauth",
        "object": "event",
        "type": "account.application.deauthorized",
        "account": ACCOUNT,
        "created": 1,
        "data": {"object": {"id": "ca_1", "object": "application"}},
    }


def account_updated() -> dict[str, Any]:
    return {
        "id": "evt_late",
        "object": "event",
        "type": "account.updated",
        "account": ACCOUNT,
        "created": 2,
        "data": {"object": {"id": ACCOUNT, "object": "account", "payouts_enabled": True}},
    }


def thin(event: dict[str, Any]) -> dict[str, Any]:
    """The thin notification Stripe sends for the same v1 event: no snapshot, the account as
    `context`, the account (if it is the object) as `related_object`."""
    notification: dict[str, Any] = {
        "id": event["id"] + "_thin",
        "object": "v2.core.event",
        "type": "v1." + event["type"],
        "created": "2026-01-01T00:00:0" + str(event["created"]) + ".000Z",
        "livemode": False,
        "context": event["account"],
        "reason": None,
    }
    if event["data"]["object"]["object"] == "account":
        notification["related_object"] = {
            "id": ACCOUNT,
            "type": "account",
            "url": f"/v1/accounts/{ACCOUNT}",
        }
    return notification


async def owed_rows(db: Database) -> list[tuple[Any, ...]]:
    async with ledger_reader(db) as conn:
        found = await conn.execute(
            select(
                discrepancies.c.kind,
                discrepancies.c.object_id,
                discrepancies.c.merchant_id,
                discrepancies.c.ledger_value,
            )
        )
        return [tuple(row) for row in found]


async def test_a_merchant_disconnecting_while_owed_money_is_reported(
    db: Database, now: datetime
) -> None:
    async with ledger_session(db) as conn:
        merchant_id = await payable_merchant(conn, now)
        await settled_payment(conn, merchant_id, 9000, now)
    stripe = AccessRevoked()
    ctx = ApplyContext(db=db, stripe=stripe, fees=FeeSchedule(), clock=lambda: now)  # type: ignore[arg-type]

    await apply_event(ctx, deauthorized())
    await apply_event(ctx, deauthorized())  # seen again: not news
    await apply_event(ctx, account_updated())  # late, and Stripe would refuse to answer

    assert stripe.asked == []
    async with ledger_reader(db) as conn:
        merchant = await get_merchant(conn, merchant_id)
        assert (merchant.connect_status, merchant.payouts_enabled) == ("deauthorized", False)
        assert await all_balances(conn, merchant_id) == (9000, 9000, 9000)  # still owed
        assert await stripe_reads(conn, account_updated()) == []  # a batch asks nothing either
    assert await owed_rows(db) == [
        ("deauthorized_merchant_owed", ACCOUNT, merchant_id, {"owed": {"usd": 9000}})
    ]


async def test_thin_events_alone_disconnect_the_merchant_as_snapshots_do(
    db: Database, now: datetime
) -> None:
    async with ledger_session(db) as conn:
        merchant_id = await payable_merchant(conn, now)
        await settled_payment(conn, merchant_id, 9000, now)
    stripe = Revoked()
    ctx = ApplyContext(db=db, stripe=stripe, fees=FeeSchedule(), clock=lambda: now)  # type: ignore[arg-type]

    # The late account.updated first: Stripe's 403 for the account is its deauthorization.
    await apply_event(ctx, thin(account_updated()))
    await apply_event(ctx, thin(deauthorized()))
    await apply_event(ctx, thin(account_updated()))  # now known lost: Stripe is not asked

    assert stripe.asked == [ACCOUNT]
    async with ledger_reader(db) as conn:
        merchant = await get_merchant(conn, merchant_id)
        assert (merchant.connect_status, merchant.payouts_enabled) == ("deauthorized", False)
        assert await stripe_reads(conn, thin(account_updated())) == []
    assert await owed_rows(db) == [
        ("deauthorized_merchant_owed", ACCOUNT, merchant_id, {"owed": {"usd": 9000}})
    ]


async def test_a_merchant_owed_nothing_disconnects_quietly(db: Database, now: datetime) -> None:
    async with ledger_session(db) as conn:
        await payable_merchant(conn, now)
    ctx = ApplyContext(db=db, stripe=AccessRevoked(), fees=FeeSchedule(), clock=lambda: now)  # type: ignore[arg-type]

    await apply_event(ctx, deauthorized())

    assert await owed_rows(db) == []
