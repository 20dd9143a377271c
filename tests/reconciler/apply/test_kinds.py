"""The one description per Stripe object kind: what it fetches is the object it describes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from reconciler.apply.kinds import KINDS, kind_of
from reconciler.apply.objects import apply_object
from tests.stripe_world import StripeWorld, stripe_world


@pytest.fixture
async def world() -> AsyncIterator[StripeWorld]:
    async with stripe_world() as running:
        yield running


def test_every_kind_is_found_by_its_stripe_object_name() -> None:
    for name, kind in KINDS.items():
        assert kind.name == name
        assert kind_of({"object": name}) is kind
    assert kind_of({"object": "invoice"}) is None


async def test_each_kind_fetches_a_fresh_copy_of_its_own_object(world: StripeWorld) -> None:
    client = world.client.v1
    account = await client.accounts.create_async(params={"type": "express", "country": "US"})
    await world.control_post(f"accounts/{account.id}/onboarding")
    intent = await world.pay(1, 10000, "pm_card_bypassPending")
    refund = await client.refunds.create_async(params={"payment_intent": intent.id, "amount": 100})
    transfer = await client.transfers.create_async(
        params={"amount": 500, "currency": "usd", "destination": account.id}
    )
    ids = {
        "payment_intent": intent.id,
        "charge": str(intent.latest_charge),
        "refund": refund.id,
        "transfer": transfer.id,
        "account": account.id,
        "balance": "",  # one per account, no id
    }
    assert set(ids) == set(KINDS)
    for name, kind in KINDS.items():
        fetched = await kind.fetch(world.gateway, ids[name])
        assert fetched["object"] == name
        assert fetched.get("id", "") == ids[name]
    # The charge comes with what applying it needs: its balance transaction, expanded.
    charge = await KINDS["charge"].fetch(world.gateway, ids["charge"])
    assert isinstance(charge["balance_transaction"], dict)


async def test_an_object_of_no_kind_is_refused_loudly() -> None:
    with pytest.raises(KeyError):
        await apply_object(None, {"object": "invoice", "id": "in_1"})  # type: ignore[arg-type]
