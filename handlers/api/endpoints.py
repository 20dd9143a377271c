"""One declaration per API route: its method and path, who may call it, the models of its
query, body and answer, and the function that serves it. The Starlette routes and the
OpenAPI document are both made from these declarations, so they cannot disagree."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from handlers._runtime import runtime_of
from handlers.api.auth import authenticate_request
from handlers.api.errors import ApiError, from_core, from_validation
from reconciler.errors import ReconcilerError
from reconciler.gateway import GatewayError
from reconciler.runtime import Runtime
from reconciler.tokens import Principal

log = logging.getLogger("reconciler.api")

STAFF = frozenset({"admin", "operator"})
EVERYONE = frozenset({"admin", "operator", "merchant"})
MAX_BODY = 64 * 1024
# Ids are 64-bit: anything larger names nothing (and the database could not be asked).
MAX_ID = 2**63 - 1


@dataclass(frozen=True)
class Call:
    """One authenticated call, its inputs checked against the route's models."""

    request: Request
    principal: Principal
    runtime: Runtime
    path: Mapping[str, Any]
    query: Any = None
    body: Any = None


Handler = Callable[[Call], Awaitable[BaseModel | tuple[int, BaseModel]]]


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # relative to /api/v1, OpenAPI style: /accounts/{account_id}
    handler: Handler
    summary: str
    response: type[BaseModel]
    roles: frozenset[str] = EVERYONE
    status: int = 200
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    path_params: Mapping[str, type] = field(default_factory=dict)
    errors: tuple[str, ...] = ()  # the codes it may answer, besides the common ones
    # Whether it takes an `Idempotency-Key` header: "required", "optional" or None.
    idempotency_key: str | None = None

    @property
    def operation_id(self) -> str:
        return self.handler.__name__

    def route(self, prefix: str) -> Route:
        starlette_path = self.path
        for name, kind in self.path_params.items():
            converter = "int" if kind is int else "str"
            starlette_path = starlette_path.replace(f"{{{name}}}", f"{{{name}:{converter}}}")

        async def endpoint(request: Request) -> Response:
            return await self._serve(request)

        endpoint.__name__ = self.operation_id
        return Route(prefix + starlette_path, endpoint, methods=[self.method])

    async def _serve(self, request: Request) -> Response:
        try:
            runtime = runtime_of(request)
            principal = await authenticate_request(request, runtime.database)
            if principal.role not in self.roles:
                raise ApiError("forbidden", f"a {principal.role} token may not call this route")
            _check_ids(request.path_params)
            call = Call(
                request=request,
                principal=principal,
                runtime=runtime,
                path=request.path_params,
                query=self._query(request),
                body=await self._body(request),
            )
            answer = await self.handler(call)
        except ApiError as error:
            return error.response()
        except ReconcilerError as error:
            return from_core(error).response()
        except GatewayError as error:
            if error.retryable or error.http_status is None or error.http_status >= 500:
                log.warning("stripe unavailable serving %s %s: %s", self.method, self.path, error)
                return ApiError("stripe_unavailable", "Stripe did not answer; try again").response()
            log.error("stripe refused serving %s %s: %s", self.method, self.path, error)
            return ApiError("stripe_error", str(error), status=502).response()
        except (SQLAlchemyError, OSError) as error:
            log.error("database unavailable serving %s %s: %r", self.method, self.path, error)
            return ApiError("database_unavailable", "the database is unavailable").response()
        status, model = answer if isinstance(answer, tuple) else (self.status, answer)
        return JSONResponse(model.model_dump(mode="json"), status_code=status)

    def _query(self, request: Request) -> BaseModel | None:
        if self.query is None:
            if request.query_params:
                name = next(iter(request.query_params))
                raise ApiError("invalid_request", f"unknown parameter: {name}", param=name)
            return None
        try:
            return self.query.model_validate(dict(request.query_params))
        except ValidationError as error:
            raise from_validation(error, where="query") from None

    async def _body(self, request: Request) -> BaseModel | None:
        if self.body is None:
            return None
        raw = await request.body()
        if len(raw) > MAX_BODY:
            raise ApiError("invalid_request", f"the body is over {MAX_BODY} bytes", status=413)
        if not raw.strip():
            raw = b"{}"
        elif request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            raise ApiError("unsupported_media_type", "send the body as application/json")
        try:
            return self.body.model_validate_json(raw)
        except ValidationError as error:
            if error.errors(include_url=False)[0].get("type") == "json_invalid":
                raise ApiError("invalid_request", "the body is not valid JSON") from None
            raise from_validation(error, where="body") from None


def _check_ids(path: Mapping[str, Any]) -> None:
    for name, value in path.items():
        if isinstance(value, int) and not 1 <= value <= MAX_ID:
            raise ApiError("not_found", f"no such {name.removesuffix('_id')}", param=name)
