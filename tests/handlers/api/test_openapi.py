"""The OpenAPI document: valid 3.1, served, and naming every route the app serves."""

from __future__ import annotations

from openapi_spec_validator import validate

from handlers.api.routes import ENDPOINTS
from tests.handlers.api.conftest import Api


def test_the_served_document_is_valid_and_complete(api: Api) -> None:
    response = api.client.get("/api/v1/openapi.json")  # public: it holds no data
    assert response.status_code == 200
    document = response.json()
    validate(document)
    assert document["openapi"].startswith("3.1")
    served = {(e.method.lower(), "/api/v1" + e.path) for e in ENDPOINTS}
    described = {(method, path) for path, item in document["paths"].items() for method in item}
    assert described == served
    create = document["paths"]["/api/v1/accounts"]["post"]
    body = create["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = document["components"]["schemas"][body.rsplit("/", 1)[1]]
    assert schema["additionalProperties"] is False and set(schema["required"]) == {"name", "email"}


def test_money_moving_routes_document_their_idempotency_key() -> None:
    from handlers.api.routes import DOCUMENT

    def header(path: str) -> dict[str, object]:
        [found] = [p for p in DOCUMENT["paths"][path]["post"]["parameters"] if p["in"] == "header"]
        return found

    assert header("/api/v1/payouts")["required"] is True
    assert header("/api/v1/payments/{payment_id}/refunds")["required"] is True
    assert header("/api/v1/payments")["required"] is False
    assert header("/api/v1/reconcile")["required"] is False
