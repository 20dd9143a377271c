"""The platform's balance through the API: Stripe's figures, to staff only."""

from __future__ import annotations

from tests.handlers.api.conftest import Api


def test_staff_read_the_platform_balance_from_stripe(api: Api) -> None:
    admin = api.token("admin")
    # No snapshot yet: the first read asks Stripe (the sandbox holds nothing).
    status, first = api.call("GET", "/balances/platform", admin)
    assert status == 200
    assert first == {
        "currency": "usd",
        "available": 0,
        "pending": 0,
        "refreshed_at": first["refreshed_at"],
    }
    assert api.runtime.balances.stripe_reads == 1
    assert api.call("GET", "/balances/platform", admin) == (200, first)
    assert api.runtime.balances.stripe_reads == 1  # the newest snapshot, not another read
    status, again = api.call("GET", "/balances/platform", admin, params={"refresh": "true"})
    assert status == 200 and api.runtime.balances.stripe_reads == 2
    assert again["refreshed_at"] >= first["refreshed_at"]


def test_a_merchant_may_not_see_the_platform_balance(api: Api) -> None:
    merchant = api.token("merchant", api.account(api.token("operator")))
    status, body = api.call("GET", "/balances/platform", merchant)
    assert (status, body["error"]["code"]) == (403, "forbidden")
