"""The operator's reconcile workflow over HTTP, on the real engine and the sandbox: a run
asked for by `POST /reconcile` runs in the background and finds what is planted; the
operator reads the discrepancy, resolves it with a note; the next run does not open it again
while it stands as it was, and does once it changes."""

from __future__ import annotations

import time
from typing import Any

from tests.handlers.api.conftest import Api
from tests.handlers.api.test_payouts import onboarded, pay

SETTLED = ("succeeded", "failed", "interrupted")


def reconciled(api: Api, token: str, body: dict[str, Any]) -> dict[str, Any]:
    """Ask for a run and wait for the engine to finish it in the background."""
    status, queued = api.call("POST", "/reconcile", token, body)
    assert (status, queued["status"]) == (202, "queued"), queued
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status, run = api.call("GET", f"/reconcile/runs/{queued['id']}", token)
        assert status == 200, run
        if run["status"] in SETTLED:
            return run
        time.sleep(0.05)
    raise AssertionError(f"run {queued['id']} still {run['status']} after 30 s")


def foreign_payment(api: Api, amount: int) -> str:
    """A PaymentIntent made at Stripe without ICPay's metadata (not made by ICPay)."""
    intent = api.stripe.v1.payment_intents.create(
        params={
            "amount": amount,
            "currency": "usd",
            "payment_method": "pm_card_bypassPending",
            "payment_method_types": ["card"],
            "confirm": True,
        }
    )
    return intent.id


def test_an_operator_reconciles_reads_resolves_and_is_not_told_twice(api: Api) -> None:
    operator = api.token("operator")
    account, _ = onboarded(api)
    pay(api, account, 5000)
    foreign = foreign_payment(api, 1500)

    run = reconciled(api, operator, {"scope": {}, "dry_run": True})
    assert run["status"] == "succeeded", run
    assert run["examined"] > 0 and run["found"] >= 1
    assert run["open_by_kind"].get("unattributed_object") == 1, run

    status, page = api.call("GET", "/discrepancies?status=open&kind=unattributed_object", operator)
    assert status == 200, page
    [found] = page["data"]
    assert (found["object_type"], found["object_id"]) == ("payment_intent", foreign)

    status, resolved = api.call(
        "POST", f"/discrepancies/{found['id']}/resolve", operator, {"note": "a test charge"}
    )
    assert status == 200, resolved
    assert resolved["status"] == "resolved"
    assert (resolved["resolution"]["how"], resolved["resolution"]["note"]) == (
        "operator",
        "a test charge",
    )

    # The next run sees the same PaymentIntent as it was: accepted, not news.
    again = reconciled(api, operator, {"dry_run": True})
    assert again["status"] == "succeeded", again
    assert "unattributed_object" not in again["open_by_kind"], again
    status, page = api.call("GET", "/discrepancies?kind=unattributed_object", operator)
    assert [row["id"] for row in page["data"]] == [found["id"]]

    # A second foreign payment is news.
    other = foreign_payment(api, 2500)
    third = reconciled(api, operator, {"dry_run": True})
    assert third["open_by_kind"].get("unattributed_object") == 1, third
    status, page = api.call("GET", "/discrepancies?status=open&kind=unattributed_object", operator)
    assert [row["object_id"] for row in page["data"]] == [other]


def test_a_one_object_run_over_http_looks_at_that_object(api: Api) -> None:
    operator = api.token("operator")
    account, _ = onboarded(api)
    pay(api, account, 5000)
    foreign = foreign_payment(api, 1500)
    run = reconciled(api, operator, {"scope": {"object": foreign}, "dry_run": True})
    assert run["status"] == "succeeded", run
    assert run["scope"]["object"] == foreign
    assert run["open_by_kind"] == {"unattributed_object": 1}, run
