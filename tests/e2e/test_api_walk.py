"""A new user's whole story through the JSON API, with the sandbox delivering real signed
webhooks to the running service: a merchant is made, connects and onboards on Stripe's hosted
page, is paid with the test cards, paid out, refunds in part and in full, and disconnects.
Every answer, every ledger row and every journal entry is asserted."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from reconciler.db.engine import Database
from reconciler.db.tables import payments, payouts, refunds
from reconciler.ledger.balances import check_balance_invariant
from reconciler.ledger.session import ledger_reader
from reconciler.tokens import create_token
from reconciler.types import utcnow
from tests.e2e.service import running_service, settle_deliveries
from tests.factories import all_balances, journal_history
from tests.stripe_world import StripeWorld, stripe_world

PENDING, AVAILABLE = "platform:stripe_pending", "platform:stripe_available"
FEES, REVENUE, IN_FLIGHT = (
    "platform:stripe_fees",
    "platform:fee_revenue",
    "platform:payouts_in_flight",
)


@pytest.fixture
async def world() -> AsyncIterator[StripeWorld]:
    async with stripe_world(seed=21) as running:
        yield running


class Client:
    def __init__(self, http: httpx.AsyncClient, token: str) -> None:
        self.http, self.token = http, token

    async def __call__(
        self, method: str, path: str, body: Any = None, *, key: str | None = None, **kw: Any
    ) -> tuple[int, Any]:
        headers = {"authorization": f"Bearer {self.token}"}
        if key is not None:
            headers["idempotency-key"] = key
        response = await self.http.request(
            method, "/api/v1" + path, json=body, headers=headers, **kw
        )
        return response.status_code, response.json()


async def token_for(db: Database, role: str, account: int | None = None) -> str:
    async with db.write() as conn:
        _, token = await create_token(conn, role=role, merchant_id=account, now=utcnow())
    return token


async def onboard(url: str) -> httpx.Response:
    async with httpx.AsyncClient() as browser:
        page = await browser.get(url)
        action = re.search(r'<form method="post" action="([^"]+)"', page.text)
        assert page.status_code == 200 and action is not None
        return await browser.post(
            httpx.URL(url).join(action.group(1)), data={"business_name": "Acme"}
        )


async def test_a_merchant_from_sign_up_to_disconnect(
    database_url: str, db: Database, world: StripeWorld
) -> None:
    async with (
        running_service(database_url, world) as base,
        httpx.AsyncClient(base_url=base) as http,
    ):
        # The sandbox's clock is Stripe's: keep it with ours, as it is in production.
        await world.control_post("clock/advance", {"to": int(time.time())})
        operator = Client(http, await token_for(db, "operator"))
        settle = lambda: settle_deliveries(world, db)  # noqa: E731

        status, account = await operator(
            "POST", "/accounts", {"name": "Acme", "email": "a@acme.test"}
        )
        assert (status, account["connect"]["status"]) == (201, "not_connected")
        merchant = Client(http, await token_for(db, "merchant", account["id"]))
        path = f"/accounts/{account['id']}"

        status, onboarding = await merchant("POST", f"{path}/stripe/connect", {"country": "US"})
        assert (status, onboarding["created_account"], onboarding["connect"]["status"]) == (
            200,
            True,
            "onboarding",
        )
        submitted = await onboard(onboarding["url"])
        assert submitted.headers["location"] == "http://127.0.0.1:3000/settings?stripe=return"
        await settle()  # account.updated arrives as a webhook
        status, connect = await merchant("GET", f"{path}/stripe/connect")
        assert (status, connect["connect"]["status"], connect["connect"]["payouts_enabled"]) == (
            200,
            "enabled",
            True,
        )

        paid = {}
        for amount, card in (
            (10000, "pm_card_bypassPending"),
            (5000, "pm_card_visa"),
            (3000, "pm_card_bypassPending"),
        ):
            status, checkout = await merchant(
                "POST",
                "/payments",
                {"account_id": account["id"], "amount": amount, "currency": "usd"},
            )
            assert status == 201 and checkout["client_secret"].startswith(
                checkout["payment_intent_id"]
            )
            await world.client.v1.payment_intents.confirm_async(
                checkout["payment_intent_id"], params={"payment_method": card}
            )
            paid[amount] = checkout["id"]
        await settle()
        status, first = await merchant("GET", f"/payments/{paid[10000]}")
        assert (status, first["status"], first["platform_fee"], first["stripe_fee"]) == (
            200,
            "succeeded",
            1000,
            320,
        )

        # 90.00 + 45.00 + 27.00 owed; Stripe holds 96.80 + 28.83 available (the visa pending).
        status, payout = await merchant(
            "POST",
            "/payouts",
            {"account_id": account["id"], "amount": 5000, "currency": "usd"},
            key="po-1",
        )
        assert (status, payout["status"]) == (201, "completed")
        status, part = await merchant(
            "POST", f"/payments/{paid[10000]}/refunds", {"amount": 2000}, key="re-1"
        )
        assert (status, part["status"], part["amount"]) == (201, "succeeded", 2000)
        status, full = await merchant("POST", f"/payments/{paid[3000]}/refunds", {}, key="re-2")
        assert (status, full["status"], full["amount"]) == (201, "succeeded", 3000)
        await settle()

        status, balance = await merchant("GET", f"{path}/balance")
        assert (status, balance["balance"]) == (200, 9000 + 4500 + 2700 - 5000 - 2000 - 3000)
        status, gone = await merchant("DELETE", f"{path}/stripe/connect")
        assert (status, gone["stripe_account_id"], gone["connect"]["status"]) == (
            200,
            None,
            "not_connected",
        )
        status, refused = await merchant(
            "POST",
            "/payouts",
            {"account_id": account["id"], "amount": 100, "currency": "usd"},
            key="po-2",
        )
        assert (status, refused["error"]["code"]) == (409, "connect_not_ready")

    async with ledger_reader(db) as tx:
        assert await check_balance_invariant(tx) == []
        assert await all_balances(tx, account["id"]) == (6200, 6200, 6200)
        rows = [
            tuple(row)
            for row in await tx.execute(
                select(
                    payments.c.id, payments.c.amount, payments.c.status, payments.c.amount_refunded
                ).order_by(payments.c.id)
            )
        ]
        assert rows == [
            (paid[10000], 10000, "partially_refunded", 2000),
            (paid[5000], 5000, "succeeded", 0),
            (paid[3000], 3000, "refunded", 3000),
        ]
        assert [
            tuple(row) for row in await tx.execute(select(payouts.c.amount, payouts.c.status))
        ] == [(5000, "completed")]
        assert [
            tuple(row)
            for row in await tx.execute(
                select(refunds.c.amount, refunds.c.status, refunds.c.source).order_by(refunds.c.id)
            )
        ] == [(2000, "succeeded", "api"), (3000, "succeeded", "api")]
        journal = sorted(await journal_history(tx))
    payable = f"merchant:{account['id']}:payable"

    def payment_entries(
        payment_id: int, amount: int, stripe_fee: int, available: bool
    ) -> list[Any]:
        fee = amount // 10
        entries: list[Any] = [
            (
                f"payment:{payment_id}:succeeded",
                sorted([(payable, 0, amount - fee), (REVENUE, 0, fee), (PENDING, amount, 0)]),
            ),
            (
                f"payment:{payment_id}:stripe_fee",
                sorted([(FEES, stripe_fee, 0), (PENDING, 0, stripe_fee)]),
            ),
        ]
        if available:
            net = amount - stripe_fee
            entries.append(
                (
                    f"payment:{payment_id}:funds_available",
                    sorted([(AVAILABLE, net, 0), (PENDING, 0, net)]),
                )
            )
        return entries

    assert journal == sorted(
        [
            *payment_entries(paid[10000], 10000, 320, True),
            *payment_entries(paid[5000], 5000, 175, False),
            *payment_entries(paid[3000], 3000, 117, True),
            (f"payout:{payout['id']}:reserved", sorted([(payable, 5000, 0), (IN_FLIGHT, 0, 5000)])),
            (
                f"payout:{payout['id']}:transferred",
                sorted([(IN_FLIGHT, 5000, 0), (AVAILABLE, 0, 5000)]),
            ),
            (f"refund:{part['id']}:booked", sorted([(payable, 2000, 0), (AVAILABLE, 0, 2000)])),
            (f"refund:{full['id']}:booked", sorted([(payable, 3000, 0), (AVAILABLE, 0, 3000)])),
        ]
    )
