"""Checkout through the API and the sandbox: the PaymentIntent made for a payment, confirmed
as the customer's browser would, its Stripe state applied as its webhooks would be, and the
payment read back; the lists, the refusals, and Stripe failing halfway."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
import stripe
from starlette.testclient import TestClient

from handlers.app import create_app
from reconciler.apply import apply_object
from reconciler.config import Secret, Settings
from reconciler.ledger.merchants import mark_deauthorized
from reconciler.ledger.session import ledger_session
from reconciler.runtime import paths_context
from reconciler.types import utcnow
from stripe_sandbox import run_sandbox_sync
from tests.handlers.api.conftest import Api
from tests.stripe_world import TEST_RATE_BURST, TEST_RATE_LIMIT


def sdk(api: Api) -> stripe.StripeClient:
    settings = api.runtime.settings
    return stripe.StripeClient(
        settings.stripe_api_key.reveal(), base_addresses={"api": settings.stripe_api_base}
    )


def sandbox_post(api: Api, path: str, body: dict[str, Any]) -> Any:
    response = httpx.post(f"{api.runtime.settings.stripe_api_base}/_sandbox/{path}", json=body)
    response.raise_for_status()
    return response.json()


def apply_from_stripe(api: Api, obj: Any) -> None:
    """What its webhook does: the object's current Stripe state, applied to the ledger."""
    runtime = api.runtime
    context = paths_context(runtime.database, runtime.gateway, runtime.settings)
    api.client.portal.call(apply_object, context, obj.to_dict())  # type: ignore[union-attr]


def intents_for(api: Api, payment_id: int) -> list[Any]:
    listed = sdk(api).v1.payment_intents.list(params={"limit": 100})
    wanted = str(payment_id)
    return [i for i in listed.data if i.metadata.to_dict().get("icpay_payment_id") == wanted]


def pay(api: Api, token: str, account: int, amount: int = 2000, **headers: str) -> tuple[int, Any]:
    body = {"account_id": account, "amount": amount, "currency": "usd"}
    response = api.client.post(
        "/api/v1/payments", json=body, headers={"authorization": f"Bearer {token}", **headers}
    )
    return response.status_code, response.json()


def error_of(answer: tuple[int, Any]) -> tuple[int, str, str | None]:
    status, body = answer
    return status, body["error"]["code"], body["error"]["param"]


def test_a_checkout_is_confirmed_and_read_back_with_stripes_fee(api: Api) -> None:
    operator = api.token("operator")
    account = api.account(operator)
    status, made = pay(api, operator, account)
    assert status == 201, made
    assert set(made) == {
        "id",
        "account_id",
        "amount",
        "currency",
        "payment_intent_id",
        "client_secret",
        "status",
    }
    assert (made["account_id"], made["amount"], made["currency"], made["status"]) == (
        account,
        2000,
        "usd",
        "pending",
    )
    intent = sdk(api).v1.payment_intents.retrieve(made["payment_intent_id"])
    assert made["client_secret"] == intent.client_secret
    assert intent.metadata.to_dict() == {
        "icpay_payment_id": str(made["id"]),
        "icpay_account_id": str(account),
    }
    assert (intent.amount, intent.currency) == (2000, "usd")

    status, pending = api.call("GET", f"/payments/{made['id']}", operator)
    assert status == 200
    assert (pending["status"], pending["stripe_fee"], pending["refunds"]) == ("pending", None, [])

    # The customer's browser confirms with the client secret; Stripe's events follow.
    confirmed = sdk(api).v1.payment_intents.confirm(
        intent.id, params={"payment_method": "pm_card_bypassPending"}
    )
    assert confirmed.status == "succeeded"
    apply_from_stripe(api, confirmed)

    status, paid = api.call("GET", f"/payments/{made['id']}", operator)
    assert status == 200
    assert paid == {
        "id": made["id"],
        "account_id": account,
        "amount": 2000,
        "currency": "usd",
        "platform_fee": 0,
        "stripe_fee": 88,  # 2.9% + 30 cents
        "amount_refunded": 0,
        "status": "succeeded",
        "payment_intent_id": intent.id,
        "created_at": pending["created_at"],
        "updated_at": paid["updated_at"],
        "refunds": [],
    }
    _, balance = api.call("GET", f"/accounts/{account}/balance", operator)
    assert balance["balance"] == 2000

    # A refund made in Stripe's Dashboard shows on the payment once applied.
    refund = sdk(api).v1.refunds.create(params={"payment_intent": intent.id, "amount": 500})
    apply_from_stripe(api, refund)
    _, refunded = api.call("GET", f"/payments/{made['id']}", operator)
    assert (refunded["status"], refunded["amount_refunded"]) == ("partially_refunded", 500)
    [shown] = refunded["refunds"]
    assert {k: shown[k] for k in ("amount", "currency", "status", "source")} == {
        "amount": 500,
        "currency": "usd",
        "status": "succeeded",
        "source": "dashboard",
    }
    assert set(shown) == {"id", "amount", "currency", "status", "source", "created_at"}


