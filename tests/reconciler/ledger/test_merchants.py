"""A merchant's Connect state: every capability and requirement kept, and what can be paid."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from reconciler.db.engine import Database
from reconciler.errors import AccountCannotReceive
from reconciler.ledger.merchants import (
    ConnectState,
    create_merchant,
    get_merchant,
    set_connect_state,
)
from reconciler.ledger.payouts import reserve_payout
from reconciler.ledger.session import ledger_session
from tests.factories import settled_payment


def account(transfers: str, *, payouts_enabled: bool, **requirements: Any) -> dict[str, Any]:
    return {
        "id": "acct_1",
        "object": "account",
        "charges_enabled": False,
        "payouts_enabled": payouts_enabled,
        "details_submitted": True,
        "capabilities": {"card_payments": "inactive", "transfers": transfers},
        "requirements": {"currently_due": [], "past_due": [], **requirements},
    }


def test_the_state_keeps_every_capability_and_requirement() -> None:
    state = ConnectState.of_account(
        account(
            "inactive",
            payouts_enabled=False,
            currently_due=["individual.id_number", "external_account"],
            past_due=["external_account"],
            disabled_reason="requirements.past_due",
            current_deadline=1_790_000_000,
        )
    )
    assert state.capabilities == {"card_payments": "inactive", "transfers": "inactive"}
    assert state.requirements == {
        "currently_due": ["external_account", "individual.id_number"],
        "eventually_due": [],
        "past_due": ["external_account"],
        "pending_verification": [],
        "disabled_reason": "requirements.past_due",
        "current_deadline": 1_790_000_000,
    }
    assert not state.can_receive_transfers


@pytest.mark.parametrize(
    ("transfers", "payouts_enabled", "status", "payable"),
    [
        # Paid by a transfer: the merchant's own bank payouts are another matter.
        ("active", False, "enabled", True),
        ("inactive", True, "restricted", False),
        ("pending", True, "restricted", False),
    ],
)
async def test_a_merchant_is_paid_when_its_transfers_capability_is_active(
    db: Database,
    now: datetime,
    transfers: str,
    payouts_enabled: bool,
    status: str,
    payable: bool,
) -> None:
    state = ConnectState.of_account(account(transfers, payouts_enabled=payouts_enabled))
    async with ledger_session(db) as tx:
        merchant_id = await create_merchant(tx, name="Acme", now=now, stripe_account_id="acct_1")
        await set_connect_state(tx, merchant_id, state, now=now)
        await settled_payment(tx, merchant_id, 1000, now)
        merchant = await get_merchant(tx, merchant_id)
        assert (merchant.connect_status, merchant.payouts_enabled) == (status, payouts_enabled)
        if payable:
            await reserve_payout(tx, merchant_id=merchant_id, amount=500, currency="usd", now=now)
        else:
            with pytest.raises(AccountCannotReceive, match="transfers capability"):
                await reserve_payout(
                    tx, merchant_id=merchant_id, amount=500, currency="usd", now=now
                )


async def test_onboarding_until_details_are_submitted(db: Database, now: datetime) -> None:
    state = ConnectState.of_account(
        {**account("inactive", payouts_enabled=False), "details_submitted": False}
    )
    async with ledger_session(db) as tx:
        merchant_id = await create_merchant(tx, name="Acme", now=now, stripe_account_id="acct_1")
        await set_connect_state(tx, merchant_id, state, now=now)
        assert (await get_merchant(tx, merchant_id)).connect_status == "onboarding"
