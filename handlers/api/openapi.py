"""The OpenAPI 3.1 document, made from the endpoint declarations and their pydantic models:
the routes and the document are one source."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from handlers.api.endpoints import MAX_ID, Endpoint
from handlers.api.errors import STATUS_OF_CODE
from handlers.api.models import ErrorBody

REF = "#/components/schemas/{model}"
COMMON_ERRORS = ("invalid_request", "unauthenticated", "forbidden", "database_unavailable")


def _parameters(endpoint: Endpoint) -> list[dict[str, Any]]:
    parameters: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": (
                {"type": "integer", "minimum": 1, "maximum": MAX_ID}
                if kind is int
                else {"type": "string"}
            ),
        }
        for name, kind in endpoint.path_params.items()
    ]
    if endpoint.idempotency_key is not None:
        parameters.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": endpoint.idempotency_key == "required",
                "description": "one per request, the same to retry it; scoped to the merchant "
                "whose money it moves (on staff routes that move none, to the token)",
                "schema": {"type": "string", "minLength": 1, "maxLength": 255},
            }
        )
    if endpoint.query is not None:
        schema = endpoint.query.model_json_schema(ref_template=REF)
        required = set(schema.get("required", []))
        for name, prop in schema.get("properties", {}).items():
            parameters.append(
                {"name": name, "in": "query", "required": name in required, "schema": prop}
            )
    return parameters


Refs = Mapping[tuple[Any, JsonSchemaMode], dict[str, Any]]


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _errors(endpoint: Endpoint, refs: Refs) -> dict[str, Any]:
    by_status: dict[int, list[str]] = {}
    codes = [*COMMON_ERRORS, *endpoint.errors]
    if endpoint.path_params:
        codes.append("not_found")
    for code in codes:
        by_status.setdefault(STATUS_OF_CODE.get(code, 400), []).append(code)
    error = refs[(ErrorBody, "serialization")]
    return {
        str(status): {"description": ", ".join(found), "content": _json(error)}
        for status, found in sorted(by_status.items())
    }


def openapi_document(endpoints: Sequence[Endpoint], *, prefix: str) -> dict[str, Any]:
    # Bodies as they are read, answers as they are written.
    wanted: set[tuple[type[BaseModel], JsonSchemaMode]] = {(ErrorBody, "serialization")}
    for endpoint in endpoints:
        wanted.add((endpoint.response, "serialization"))
        if endpoint.body is not None:
            wanted.add((endpoint.body, "validation"))
    refs, schemas = models_json_schema(sorted(wanted, key=repr), ref_template=REF)
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in endpoints:
        operation: dict[str, Any] = {
            "operationId": endpoint.operation_id,
            "summary": endpoint.summary,
            "security": [{"bearer": []}],
            "x-roles": sorted(endpoint.roles),
            "parameters": _parameters(endpoint),
            "responses": {
                str(endpoint.status): {
                    "description": endpoint.summary,
                    "content": _json(refs[(endpoint.response, "serialization")]),
                },
                **_errors(endpoint, refs),
            },
        }
        if endpoint.body is not None:
            body = refs[(endpoint.body, "validation")]
            operation["requestBody"] = {"required": True, "content": _json(body)}
        paths.setdefault(prefix + endpoint.path, {})[endpoint.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "ICPay Stripe reconciler", "version": "1"},
        "paths": paths,
        "components": {
            "schemas": schemas.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
