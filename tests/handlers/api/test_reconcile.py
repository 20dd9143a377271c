"""`POST /api/v1/reconcile` and the runs it queues, against the TEST FAKE engine
(`tests/fake_reconciler.py`): queueing, the engine told to start, the record of a run, bad
scopes, and a retried POST queueing once."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fake_reconciler import FakeReconciler, Planted, install
from tests.handlers.api.conftest import Api


@pytest.fixture
def engine(api: Api) -> FakeReconciler:
    return install(api.runtime, FakeReconciler())


def reconcile(
    api: Api, token: str, body: dict[str, Any], key: str | None = None
) -> tuple[int, Any]:
    headers = {"authorization": f"Bearer {token}"}
    if key is not None:
        headers["idempotency-key"] = key
    response = api.client.post("/api/v1/reconcile", json=body, headers=headers)
    return response.status_code, response.json()


def test_a_run_is_queued_started_and_recorded(api: Api, engine: FakeReconciler) -> None:
    operator = api.token("operator")
    account = api.account(operator)
    status, queued = reconcile(api, operator, {"scope": {"account_id": account}, "dry_run": True})
    assert (status, queued["status"]) == (202, "queued")
    assert engine.started == [queued["id"]]

    status, run = api.call("GET", f"/reconcile/runs/{queued['id']}", operator)
    assert status == 200, run
    assert run["scope"] == {
        "object": None,
        "account_id": account,
        "since": None,
        "until": None,
        "description": f"merchant {account}",
    }
    assert (run["dry_run"], run["started_by"]) == (True, "operator:operator")
    assert run["status"] == "queued"
    assert (run["examined"], run["healed"], run["found"], run["open_by_kind"]) == (0, 0, 0, {})
    assert run["started_at"] is None and run["duration_ms"] is None

    engine.examined_per_phase, engine.healed = 5, 1
    engine.finds = [
        Planted("unattributed_object", "transfer", "tr_outside", account),
        Planted("amount_mismatch", "payment_intent", "pi_1", account),
        Planted("amount_mismatch", "payment_intent", "pi_2", account),
    ]
    api.run(lambda: engine.run(queued["id"]))
    status, run = api.call("GET", f"/reconcile/runs/{queued['id']}", operator)
    assert (run["status"], run["examined"], run["healed"], run["found"]) == ("succeeded", 10, 1, 3)
    assert run["open_by_kind"] == {"amount_mismatch": 2, "unattributed_object": 1}
    assert run["duration_ms"] == 42 and run["finished_at"] is not None and run["error"] is None


def test_everything_is_the_default_scope_and_heal_the_default_mode(
    api: Api, engine: FakeReconciler
) -> None:
    admin = api.token("admin")
    status, queued = reconcile(api, admin, {})
    assert status == 202
    _, run = api.call("GET", f"/reconcile/runs/{queued['id']}", admin)
    assert (run["scope"]["description"], run["dry_run"], run["started_by"]) == (
        "everything",
        False,
        "admin:admin",
    )


def test_runs_are_listed_newest_first_paged_and_by_status(api: Api, engine: FakeReconciler) -> None:
    operator = api.token("operator")
    ids = [reconcile(api, operator, {"dry_run": True})[1]["id"] for _ in range(3)]
    api.run(lambda: engine.run(ids[1]))
    status, page = api.call("GET", "/reconcile/runs", operator, params={"limit": 2})
    assert status == 200
    assert ([run["id"] for run in page["data"]], page["has_more"]) == ([ids[2], ids[1]], True)
    _, rest = api.call(
        "GET", "/reconcile/runs", operator, params={"limit": 2, "starting_after": ids[1]}
    )
    assert ([run["id"] for run in rest["data"]], rest["has_more"]) == ([ids[0]], False)
    _, done = api.call("GET", "/reconcile/runs", operator, params={"status": "succeeded"})
    assert [run["id"] for run in done["data"]] == [ids[1]]
    status, refused = api.call("GET", "/reconcile/runs", operator, params={"status": "done"})
    assert (status, refused["error"]["param"]) == (400, "status")


@pytest.mark.parametrize(
    ("scope", "param"),
    [
        ({"object": "xx_123"}, "scope.object"),
        ({"object": "pi_1", "account_id": 1}, "scope.object"),
        ({"since": "2026-11-02T00:00:00Z", "until": "2026-11-01T00:00:00Z"}, "scope.until"),
        ({"since": "2026-11-01T00:00:00"}, "scope.since"),
        ({"since": "yesterday"}, "scope.since"),
        ({"merchant": 1}, "scope.merchant"),
        ({"account_id": "1"}, "scope.account_id"),
    ],
)
def test_a_bad_scope_is_refused_naming_the_field(
    api: Api, engine: FakeReconciler, scope: dict[str, Any], param: str
) -> None:
    status, refused = reconcile(api, api.token("operator"), {"scope": scope})
    assert (status, refused["error"]["code"], refused["error"]["param"]) == (
        400,
        "invalid_request",
        param,
    )
    assert engine.started == []


def test_an_unknown_merchant_or_run_is_not_found(api: Api, engine: FakeReconciler) -> None:
    operator = api.token("operator")
    status, refused = reconcile(api, operator, {"scope": {"account_id": 999}})
    assert (status, refused["error"]["code"], refused["error"]["param"]) == (
        404,
        "not_found",
        "scope.account_id",
    )
    status, refused = api.call("GET", "/reconcile/runs/999", operator)
    assert (status, refused["error"]["param"]) == (404, "run_id")
    assert engine.started == []


def test_a_retried_post_queues_one_run(api: Api, engine: FakeReconciler) -> None:
    operator = api.token("operator")
    body = {"scope": {"object": "pi_123"}, "dry_run": True}
    first = reconcile(api, operator, body, key="nightly-2026-12-04")
    again = reconcile(api, operator, body, key="nightly-2026-12-04")
    assert first == again and first[0] == 202
    assert engine.started == [first[1]["id"]]
    status, refused = reconcile(api, operator, {"dry_run": False}, key="nightly-2026-12-04")
    assert (status, refused["error"]["code"]) == (409, "idempotency_conflict")
    # Keys are the token's: another operator's "nightly" is another run.
    other = reconcile(api, api.token("operator"), body, key="nightly-2026-12-04")
    assert other[1]["id"] != first[1]["id"]
    _, listed = api.call("GET", "/reconcile/runs", operator)
    assert len(listed["data"]) == 2


def test_an_engine_that_cannot_start_leaves_the_run_queued(
    api: Api, engine: FakeReconciler
) -> None:
    def broken(run_id: int) -> None:
        raise RuntimeError("engine down")

    engine.start = broken  # type: ignore[method-assign]
    status, queued = reconcile(api, api.token("operator"), {})
    assert (status, queued["status"]) == (202, "queued")