def test_a_merchant_checks_out_for_itself(api: Api) -> None:
    account = api.account(api.token("operator"))
    merchant = api.token("merchant", account)
    status, made = pay(api, merchant, account, 50)  # Stripe's minimum
    assert status == 201, made
    confirmed = sdk(api).v1.payment_intents.confirm(
        made["payment_intent_id"], params={"payment_method": "pm_card_visa"}
    )
    apply_from_stripe(api, confirmed)
    status, paid = api.call("GET", f"/payments/{made['id']}", merchant)
    assert (status, paid["status"], paid["stripe_fee"]) == (200, "succeeded", 31)


@pytest.fixture
def api_with_fees(database_url: str) -> Iterator[Api]:
    with run_sandbox_sync(seed=3) as sandbox:
        settings = Settings(
            database_url=database_url,
            stripe_api_key=Secret("sk_test_api_tests"),
            stripe_api_base=sandbox.url,
            stripe_rate_limit=TEST_RATE_LIMIT,
            stripe_rate_burst=TEST_RATE_BURST,
            inbox_worker_enabled=False,
            platform_fee_percent=Decimal("2.5"),
            platform_fee_fixed=10,
        )
        with TestClient(create_app(settings)) as client:
            yield Api(client, sandbox.url)


def test_the_platform_fee_is_fixed_when_the_payment_is_made(api_with_fees: Api) -> None:
    api = api_with_fees
    operator = api.token("operator")
    account = api.account(operator)
    _, made = pay(api, operator, account, 1999)
    _, payment = api.call("GET", f"/payments/{made['id']}", operator)
    assert payment["platform_fee"] == 60  # 2.5% of 1999, rounded half up, plus 10
    apply_from_stripe(
        api,
        sdk(api).v1.payment_intents.confirm(
            made["payment_intent_id"], params={"payment_method": "pm_card_bypassPending"}
        ),
    )
    _, balance = api.call("GET", f"/accounts/{account}/balance", operator)
    assert balance["balance"] == 1999 - 60


def test_the_list_filters_and_pages_newest_first(api: Api) -> None:
    operator = api.token("operator")
    first, second = api.account(operator, "First"), api.account(operator, "Second")
    made = [pay(api, operator, account)[1]["id"] for account in (first, second, first, first)]
    succeeded = made[2]
    apply_from_stripe(
        api,
        sdk(api).v1.payment_intents.confirm(
            api.call("GET", f"/payments/{succeeded}", operator)[1]["payment_intent_id"],
            params={"payment_method": "pm_card_visa"},
        ),
    )

    def ids(**params: Any) -> tuple[list[int], bool]:
        status, page = api.call("GET", "/payments", operator, params=params)
        assert status == 200, page
        return [payment["id"] for payment in page["data"]], page["has_more"]

    assert ids() == (made[::-1], False)
    assert ids(account_id=first) == ([made[3], made[2], made[0]], False)
    assert ids(account_id=first, status="succeeded") == ([succeeded], False)
    assert ids(status="pending") == ([made[3], made[1], made[0]], False)
    assert ids(limit=2) == ([made[3], made[2]], True)
    assert ids(limit=2, starting_after=made[2]) == ([made[1], made[0]], False)
    assert ids(account_id=first, limit=1, starting_after=made[2]) == ([made[0]], False)

    merchant = api.token("merchant", second)
    _, page = api.call("GET", "/payments", merchant)
    assert [payment["id"] for payment in page["data"]] == [made[1]]
    assert error_of(api.call("GET", "/payments", operator, params={"status": "paid"})) == (
        400,
        "invalid_request",
        "status",
    )
    assert error_of(api.call("GET", "/payments", operator, params={"limit": "0"})) == (
        400,
        "invalid_request",
        "limit",
    )


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"amount": 10.5}, "amount"),
        ({"amount": "2000"}, "amount"),
        ({"amount": 0}, "amount"),
        ({"amount": -100}, "amount"),
        ({"amount": 49}, "amount"),  # below Stripe's minimum charge
        ({"amount": 100_000_000}, "amount"),  # above Stripe's maximum
        ({"amount": None}, "amount"),
        ({"currency": "eur"}, "currency"),
        ({"currency": "dollars"}, "currency"),
        ({"currency": 840}, "currency"),
        ({"account_id": "1"}, "account_id"),
        ({"plan": "gold"}, "plan"),
    ],
)
def test_a_request_that_cannot_be_paid_is_refused_by_field(
    api: Api, change: dict[str, Any], param: str
) -> None:
    operator = api.token("operator")
    body = {"account_id": api.account(operator), "amount": 2000, "currency": "usd", **change}
    status, answer = api.call("POST", "/payments", operator, body)
    assert (status, answer["error"]["code"], answer["error"]["param"]) == (
        400,
        "invalid_request",
        param,
    ), answer
    _, page = api.call("GET", "/payments", operator)
    assert page["data"] == []


