"""Merchant accounts through the API: who may create, list, read and see a balance."""

from __future__ import annotations

from typing import Any

import pytest

from tests.handlers.api.conftest import Api


def error(code: str, param: str | None = None) -> Any:
    class Matches:
        def __eq__(self, body: object) -> bool:
            if not isinstance(body, dict) or set(body) != {"error"}:
                return False
            detail = body["error"]
            return (
                set(detail) == {"code", "message", "param"}
                and detail["code"] == code
                and detail["param"] == param
                and bool(detail["message"])
            )

        def __repr__(self) -> str:
            return f"error({code!r}, {param!r})"

    return Matches()


def test_an_operator_creates_and_reads_an_account(api: Api) -> None:
    operator = api.token("operator")
    status, created = api.call(
        "POST", "/accounts", operator, {"name": " Acme Ltd ", "email": "ops@acme.test"}
    )
    assert status == 201
    assert created == {
        "id": created["id"],
        "name": "Acme Ltd",
        "email": "ops@acme.test",
        "stripe_account_id": None,
        "connect": {
            "status": "not_connected",
            "charges_enabled": False,
            "payouts_enabled": False,
            "details_submitted": False,
            "capabilities": {},
            "requirements": {
                "currently_due": [],
                "eventually_due": [],
                "past_due": [],
                "pending_verification": [],
                "disabled_reason": None,
                "current_deadline": None,
            },
        },
        "created_at": created["created_at"],
    }
    assert api.call("GET", f"/accounts/{created['id']}", operator) == (200, created)
    status, balance = api.call("GET", f"/accounts/{created['id']}/balance", operator)
    assert status == 200
    assert balance == {
        "account_id": created["id"],
        "ledger": "stripe_usd",
        "currency": "usd",
        "balance": 0,
        "as_of": balance["as_of"],
    }


def test_a_merchant_sees_only_its_own_account(api: Api) -> None:
    operator = api.token("operator")
    mine, theirs = api.account(operator, "Mine"), api.account(operator, "Theirs")
    merchant = api.token("merchant", mine)

    assert api.call("GET", f"/accounts/{mine}", merchant)[0] == 200
    assert api.call("GET", f"/accounts/{mine}/balance", merchant)[0] == 200
    # Another merchant's account answers as one that does not exist: ids cannot be probed.
    for path in (f"/accounts/{theirs}", f"/accounts/{theirs}/balance"):
        assert api.call("GET", path, merchant) == (404, error("not_found", "account_id"))
        assert api.call("GET", path.replace(str(theirs), "999"), merchant) == (
            404,
            error("not_found", "account_id"),
        )
    status, listed = api.call("GET", "/accounts", merchant)
    assert status == 200 and [item["id"] for item in listed["data"]] == [mine]
    status, _ = api.call("POST", "/accounts", merchant, {"name": "X", "email": "x@x.test"})
    assert status == 403


def test_listing_pages_newest_first(api: Api) -> None:
    admin = api.token("admin")
    ids = [api.account(admin, name) for name in ("A", "B", "C")]
    status, first = api.call("GET", "/accounts", admin, params={"limit": 2})
    assert status == 200 and first["has_more"] is True
    assert [item["id"] for item in first["data"]] == ids[::-1][:2]
    status, rest = api.call(
        "GET", "/accounts", admin, params={"limit": 2, "starting_after": first["data"][-1]["id"]}
    )
    assert (status, [item["id"] for item in rest["data"]], rest["has_more"]) == (
        200,
        [ids[0]],
        False,
    )


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"name": "A", "email": "a@a.test", "plan": "gold"}, "plan"),
        ({"email": "a@a.test"}, "name"),
        ({"name": "   ", "email": "a@a.test"}, "name"),
        ({"name": 7, "email": "a@a.test"}, "name"),
        ({"name": "A", "email": "not an email"}, "email"),
        ({"name": "A\u0000B", "email": "a@a.test"}, "name"),
        ([], None),
    ],
)
def test_bad_bodies_are_refused_by_field(api: Api, body: Any, param: str | None) -> None:
    status, answer = api.call("POST", "/accounts", api.token("operator"), body)
    assert (status, answer) == (400, error("invalid_request", param))
    assert api.call("GET", "/accounts", api.token("operator"))[1]["data"] == []


def test_text_a_database_cannot_keep_is_refused(api: Api) -> None:
    """A lone surrogate, as a client may escape it: JSON that is not text."""
    response = api.client.post(
        "/api/v1/accounts",
        content=b'{"name": "A\\udad3", "email": "a@a.test"}',
        headers={
            "authorization": f"Bearer {api.token('operator')}",
            "content-type": "application/json",
        },
    )
    assert (response.status_code, response.json()) == (400, error("invalid_request"))


def test_bodies_that_are_not_json_are_refused(api: Api) -> None:
    headers = {"authorization": f"Bearer {api.token('operator')}"}
    bad_json = api.client.post(
        "/api/v1/accounts", content=b"{", headers={**headers, "content-type": "application/json"}
    )
    assert (bad_json.status_code, bad_json.json()) == (400, error("invalid_request"))
    form = api.client.post("/api/v1/accounts", data={"name": "A"}, headers=headers)
    assert (form.status_code, form.json()) == (415, error("unsupported_media_type"))


@pytest.mark.parametrize(
    ("params", "param"),
    [({"limit": 0}, "limit"), ({"limit": "ten"}, "limit"), ({"color": "red"}, "color")],
)
def test_bad_queries_are_refused_by_field(api: Api, params: Any, param: str) -> None:
    status, answer = api.call("GET", "/accounts", api.token("operator"), params=params)
    assert (status, answer) == (400, error("invalid_request", param))


def test_unknown_routes_and_methods_answer_in_the_api_shape(api: Api) -> None:
    token = api.token("admin")
    assert api.call("GET", "/nothing", token) == (404, error("not_found"))
    assert api.call("DELETE", "/accounts", token) == (405, error("method_not_allowed"))
