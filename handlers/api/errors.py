"""Every API error has one shape: `{"error": {"code", "message", "param"}}`, a fitting 4xx
(5xx only for what is ours or Stripe's), and a stable code a client can branch on."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from reconciler.errors import ReconcilerError

# The core's errors, as the API answers them.
STATUS_OF_CODE = {
    "invalid_request": 400,
    "invalid_amount": 400,
    "unknown_currency": 400,
    "unauthenticated": 401,
    "forbidden": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "illegal_transition": 409,
    "idempotency_conflict": 409,
    "connect_not_ready": 409,
    "account_cannot_receive": 409,
    "insufficient_merchant_balance": 409,
    "insufficient_platform_balance": 409,
    "refund_exceeds_payment": 409,
    "not_refundable": 409,
    "replay_refused": 409,
    "unsupported_media_type": 415,
    "stripe_unavailable": 503,
    "database_unavailable": 503,
}


class ApiError(Exception):
    def __init__(self, code: str, message: str, *, param: str | None = None, status: int = 0):
        super().__init__(message)
        self.code, self.message, self.param = code, message, param
        self.status = status or STATUS_OF_CODE.get(code, 400)

    def response(self) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if self.status == 401 else None
        return JSONResponse(
            {"error": {"code": self.code, "message": self.message, "param": self.param}},
            status_code=self.status,
            headers=headers,
        )


def from_core(error: ReconcilerError) -> ApiError:
    """A refusal of the core (a balance, a transition), answered with its own code."""
    return ApiError(error.code, str(error), param=getattr(error, "param", None))


def _param(location: tuple[int | str, ...]) -> str | None:
    parts = [str(part) for part in location]
    return ".".join(parts) or None


def from_validation(error: ValidationError, *, where: str) -> ApiError:
    """The first thing wrong with a body or a query, named by its field."""
    first: Any = error.errors(include_url=False)[0]
    param = _param(tuple(first.get("loc") or ()))
    kind = first.get("type", "")
    if kind == "extra_forbidden":
        message = f"unknown parameter in the {where}"
    elif kind == "missing":
        message = f"missing required parameter in the {where}"
    else:
        message = f"invalid value in the {where}: {first.get('msg', 'invalid')}"
    return ApiError("invalid_request", f"{message}: {param}" if param else message, param=param)


async def not_found(request: Request, exc: Exception) -> Response:
    """An unknown path: the API's error shape under /api, plain text elsewhere."""
    if not request.url.path.startswith("/api/"):
        return PlainTextResponse("Not Found", status_code=404)
    return ApiError("not_found", f"no route {request.url.path}").response()


async def method_not_allowed(request: Request, exc: Exception) -> Response:
    if not request.url.path.startswith("/api/"):
        return PlainTextResponse("Method Not Allowed", status_code=405)
    return ApiError("method_not_allowed", f"{request.method} is not allowed here").response()
