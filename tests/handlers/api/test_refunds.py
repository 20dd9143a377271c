"""Refunds ICPay makes, through the API and the sandbox: checked, made once, followed."""

from __future__ import annotations

from typing import Any

import httpx

from reconciler.ledger.rows import Payment
from reconciler.ledger.session import ledger_reader
from tests.handlers.api.conftest import Api
from tests.handlers.api.test_payouts import balance, onboarded, pay


def refund(api: Api, token: str, payment: int, key: str, **body: Any) -> tuple[int, Any]:
    response = api.client.post(
        f"/api/v1/payments/{payment}/refunds",
        json=body,
        headers={"authorization": f"Bearer {token}", "idempotency-key": key},
    )
    return response.status_code, response.json()


def payment_state(api: Api, payment_id: int) -> tuple[str, int]:
    async def read() -> tuple[str, int]:
        async with ledger_reader(api.runtime.database) as tx:
            payment = await tx.get(Payment, payment_id)
        return payment.status, payment.amount_refunded

    result: tuple[str, int] = api.run(read)
    return result


def test_partial_then_full_refund(api: Api) -> None:
    account, _ = onboarded(api)
    first = pay(api, account, 10000)
    pay(api, account, 10000)  # so the platform holds enough for the rest of the first
    merchant = api.token("merchant", account)

    status, part = refund(api, merchant, first, "r1", amount=2500, reason="requested_by_customer")
    assert status == 201, part
    assert (part["amount"], part["status"], part["source"], part["reason"]) == (
        2500,
        "succeeded",
        "api",
        "requested_by_customer",
    )
    made = api.stripe.v1.refunds.retrieve(part["stripe_refund_id"])
    assert (made.amount, made.metadata["icpay_refund_id"]) == (2500, str(part["id"]))
    assert payment_state(api, first) == ("partially_refunded", 2500)
    assert balance(api, account) == 17500
    assert refund(api, merchant, first, "r1", amount=2500, reason="requested_by_customer") == (
        200,
        part,
    )
    status, conflict = refund(api, merchant, first, "r1", amount=2000)
    assert (status, conflict["error"]["code"]) == (409, "idempotency_conflict")

    status, rest = refund(api, merchant, first, "r2")
    assert (status, rest["amount"], rest["status"]) == (201, 7500, "succeeded")
    assert payment_state(api, first) == ("refunded", 10000)
    assert balance(api, account) == 10000
    assert len(api.stripe.v1.refunds.list(params={"payment_intent": made.payment_intent}).data) == 2

    status, refused = refund(api, merchant, first, "r3", amount=1)
    assert (status, refused["error"]["code"]) == (409, "not_refundable")
    assert api.call("GET", f"/refunds/{part['id']}", merchant) == (200, part)
    status, listed = api.call("GET", "/refunds", merchant, params={"payment_id": first})
    assert [item["id"] for item in listed["data"]] == [rest["id"], part["id"]]


def test_refusals_by_field_and_reason(api: Api) -> None:
    account, _ = onboarded(api)
    payment = pay(api, account, 5000)
    operator = api.token("operator")
    status, body = refund(api, operator, payment, "a", amount=5001)
    assert (status, body["error"]["code"]) == (400, "invalid_amount")
    status, body = refund(api, operator, payment, "b", reason="changed_my_mind")
    assert (status, body["error"]["param"]) == (400, "reason")
    status, body = refund(api, operator, payment, "c", amount=0)
    assert (status, body["error"]["param"]) == (400, "amount")
    other = api.account(operator, "Other")
    status, body = refund(api, api.token("merchant", other), payment, "d", amount=100)
    assert (status, body["error"]["code"]) == (404, "not_found")
    assert payment_state(api, payment) == ("succeeded", 0) and balance(api, account) == 5000


def test_a_refund_the_platform_cannot_cover_is_refused(api: Api) -> None:
    """A visa payment's funds are pending at Stripe: nothing available to refund from."""
    account, _ = onboarded(api)
    payment = pay(api, account, 10000, "pm_card_visa")
    status, body = refund(api, api.token("operator"), payment, "k", amount=1000)
    assert (status, body["error"]["code"]) == (409, "insufficient_platform_balance")
    assert payment_state(api, payment) == ("succeeded", 0)


def test_stripe_down_leaves_the_refund_for_a_retry_with_its_key(api: Api) -> None:
    account, _ = onboarded(api)
    payment = pay(api, account, 10000)
    httpx.post(
        f"{api.sandbox_url}/_sandbox/faults/api",
        json={"kind": "server_error", "count": 4, "path": "/v1/refunds", "method": "POST"},
    ).raise_for_status()
    status, waiting = refund(api, api.token("operator"), payment, "k", amount=1000)
    assert (status, waiting["status"], waiting["stripe_refund_id"]) == (202, "pending", None)
    assert balance(api, account) == 9000  # held while it waits

    async def retry() -> None:
        await api.runtime.executor.execute_refund(waiting["id"])

    api.run(retry)
    status, done = api.call("GET", f"/refunds/{waiting['id']}", api.token("operator"))
    assert (done["status"], done["stripe_refund_id"] is not None) == ("succeeded", True)
    assert payment_state(api, payment) == ("partially_refunded", 1000)
