"""The async SDK (HTTPXClient and the *_async methods) against the sandbox."""

from __future__ import annotations

import httpx
import pytest
import stripe

from stripe_sandbox import RunningSandbox, SandboxClock, run_sandbox

from .factories import API_KEY, START

# stripe 16's HTTPXClient posts form bodies with httpx's deprecated `data=<str>`; that warning
# is the SDK's, not the sandbox's, and would otherwise fail every async POST.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Use 'content=<...>' to upload raw bytes/text content.:DeprecationWarning"
)


async def test_async_payment_transfer_refund_flow(
    aclient: stripe.StripeClient, sandbox: RunningSandbox
) -> None:
    intent = await aclient.v1.payment_intents.create_async(
        params={
            "amount": 10_000,
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "payment_method_types": ["card"],
            "confirm": True,
        }
    )
    assert intent.status == "succeeded"
    account = await aclient.v1.accounts.create_async(params={"type": "express"})
    async with httpx.AsyncClient(base_url=sandbox.url) as control:
        await control.post(f"/_sandbox/accounts/{account.id}/onboarding")
        with pytest.raises(stripe.InvalidRequestError) as refused:
            await aclient.v1.transfers.create_async(
                params={"amount": 1_000, "currency": "usd", "destination": account.id}
            )
        assert refused.value.code == "balance_insufficient"
        await control.post("/_sandbox/clock/advance", json={"seconds": 3 * 86_400})
    transfer = await aclient.v1.transfers.create_async(
        params={"amount": 1_000, "currency": "usd", "destination": account.id}
    )
    reversal = await aclient.v1.transfers.reversals.create_async(
        transfer.id, params={"amount": 400}
    )
    assert reversal.amount == 400
    refund = await aclient.v1.refunds.create_async(
        params={"payment_intent": intent.id, "amount": 500}
    )
    assert refund.status == "succeeded"
    balance = await aclient.v1.balance.retrieve_async()
    assert balance.available[0].amount == 9_680 - 1_000 + 400 - 500
    page = await aclient.v1.events.list_async(params={"limit": 3})
    assert len(page.data) == 3 and page.has_more is True
    txns = await aclient.v1.balance_transactions.list_async(params={"type": "refund"})
    assert [t.amount for t in txns.data] == [-500]


async def test_run_sandbox_async_context_manager() -> None:
    async with run_sandbox(seed=5, clock=SandboxClock(START, frozen=True)) as running:
        http_client = stripe.HTTPXClient()
        client = stripe.StripeClient(
            API_KEY, base_addresses={"api": running.url}, http_client=http_client
        )
        balance = await client.v1.balance.retrieve_async()
        await http_client.close_async()
    assert balance.available[0].amount == 0
    assert running.url.startswith("http://127.0.0.1:")
