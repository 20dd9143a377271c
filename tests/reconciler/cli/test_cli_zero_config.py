"""`make run` on a fresh machine: `reconciler serve` with nothing about Stripe configured
brings up the sandbox, registers its webhooks, and books what happens there."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from reconciler.db.engine import Database
from reconciler.ledger.merchants import create_merchant
from reconciler.ledger.session import ledger_session
from tests.processes import free_port, run_cli, serve


async def add_merchant(url: str) -> int:
    db = Database(url)
    try:
        async with ledger_session(db) as conn:
            return await create_merchant(conn, name="Acme", now=datetime.now(UTC))
    finally:
        await db.dispose()


def booked_payments(database: Path) -> list[tuple[str, int, int | None]]:
    with sqlite3.connect(database) as conn:
        rows = conn.execute("SELECT status, amount, stripe_fee FROM payments").fetchall()
    conn.close()
    return [tuple(row) for row in rows]


def test_serve_with_no_stripe_configured_runs_against_the_sandbox(tmp_path: Path) -> None:
    database = tmp_path / "var" / "reconciler.db"
    env = {key: value for key, value in os.environ.items() if not key.startswith("STRIPE_")}
    sandbox_port = free_port()
    env.update(
        DATABASE_URL=f"sqlite+aiosqlite:///{database}",
        SANDBOX_PORT=str(sandbox_port),
        LOG_LEVEL="warning",
    )
    run_cli(["migrate"], env, tmp_path)
    merchant_id = asyncio.run(add_merchant(env["DATABASE_URL"]))

    with serve(env, tmp_path, free_port()):
        sandbox = f"http://127.0.0.1:{sandbox_port}"
        paid = httpx.post(
            f"{sandbox}/v1/payment_intents",
            auth=("sk_test_sandbox", ""),
            data={
                "amount": "5000",
                "currency": "usd",
                "payment_method": "pm_card_bypassPending",
                "payment_method_types[]": "card",
                "confirm": "true",
                "metadata[icpay_account_id]": str(merchant_id),
            },
        )
        assert paid.status_code == 200, paid.text
        deadline = time.monotonic() + 15
        while booked_payments(database) != [("succeeded", 5000, 175)]:
            assert time.monotonic() < deadline, booked_payments(database)
            httpx.post(f"{sandbox}/_sandbox/deliveries/flush", json={})
            time.sleep(0.1)
