"""The service killed (SIGKILL) after Stripe made a payout's transfer and before the service
heard: restarted, it finishes the payout with that same transfer, never a second one."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

import httpx
import pytest
import stripe

from reconciler.apply import apply_object
from reconciler.apply.context import ApplyContext
from reconciler.config import Secret
from reconciler.db.engine import Database
from reconciler.gateway import StripeGateway
from reconciler.ledger.balances import check_balance_invariant, merchant_balance
from reconciler.ledger.merchants import create_merchant
from reconciler.ledger.rows import Payout
from reconciler.ledger.session import ledger_reader, ledger_session
from reconciler.money import FeeSchedule
from reconciler.tokens import create_token
from reconciler.types import utcnow
from stripe_sandbox import run_sandbox_sync
from tests.processes import free_port, serve

API_KEY = "sk_test_crash_tests"


def funded_merchant(url: str, sandbox: str) -> tuple[int, str, str]:
    """An onboarded merchant owed 100.00 that Stripe holds available, and an operator token."""
    client = stripe.StripeClient(API_KEY, base_addresses={"api": sandbox})
    account = client.v1.accounts.create(params={"type": "express", "country": "US"})
    httpx.post(f"{sandbox}/_sandbox/accounts/{account.id}/onboarding").raise_for_status()
    merchant_id = asyncio.run(_merchant(url, sandbox, account.id))
    intent = client.v1.payment_intents.create(
        params={
            "amount": 10000,
            "currency": "usd",
            "payment_method": "pm_card_bypassPending",
            "payment_method_types": ["card"],
            "confirm": True,
            "metadata": {"icpay_account_id": str(merchant_id)},
        }
    )
    token = asyncio.run(_paid(url, sandbox, intent.id))
    return merchant_id, account.id, token


async def _merchant(url: str, sandbox: str, account_id: str) -> int:
    db = Database(url)
    gateway = StripeGateway(Secret(API_KEY), sandbox)
    try:
        async with ledger_session(db) as tx:
            merchant_id = await create_merchant(
                tx, name="Acme", now=utcnow(), stripe_account_id=account_id
            )
        context = ApplyContext(db=db, stripe=gateway, fees=FeeSchedule())
        await apply_object(context, await gateway.account(account_id))
        return merchant_id
    finally:
        await gateway.aclose()
        await db.dispose()


async def _paid(url: str, sandbox: str, intent_id: str) -> str:
    db = Database(url)
    gateway = StripeGateway(Secret(API_KEY), sandbox)
    try:
        context = ApplyContext(db=db, stripe=gateway, fees=FeeSchedule())
        await apply_object(context, await gateway.payment_intent(intent_id))
        async with db.write() as conn:
            _, token = await create_token(conn, role="operator", now=utcnow())
        return token
    finally:
        await gateway.aclose()
        await db.dispose()


async def payout_and_balance(url: str, payout_id: int, merchant_id: int) -> tuple[str, int]:
    db = Database(url)
    try:
        async with ledger_reader(db) as tx:
            payout = await tx.get(Payout, payout_id)
            assert await check_balance_invariant(tx) == []
            return payout.status, await merchant_balance(tx, merchant_id, "usd")
    finally:
        await db.dispose()


def test_a_payout_killed_mid_call_ends_with_one_transfer(database_url: str, tmp_path: Path) -> None:
    with run_sandbox_sync(seed=5) as sandbox:
        merchant_id, account_id, token = funded_merchant(database_url, sandbox.url)
        # Stripe makes the transfer, then its answer never comes back.
        httpx.post(
            f"{sandbox.url}/_sandbox/faults/api",
            json={
                "kind": "hang",
                "count": 1,
                "seconds": 60,
                "execute": True,
                "path": "/v1/transfers",
                "method": "POST",
            },
        ).raise_for_status()
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "STRIPE_API_KEY": API_KEY,
            "STRIPE_API_BASE": sandbox.url,
            "PAYOUT_RETRY_SECONDS": "1",
            "LOG_LEVEL": "warning",
        }
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        answered: list[httpx.Response | Exception] = []

        def ask() -> None:
            try:
                answered.append(
                    httpx.post(
                        f"{base}/api/v1/payouts",
                        json={"account_id": merchant_id, "amount": 4000, "currency": "usd"},
                        headers={"authorization": f"Bearer {token}", "idempotency-key": "p1"},
                        timeout=30,
                    )
                )
            except Exception as error:  # the process dies under it
                answered.append(error)

        transfers = stripe.StripeClient(API_KEY, base_addresses={"api": sandbox.url}).v1.transfers
        with serve(env, tmp_path, port) as process:
            request = threading.Thread(target=ask)
            request.start()
            deadline = time.monotonic() + 20
            while not transfers.list(params={"destination": account_id}).data:
                assert time.monotonic() < deadline, "Stripe never made the transfer"
                time.sleep(0.05)
            process.kill()  # SIGKILL: between Stripe's transfer and the status update
            process.wait(timeout=10)
            request.join(timeout=30)
        assert isinstance(answered[0], Exception)
        status, _ = asyncio.run(payout_and_balance(database_url, 1, merchant_id))
        assert status == "processing"

        with serve(env, tmp_path, port):
            deadline = time.monotonic() + 20
            while asyncio.run(payout_and_balance(database_url, 1, merchant_id))[0] != "completed":
                if time.monotonic() > deadline:
                    pytest.fail("the restarted service did not finish the payout")
                time.sleep(0.2)
        [transfer] = transfers.list(params={"destination": account_id}).data
        assert transfer.metadata["icpay_payout_id"] == "1"
        assert asyncio.run(payout_and_balance(database_url, 1, merchant_id)) == ("completed", 6000)
