"""Connect onboarding through the API and Stripe's hosted page (walked over HTTP), as a
merchant does it from the dashboard's Settings page."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.handlers.api.conftest import Api

RETURN_URL = "http://127.0.0.1:3000/settings?stripe=return"
REFRESH_URL = "http://127.0.0.1:3000/settings?stripe=refresh"


def walk_onboarding(url: str) -> httpx.Response:
    """Open the link, read the form, submit it: what the merchant does in the new tab."""
    with httpx.Client(follow_redirects=False) as browser:
        page = browser.get(url)
        assert page.status_code == 200, page.text
        action = re.search(r'<form method="post" action="([^"]+)"', page.text)
        assert action is not None
        target = httpx.URL(url).join(action.group(1))
        return browser.post(target, data={"business_name": "Acme Ltd"})


def connect(api: Api, token: str, account: int, country: str = "US") -> tuple[int, Any]:
    return api.call("POST", f"/accounts/{account}/stripe/connect", token, {"country": country})


def test_a_merchant_connects_onboards_and_disconnects(api: Api) -> None:
    account = api.account(api.token("operator"))
    merchant = api.token("merchant", account)

    status, onboarding = connect(api, merchant, account)
    assert status == 200, onboarding
    stripe_account = onboarding["stripe_account_id"]
    assert stripe_account.startswith("acct_") and onboarding["created_account"] is True
    assert onboarding["connect"]["status"] == "onboarding"
    assert onboarding["connect"]["capabilities"] == {"transfers": "inactive"}

    submitted = walk_onboarding(onboarding["url"])
    assert (submitted.status_code, submitted.headers["location"]) == (303, RETURN_URL)
    # The account.updated Stripe sends is applied by the webhook; here, asked for directly.
    status, state = api.call(
        "GET", f"/accounts/{account}/stripe/connect", merchant, params={"refresh": "true"}
    )
    assert status == 200
    assert state["stripe_account_id"] == stripe_account
    assert state["connect"]["status"] == "enabled"
    assert state["connect"]["capabilities"] == {"transfers": "active"}
    assert state["connect"]["details_submitted"] is True
    assert api.call("GET", f"/accounts/{account}/stripe/connect", merchant) == (200, state)

    # Connecting again in the same country is a fresh link (to edit), not a new account.
    status, again = connect(api, merchant, account)
    assert (status, again["stripe_account_id"], again["created_account"]) == (
        200,
        stripe_account,
        False,
    )
    status, link = api.call("POST", f"/accounts/{account}/stripe/connect/link", merchant)
    assert status == 200 and link["url"] != again["url"]
    # Submitted: the country is fixed.
    status, refused = connect(api, merchant, account, "FR")
    assert (status, refused["error"]["code"], refused["error"]["param"]) == (
        400,
        "invalid_request",
        "country",
    )

    status, gone = api.call("DELETE", f"/accounts/{account}/stripe/connect", merchant)
    assert status == 200
    assert gone["disconnected_stripe_account_id"] == stripe_account
    assert (gone["stripe_account_id"], gone["connect"]["status"]) == (None, "not_connected")
    status, missing = api.call("DELETE", f"/accounts/{account}/stripe/connect", merchant)
    assert (status, missing["error"]["code"]) == (404, "not_found")
    status, missing = api.call("POST", f"/accounts/{account}/stripe/connect/link", merchant)
    assert (status, missing["error"]["code"]) == (404, "not_found")

    # Connecting after a disconnect makes a new account: the old one is not taken back.
    status, fresh = connect(api, merchant, account)
    assert status == 200 and fresh["created_account"] is True
    assert fresh["stripe_account_id"] not in (None, stripe_account)


def test_another_country_before_submission_makes_a_new_account(api: Api) -> None:
    account = api.account(api.token("operator"))
    operator = api.token("operator")
    _, first = connect(api, operator, account, "US")
    status, second = connect(api, operator, account, "fr")
    assert status == 200 and second["created_account"] is True
    assert second["stripe_account_id"] != first["stripe_account_id"]
    # The first account's link now leads nowhere useful: it is no longer the merchant's.
    status, state = api.call("GET", f"/accounts/{account}/stripe/connect", operator)
    assert state["stripe_account_id"] == second["stripe_account_id"]


def test_a_link_used_twice_sends_the_merchant_to_refresh(api: Api) -> None:
    account = api.account(api.token("operator"))
    _, onboarding = connect(api, api.token("admin"), account)
    assert walk_onboarding(onboarding["url"]).status_code == 303
    with httpx.Client(follow_redirects=False) as browser:
        again = browser.get(onboarding["url"])
    assert (again.status_code, again.headers["location"]) == (303, REFRESH_URL)


@pytest.mark.parametrize(
    ("country", "param"), [("U1", "country"), ("USA", "country"), ("ZZ", "country")]
)
def test_a_country_that_cannot_be_is_refused(api: Api, country: str, param: str) -> None:
    account = api.account(api.token("operator"))
    status, body = connect(api, api.token("operator"), account, country)
    assert (status, body["error"]["code"], body["error"]["param"]) == (
        400,
        "invalid_request",
        param,
    )
    _, state = api.call("GET", f"/accounts/{account}/stripe/connect", api.token("operator"))
    assert state["stripe_account_id"] is None


def test_a_merchant_cannot_touch_another_merchants_connect(api: Api) -> None:
    operator = api.token("operator")
    mine, theirs = api.account(operator, "Mine"), api.account(operator, "Theirs")
    merchant = api.token("merchant", mine)
    for method, path, body in (
        ("POST", f"/accounts/{theirs}/stripe/connect", {"country": "US"}),
        ("POST", f"/accounts/{theirs}/stripe/connect/link", None),
        ("DELETE", f"/accounts/{theirs}/stripe/connect", None),
        ("GET", f"/accounts/{theirs}/stripe/connect", None),
    ):
        status, answer = api.call(method, path, merchant, body)
        assert (status, answer["error"]["code"]) == (404, "not_found"), (method, path)
    _, state = api.call("GET", f"/accounts/{theirs}/stripe/connect", operator)
    assert state["stripe_account_id"] is None
