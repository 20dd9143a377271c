"""Every API route: refused without a valid token, and to the roles it does not admit."""

from __future__ import annotations

import pytest

from handlers.api.endpoints import Endpoint
from handlers.api.routes import ENDPOINTS
from tests.handlers.api.conftest import Api

ROLES = ("admin", "operator", "merchant")


def concrete(endpoint: Endpoint, account: int) -> str:
    path = endpoint.path
    for name in endpoint.path_params:
        path = path.replace(f"{{{name}}}", str(account))
    return path


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: f"{e.method} {e.path}")
def test_every_route_wants_a_valid_token(api: Api, endpoint: Endpoint) -> None:
    operator = api.token("operator")
    path = concrete(endpoint, api.account(operator))
    revoked = api.token("admin")

    async def revoke() -> None:
        from reconciler.tokens import authenticate, revoke_token
        from reconciler.types import utcnow

        async with api.runtime.database.write() as conn:
            principal = await authenticate(conn, revoked)
            assert principal is not None
            await revoke_token(conn, principal.token_id, now=utcnow())

    api.client.portal.call(revoke)  # type: ignore[union-attr]
    for token in (None, "icpay_not_a_token", revoked, operator[:-1]):
        status, body = api.call(endpoint.method, path, token)
        assert status == 401 and body["error"]["code"] == "unauthenticated", (token, body)
    response = api.client.request(
        endpoint.method, "/api/v1" + path, headers={"authorization": f"Basic {operator}"}
    )
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: f"{e.method} {e.path}")
@pytest.mark.parametrize("role", ROLES)
def test_each_role_is_admitted_or_refused_as_declared(
    api: Api, endpoint: Endpoint, role: str
) -> None:
    account = api.account(api.token("operator"))
    token = api.token(role, account if role == "merchant" else None)
    status, body = api.call(endpoint.method, concrete(endpoint, account), token)
    if role in endpoint.roles:
        assert status != 403 and status < 500, body
    else:
        assert (status, body["error"]["code"]) == (403, "forbidden")