def test_a_missing_field_is_named(api: Api) -> None:
    operator = api.token("operator")
    status, answer = api.call("POST", "/payments", operator, {"account_id": 1, "amount": 2000})
    assert (status, answer["error"]["param"]) == (400, "currency")
    assert "missing" in answer["error"]["message"]


def test_uppercase_usd_is_usd(api: Api) -> None:
    operator = api.token("operator")
    body = {"account_id": api.account(operator), "amount": 2000, "currency": "USD"}
    status, made = api.call("POST", "/payments", operator, body)
    assert (status, made["currency"]) == (201, "usd")


def test_a_merchant_sees_nothing_of_another_merchants_payments(api: Api) -> None:
    operator = api.token("operator")
    mine, theirs = api.account(operator, "Mine"), api.account(operator, "Theirs")
    _, their_payment = pay(api, operator, theirs)
    merchant = api.token("merchant", mine)
    assert error_of(pay(api, merchant, theirs)) == (404, "not_found", "account_id")
    assert error_of(api.call("GET", f"/payments/{their_payment['id']}", merchant)) == (
        404,
        "not_found",
        "payment_id",
    )
    # Exactly as a payment or an account that does not exist.
    assert error_of(api.call("GET", "/payments/999999", merchant)) == (
        404,
        "not_found",
        "payment_id",
    )
    assert error_of(api.call("GET", "/payments", merchant, params={"account_id": str(theirs)})) == (
        404,
        "not_found",
        "account_id",
    )
    assert error_of(pay(api, operator, 999999)) == (404, "not_found", "account_id")
    _, theirs_only = api.call("GET", "/payments", operator, params={"account_id": str(theirs)})
    assert [p["id"] for p in theirs_only["data"]] == [their_payment["id"]]
    assert len(intents_for(api, their_payment["id"])) == 1


def test_a_deauthorized_merchant_takes_no_payments(api: Api) -> None:
    operator = api.token("operator")
    account = api.account(operator)

    async def deauthorize() -> None:
        async with ledger_session(api.runtime.database) as tx:
            await mark_deauthorized(tx, account, now=utcnow())

    api.client.portal.call(deauthorize)  # type: ignore[union-attr]
    status, answer = pay(api, operator, account)
    assert (status, answer["error"]["code"]) == (409, "connect_not_ready"), answer
    _, page = api.call("GET", "/payments", operator)
    assert page["data"] == []


def test_stripe_down_answers_503_and_leaves_nothing_to_charge(api: Api) -> None:
    operator = api.token("operator")
    account = api.account(operator)
    sandbox_post(
        api,
        "faults/api",
        {"kind": "server_error", "count": 10, "path": "/v1/payment_intents"},
    )
    assert error_of(pay(api, operator, account)) == (503, "stripe_unavailable", None)
    httpx.delete(f"{api.runtime.settings.stripe_api_base}/_sandbox/faults").raise_for_status()
    # The payment stays pending with no PaymentIntent: nothing a customer could confirm.
    _, page = api.call("GET", "/payments", operator)
    [left] = page["data"]
    assert (left["status"], left["payment_intent_id"]) == ("pending", None)
    assert intents_for(api, left["id"]) == []
    # Asking again without a key is a new payment (no money moved for the first).
    status, again = pay(api, operator, account)
    assert status == 201 and again["id"] != left["id"]


