"""Who may call the operator routes (reconcile runs, discrepancies, events): operators and
admins; a merchant's token is forbidden (403), no token is unauthenticated (401)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fake_reconciler import FakeReconciler, install
from tests.handlers.api.conftest import Api

ROUTES: list[tuple[str, str, Any]] = [
    ("POST", "/reconcile", {"dry_run": True}),
    ("GET", "/reconcile/runs", None),
    ("GET", "/reconcile/runs/1", None),
    ("GET", "/discrepancies", None),
    ("GET", "/discrepancies/1", None),
    ("POST", "/discrepancies/1/resolve", {"note": "attributed by hand"}),
    ("GET", "/events", None),
    ("GET", "/events/evt_1", None),
    ("POST", "/events/evt_1/replay", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_only_staff_may_call_the_operator_routes(
    api: Api, method: str, path: str, body: Any
) -> None:
    engine = install(api.runtime, FakeReconciler())
    merchant = api.token("merchant", api.account(api.token("admin")))
    status, refused = api.call(method, path, merchant, body)
    assert (status, refused["error"]["code"]) == (403, "forbidden")
    status, refused = api.call(method, path, None, body)
    assert (status, refused["error"]["code"]) == (401, "unauthenticated")
    assert engine.started == []
    for role in ("operator", "admin"):
        status, answer = api.call(method, path, api.token(role), body)
        # Allowed: the route answers (an empty database has no run 1: 404 is an answer).
        assert status in (200, 202, 404), (role, answer)
