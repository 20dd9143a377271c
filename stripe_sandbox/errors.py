"""Stripe-shaped errors: an exception the handlers raise and the JSON body Stripe sends."""

from __future__ import annotations

import math
from typing import Any

DOC_BASE = "https://stripe.com/docs/error-codes/"


class StripeError(Exception):
    """An error answered to the client exactly as Stripe would shape it."""

    def __init__(
        self,
        status: int,
        type_: str,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = type_
        self.message = message
        self.code = code
        self.param = param
        self.extra = extra or {}
        self.headers = headers or {}

    def body(self, request_id: str | None = None) -> dict[str, Any]:
        error: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.code is not None:
            error["code"] = self.code
            error["doc_url"] = DOC_BASE + self.code.replace("_", "-")
        if self.param is not None:
            error["param"] = self.param
        if request_id is not None:
            error["request_log_url"] = f"https://dashboard.stripe.com/test/logs/{request_id}?t=0"
        error.update(self.extra)
        return {"error": error}


def invalid_request(
    message: str, *, param: str | None = None, code: str | None = None, status: int = 400
) -> StripeError:
    return StripeError(status, "invalid_request_error", message, code=code, param=param)


def missing(kind: str, object_id: str, *, param: str | None = None) -> StripeError:
    """`No such <kind>`: 404 for an id in the path, 400 for one named by a parameter."""
    return StripeError(
        404 if param is None else 400,
        "invalid_request_error",
        f"No such {kind}: '{object_id}'",
        code="resource_missing",
        param=param or "id",
    )


def unknown_parameter(name: str) -> StripeError:
    return invalid_request(
        f"Received unknown parameter: {name}", param=name, code="parameter_unknown"
    )


def missing_parameter(name: str) -> StripeError:
    return invalid_request(f"Missing required param: {name}.", param=name, code="parameter_missing")


def authentication(message: str) -> StripeError:
    return StripeError(401, "invalid_request_error", message)


def rate_limited(retry_after: float | None = None) -> StripeError:
    """Stripe's 429. Its docs promise no `Retry-After` (they advise backing off with jitter),
    so the header is sent only when a test asks for one (`retry_after` seconds, whole as
    HTTP's delay-seconds are)."""
    headers = {} if retry_after is None else {"Retry-After": str(math.ceil(retry_after))}
    return StripeError(
        429,
        "invalid_request_error",
        "Request rate limit exceeded. Learn more about rate limits here "
        "https://stripe.com/docs/rate-limits.",
        code="rate_limit",
        headers=headers,
    )


def api_error() -> StripeError:
    return StripeError(
        500,
        "api_error",
        "An unknown error occurred. Please retry the request.",
        headers={"Stripe-Should-Retry": "true"},
    )