def test_a_lost_answer_is_retried_into_the_same_payment_intent(api: Api) -> None:
    operator = api.token("operator")
    account = api.account(operator)
    sandbox_post(
        api,
        "faults/api",
        {"kind": "server_error", "count": 1, "path": "/v1/payment_intents", "execute": True},
    )
    status, made = pay(api, operator, account)
    assert status == 201, made
    [intent] = intents_for(api, made["id"])  # made by the first try, answered to the second
    assert made["payment_intent_id"] == intent.id


def test_a_crash_before_the_intent_is_stored_makes_no_second_one(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stripe made the intent, then the database went away before its id was stored: the
    intent's own event attributes it, and a repeat with the Idempotency-Key gets it again."""
    operator = api.token("operator")
    account = api.account(operator)

    async def crash(*args: Any) -> None:
        raise OSError("the database went away")

    with monkeypatch.context() as patched:
        patched.setattr("reconciler.paths.checkout.apply_payment_intent", crash)
        key = {"idempotency-key": "order-42"}
        assert error_of(pay(api, operator, account, **key)) == (
            503,
            "database_unavailable",
            None,
        )
    _, page = api.call("GET", "/payments", operator)
    [left] = page["data"]
    assert (left["status"], left["payment_intent_id"]) == ("pending", None)
    [made_at_stripe] = intents_for(api, left["id"])

    apply_from_stripe(api, made_at_stripe)  # its payment_intent.created, delivered meanwhile
    _, payment = api.call("GET", f"/payments/{left['id']}", operator)
    assert payment["payment_intent_id"] == made_at_stripe.id

    status, repeated = pay(api, operator, account, **key)
    assert status == 200, repeated
    assert (repeated["id"], repeated["payment_intent_id"]) == (left["id"], made_at_stripe.id)
    assert repeated["client_secret"] == made_at_stripe.client_secret
    assert len(intents_for(api, left["id"])) == 1
    _, page = api.call("GET", "/payments", operator)
    assert [p["id"] for p in page["data"]] == [left["id"]]


def test_a_repeat_before_the_event_gets_the_same_intent_by_its_key(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    operator = api.token("operator")
    account = api.account(operator)

    async def crash(*args: Any) -> None:
        raise OSError("the database went away")

    key = {"idempotency-key": "order-43"}
    with monkeypatch.context() as patched:
        patched.setattr("reconciler.paths.checkout.apply_payment_intent", crash)
        assert pay(api, operator, account, **key)[0] == 503
    status, repeated = pay(api, operator, account, **key)
    assert status == 200, repeated
    [intent] = intents_for(api, repeated["id"])  # Stripe answered the same key with it
    assert repeated["payment_intent_id"] == intent.id


def test_an_idempotency_key_repeats_a_checkout_and_refuses_another(api: Api) -> None:
    operator = api.token("operator")
    account = api.account(operator)
    status, made = pay(api, operator, account, **{"idempotency-key": "cart-7"})
    assert status == 201
    assert pay(api, operator, account, **{"idempotency-key": "cart-7"}) == (200, made)
    assert error_of(pay(api, operator, account, 3000, **{"idempotency-key": "cart-7"})) == (
        409,
        "idempotency_conflict",
        None,
    )
    # Keys belong to the merchant: another token retrying gets the same payment, and
    # another merchant's same key is its own.
    assert pay(api, api.token("operator"), account, **{"idempotency-key": "cart-7"}) == (
        200,
        made,
    )
    elsewhere = api.account(operator, "Elsewhere")
    status, other = pay(api, operator, elsewhere, **{"idempotency-key": "cart-7"})
    assert status == 201 and other["id"] != made["id"]
    assert error_of(pay(api, operator, account, **{"idempotency-key": " "})) == (
        400,
        "invalid_request",
        "Idempotency-Key",
    )
    _, page = api.call("GET", "/payments", operator)
    assert len(page["data"]) == 2
