"""`/api/v1/discrepancies`: listed by status, kind and merchant, newest first; one in full;
resolved by an operator with a note, once."""

from __future__ import annotations

from typing import Any

from reconciler.reconcile.discrepancies import record_discrepancy, resolve_discrepancy
from reconciler.types import utcnow
from tests.handlers.api.conftest import Api


def plant(api: Api, kind: str, object_id: str, merchant: int | None = None, **values: Any) -> int:
    """Record a discrepancy as a run or a path does; returns its id."""

    async def record() -> None:
        async with api.runtime.database.write() as conn:
            await record_discrepancy(
                conn,
                kind=kind,
                object_type="transfer" if object_id.startswith("tr_") else "payment_intent",
                object_id=object_id,
                detail=f"{kind} on {object_id}",
                detected_by="reconcile",
                now=utcnow(),
                merchant_id=merchant,
                **values,
            )

    api.run(record)
    _, page = api.call("GET", "/discrepancies", api.token("operator"), params={"limit": 1})
    return int(page["data"][0]["id"])


def test_discrepancies_are_listed_by_status_kind_and_merchant(api: Api) -> None:
    operator = api.token("operator")
    acme, globex = api.account(operator, "Acme"), api.account(operator, "Globex")
    first = plant(api, "unattributed_object", "tr_outside", acme, stripe_value={"amount": 500})
    second = plant(api, "amount_mismatch", "pi_1", globex)
    third = plant(api, "amount_mismatch", "pi_2", acme)

    async def heal() -> None:
        async with api.runtime.database.write() as conn:
            await resolve_discrepancy(
                conn,
                kind="amount_mismatch",
                object_type="payment_intent",
                object_id="pi_1",
                resolution="booked since",
                resolved_by="reconcile",
                now=utcnow(),
            )

    api.run(heal)

    def ids(**params: Any) -> list[int]:
        status, page = api.call("GET", "/discrepancies", operator, params=params)
        assert status == 200, page
        return [found["id"] for found in page["data"]]

    assert ids() == [third, second, first]
    assert ids(status="open") == [third, first]
    assert ids(status="resolved") == [second]
    assert ids(kind="amount_mismatch") == [third, second]
    assert ids(account_id=acme) == [third, first]
    assert ids(account_id=acme, kind="amount_mismatch", status="open") == [third]
    _, page = api.call("GET", "/discrepancies", operator, params={"limit": 2})
    assert page["has_more"] is True
    assert ids(limit=2, starting_after=second) == [first]

    status, refused = api.call("GET", "/discrepancies", operator, params={"kind": "typo"})
    assert (status, refused["error"]["param"]) == (400, "kind")


def test_one_discrepancy_in_full_and_resolved_by_an_operator(api: Api) -> None:
    operator = api.token("operator")
    account = api.account(operator)
    found_id = plant(
        api,
        "unattributed_object",
        "tr_outside",
        account,
        ledger_value=None,
        stripe_value={"amount": 500, "currency": "usd"},
    )
    status, found = api.call("GET", f"/discrepancies/{found_id}", operator)
    assert status == 200, found
    assert {k: found[k] for k in ("kind", "object_type", "object_id", "account_id")} == {
        "kind": "unattributed_object",
        "object_type": "transfer",
        "object_id": "tr_outside",
        "account_id": account,
    }
    assert found["ledger_value"] is None
    assert found["stripe_value"] == {"amount": 500, "currency": "usd"}
    assert (found["status"], found["resolution"]) == ("open", None)
    assert found["first_seen_at"] == found["last_seen_at"]

    note = "a one-off transfer finance made by hand; booked as a manual adjustment"
    status, resolved = api.call(
        "POST", f"/discrepancies/{found_id}/resolve", operator, {"note": f"  {note} "}
    )
    assert status == 200, resolved
    assert resolved["status"] == "resolved"
    assert resolved["resolution"]["how"] == "operator"
    assert (resolved["resolution"]["by"], resolved["resolution"]["note"]) == (
        "operator:operator",
        note,
    )
    assert resolved["resolution"]["run_id"] is None and resolved["resolution"]["resolved_at"]
    assert resolved["last_seen_at"] == found["last_seen_at"]
    assert api.call("GET", f"/discrepancies/{found_id}", operator)[1] == resolved

    status, refused = api.call(
        "POST", f"/discrepancies/{found_id}/resolve", api.token("admin"), {"note": "again"}
    )
    assert (status, refused["error"]["code"]) == (409, "illegal_transition")
    assert "resolved already (operator)" in refused["error"]["message"]


def test_resolving_needs_a_note_and_a_discrepancy(api: Api) -> None:
    operator = api.token("operator")
    found_id = plant(api, "amount_mismatch", "pi_1")
    for body in ({}, {"note": ""}, {"note": "   "}, {"note": 5}):
        status, refused = api.call("POST", f"/discrepancies/{found_id}/resolve", operator, body)
        assert (status, refused["error"]["param"]) == (400, "note"), body
    status, refused = api.call("POST", "/discrepancies/999/resolve", operator, {"note": "x"})
    assert (status, refused["error"]["code"]) == (404, "not_found")
    status, refused = api.call("GET", "/discrepancies/999", operator)
    assert (status, refused["error"]["param"]) == (404, "discrepancy_id")
