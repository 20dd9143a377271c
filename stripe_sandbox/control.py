"""The `/_sandbox/` control surface: clock, Dashboard actions, onboarding, deliveries, faults.

Every route takes a JSON body (or none) and answers JSON. They need no API key: the sandbox
only ever listens locally. See docs/sandbox.md for each route with an example.
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from . import money
from .accounts import announce, complete_onboarding, live_account, set_requirements
from .errors import StripeError, invalid_request, unknown_parameter
from .faults import FIELDS as FAULT_TARGETS
from .faults import FaultSpecError
from .refunds import refund_charge
from .state import Sandbox
from .transfers import reverse_transfer

Obj = dict[str, Any]
Action = Callable[[Sandbox, Request, Obj], Awaitable[Obj]]


async def _body(request: Request) -> Obj:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise invalid_request(f"The body must be JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise invalid_request("The body must be a JSON object.")
    return body


def _as_params(body: Obj, allowed: set[str]) -> Obj:
    """Control bodies are JSON; the shared resource code expects Stripe's string params."""
    _only(body, allowed)
    return {k: _form_value(v) for k, v in body.items() if v is not None}


def _form_value(value: Any) -> Any:
    # As a form would carry them, so `true` is no amount and `5.5` no integer.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


def _only(body: Obj, allowed: set[str]) -> None:
    """Refuse keys a route does not take, as the API does, rather than ignore them."""
    for name in body:
        if name not in allowed:
            raise unknown_parameter(name)


def _seconds(body: Obj, name: str) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if not (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    ):
        raise invalid_request(f"`{name}` must be a non-negative number.", param=name)
    return float(value)


def _route(sb: Sandbox, path: str, method: str, action: Action) -> Route:
    async def endpoint(request: Request) -> Response:
        try:
            body = await _body(request)
            return JSONResponse(await action(sb, request, body))
        except StripeError as exc:
            return JSONResponse(exc.body(), status_code=exc.status)
        except FaultSpecError as exc:
            return JSONResponse(invalid_request(str(exc), param=exc.param).body(), status_code=400)

    return Route(path, endpoint, methods=[method])


def _summary(sb: Sandbox) -> Obj:
    pending = [d for d in sb.deliveries.items if d.status == "pending"]
    return {
        "now": sb.clock.now(),
        "frozen": sb.clock.frozen,
        "seed": sb.seed,
        "balance": money.balance_object(sb),
        "deliveries_pending": len(pending),
        "next_job_due": sb.next_job_due(),
    }


async def state(sb: Sandbox, request: Request, body: Obj) -> Obj:
    async with sb.lock:
        sb.tick()
        return _summary(sb)


async def advance_clock(sb: Sandbox, request: Request, body: Obj) -> Obj:
    _only(body, {"seconds", "to"})
    seconds, to = _seconds(body, "seconds"), _seconds(body, "to")
    if (seconds is None) == (to is None):
        raise invalid_request("Give exactly one of `seconds` or `to`.", param="seconds")
    async with sb.lock:
        if seconds is not None:
            sb.clock.advance(seconds)
        elif to is not None:
            sb.clock.advance_to(to)
        sb.tick()
        return _summary(sb)


async def dashboard_refund(sb: Sandbox, request: Request, body: Obj) -> Obj:
    params = _as_params(body, {"amount", "charge", "metadata", "payment_intent", "reason"})
    async with sb.lock:
        sb.tick()
        return refund_charge(sb, params)


async def dashboard_reversal(sb: Sandbox, request: Request, body: Obj) -> Obj:
    params = _as_params(body, {"amount", "description", "metadata"})
    async with sb.lock:
        sb.tick()
        return reverse_transfer(sb, request.path_params["id"], params)


async def finish_onboarding(sb: Sandbox, request: Request, body: Obj) -> Obj:
    _only(body, set())
    async with sb.lock:
        sb.tick()
        account = live_account(sb, request.path_params["id"])
        complete_onboarding(sb, account)
        return account


async def requirements(sb: Sandbox, request: Request, body: Obj) -> Obj:
    _only(body, {"currently_due", "past_due", "disabled_reason"})
    currently_due = body.get("currently_due", [])
    past_due = body.get("past_due")
    for name, value in (("currently_due", currently_due), ("past_due", past_due)):
        if value is not None and not (
            isinstance(value, list) and all(isinstance(v, str) for v in value)
        ):
            raise invalid_request(f"`{name}` must be a list of strings.", param=name)
    disabled_reason = body.get("disabled_reason")
    if disabled_reason is not None and not isinstance(disabled_reason, str):
        raise invalid_request("`disabled_reason` must be a string.", param="disabled_reason")
    async with sb.lock:
        sb.tick()
        account = live_account(sb, request.path_params["id"])
        before = json.loads(json.dumps(account))
        set_requirements(sb, account, currently_due, past_due, disabled_reason)
        announce(sb, account, before)
        return account


async def flush(sb: Sandbox, request: Request, body: Obj) -> Obj:
    _only(body, {"all"})
    everything = body.get("all", False)
    if not isinstance(everything, bool):
        raise invalid_request("`all` must be true or false.", param="all")
    async with sb.lock:
        sb.tick()
    attempted = await sb.deliveries.deliver_due(everything=everything, release_held=True)
    pending = [d for d in sb.deliveries.items if d.status == "pending"]
    return {"attempted": attempted, "pending": len(pending)}


async def deliveries(sb: Sandbox, request: Request, body: Obj) -> Obj:
    return {"data": [d.as_dict() for d in sb.deliveries.items]}


async def arm_fault(sb: Sandbox, request: Request, body: Obj) -> Obj:
    target = request.path_params["target"]
    if target not in FAULT_TARGETS:
        raise invalid_request(
            f"No fault target {target!r}: use deliveries or api.", param="target", status=404
        )
    async with sb.lock:
        return sb.faults.arm(target, body).as_dict()


async def list_faults(sb: Sandbox, request: Request, body: Obj) -> Obj:
    return {
        "deliveries": [f.as_dict() for f in sb.faults.delivery],
        "api": [f.as_dict() for f in sb.faults.api],
    }


async def clear_faults(sb: Sandbox, request: Request, body: Obj) -> Obj:
    sb.faults.clear()
    return {"deliveries": [], "api": []}


def routes(sb: Sandbox) -> list[Route]:
    return [
        _route(sb, "/_sandbox/state", "GET", state),
        _route(sb, "/_sandbox/clock/advance", "POST", advance_clock),
        _route(sb, "/_sandbox/dashboard/refunds", "POST", dashboard_refund),
        _route(sb, "/_sandbox/dashboard/transfers/{id}/reversals", "POST", dashboard_reversal),
        _route(sb, "/_sandbox/accounts/{id}/onboarding", "POST", finish_onboarding),
        _route(sb, "/_sandbox/accounts/{id}/requirements", "POST", requirements),
        _route(sb, "/_sandbox/deliveries/flush", "POST", flush),
        _route(sb, "/_sandbox/deliveries", "GET", deliveries),
        _route(sb, "/_sandbox/faults/{target:str}", "POST", arm_fault),
        _route(sb, "/_sandbox/faults", "GET", list_faults),
        _route(sb, "/_sandbox/faults", "DELETE", clear_faults),
    ]
