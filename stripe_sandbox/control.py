"""The `/_sandbox/` control surface: clock, Dashboard actions, onboarding, deliveries, faults,
the log of requests received.

Every route takes a JSON body (or none) and answers JSON. They need no API key: the sandbox
only ever listens locally. See docs/sandbox.md for each route with an example.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from . import connect, money
from .accounts import complete_onboarding, live_account
from .errors import StripeError, invalid_request, unknown_parameter
from .faults import FIELDS as FAULT_TARGETS
from .faults import FaultSpecError
from .forms import get_int, require_str
from .payment_intents import CURRENCIES
from .refunds import dashboard_cancel, process_queue, refund_charge
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


async def dashboard_cancel_refund(sb: Sandbox, request: Request, body: Obj) -> Obj:
    _only(body, set())
    async with sb.lock:
        sb.tick()
        return dashboard_cancel(sb, request.path_params["id"])


async def top_up(sb: Sandbox, request: Request, body: Obj) -> Obj:
    """Add funds to the available balance, as a Dashboard top-up or a wire to Stripe would."""
    params = _as_params(body, {"amount", "currency"})
    amount = get_int(params, "amount", required=True)
    assert amount is not None
    if amount <= 0:
        raise invalid_request("Invalid positive integer", param="amount")
    currency = require_str(params, "currency").lower()
    if currency not in CURRENCIES:
        raise invalid_request(f"Invalid currency: {currency}.", param="currency")
    async with sb.lock:
        sb.tick()
        txn = money.add_transaction(
            sb, type_="topup", amount=amount, currency=currency, source=None, description="Top-up"
        )
        process_queue(sb)  # pays the refunds waiting for these funds now, not at the next tick
        return txn


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
    lists = connect.REQUIREMENT_LISTS
    _only(body, {*lists, "current_deadline", "disabled_reason", "errors", "future_requirements"})

    def read(given: Obj, *, future: bool = False) -> Obj:
        named = {name: connect.string_list(given, name) for name in lists}
        return connect.requirements(
            named["currently_due"],
            past_due=named["past_due"],
            eventually_due=named["eventually_due"],
            pending_verification=named["pending_verification"],
            current_deadline=connect.optional_timestamp(given, "current_deadline"),
            disabled_reason=None if future else connect.disabled_reason(given),
            errors=connect.requirement_errors(given),
        )

    due = read(body)
    future = body.get("future_requirements") or {}
    try:
        if not isinstance(future, dict):
            raise invalid_request("`future_requirements` must be an object.")
        _only(future, {*lists, "current_deadline", "errors"} - {"past_due"})
        # Future requirements never disable anything: Stripe only announces them.
        upcoming = read(future, future=True)
    except StripeError as exc:
        exc.param = "future_requirements" + (f"[{exc.param}]" if exc.param else "")
        raise
    deadline = due["current_deadline"]
    async with sb.lock:
        sb.tick()
        if deadline is not None and deadline <= sb.clock.timestamp():
            raise invalid_request(
                "`current_deadline` must be in the future: give `past_due` for requirements "
                "already late.",
                param="current_deadline",
            )
        account = live_account(sb, request.path_params["id"])
        before = copy.deepcopy(account)
        account["requirements"], account["future_requirements"] = due, upcoming
        connect.refresh(sb, account)
        connect.announce(sb, account, before)
        if deadline is not None and due["currently_due"] != due["past_due"]:
            connect.schedule_deadline(sb, account["id"], deadline)
        return account


async def capabilities(sb: Sandbox, request: Request, body: Obj) -> Obj:
    _only(body, {"capabilities"})
    async with sb.lock:
        sb.tick()
        account = live_account(sb, request.path_params["id"])
        statuses = connect.capability_statuses(account, body)
        before = copy.deepcopy(account)
        sb.private.capability_status.setdefault(account["id"], {}).update(statuses)
        connect.refresh(sb, account)
        connect.announce(sb, account, before)
        return account


async def payouts(sb: Sandbox, request: Request, body: Obj) -> Obj:
    _only(body, {"enabled"})
    enabled = body.get("enabled")
    if not isinstance(enabled, bool):
        raise invalid_request("`enabled` must be true or false.", param="enabled")
    async with sb.lock:
        sb.tick()
        account = live_account(sb, request.path_params["id"])
        before = copy.deepcopy(account)
        if enabled:
            sb.private.payouts_paused.discard(account["id"])
        else:
            sb.private.payouts_paused.add(account["id"])
        connect.refresh(sb, account)
        connect.announce(sb, account, before)
        return account


async def deauthorize(sb: Sandbox, request: Request, body: Obj) -> Obj:
    _only(body, set())
    async with sb.lock:
        sb.tick()
        account = live_account(sb, request.path_params["id"])
        event = connect.revoke(sb, account, "deauthorized")
        return {"account": account["id"], "deauthorized": True, "event": event["id"]}


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


async def requests(sb: Sandbox, request: Request, body: Obj) -> Obj:
    """The API requests received, oldest first, with their wall-clock arrival (`at`)."""
    return {"data": [entry.as_dict() for entry in sb.requests.entries()]}


async def clear_requests(sb: Sandbox, request: Request, body: Obj) -> Obj:
    sb.requests.clear()
    return {"data": []}


def _settings(sb: Sandbox) -> Obj:
    return {
        "async_capture": sb.settings.async_capture,
        "balance_transaction_delay": sb.settings.balance_transaction_delay,
        "exchange_rates": dict(sorted(sb.settings.exchange_rates.items())),
        "settlement_currency": money.SETTLEMENT_CURRENCY,
    }


def _rates(body: Obj) -> dict[str, float]:
    given = body.get("exchange_rates", {})
    if not isinstance(given, dict):
        raise invalid_request("`exchange_rates` must be an object.", param="exchange_rates")
    rates: dict[str, float] = {}
    for currency, rate in given.items():
        param = f"exchange_rates[{currency}]"
        if currency not in CURRENCIES or currency == money.SETTLEMENT_CURRENCY:
            raise invalid_request(
                f"No currency {currency!r} to convert to {money.SETTLEMENT_CURRENCY}: use one "
                f"of {', '.join(sorted(CURRENCIES - {money.SETTLEMENT_CURRENCY}))}.",
                param=param,
            )
        if not (
            isinstance(rate, int | float)
            and not isinstance(rate, bool)
            and math.isfinite(rate)
            and rate > 0
        ):
            raise invalid_request(f"`{param}` must be a positive number.", param=param)
        rates[currency] = float(rate)
    return rates


async def settings(sb: Sandbox, request: Request, body: Obj) -> Obj:
    """Read (GET) or change (POST) asynchronous capture and exchange rates; changes apply to
    charges and refunds made afterwards (a refund converts at the rate of its day)."""
    _only(body, {"async_capture", "balance_transaction_delay", "exchange_rates"})
    async_capture = body.get("async_capture")
    if async_capture is not None and not isinstance(async_capture, bool):
        raise invalid_request("`async_capture` must be true or false.", param="async_capture")
    delay = _seconds(body, "balance_transaction_delay")
    rates = _rates(body)
    async with sb.lock:
        sb.tick()
        if async_capture is not None:
            sb.settings.async_capture = async_capture
        if delay is not None:
            sb.settings.balance_transaction_delay = delay
        sb.settings.exchange_rates.update(rates)
        return _settings(sb)


def routes(sb: Sandbox) -> list[Route]:
    return [
        _route(sb, "/_sandbox/state", "GET", state),
        _route(sb, "/_sandbox/clock/advance", "POST", advance_clock),
        _route(sb, "/_sandbox/settings", "GET", settings),
        _route(sb, "/_sandbox/settings", "POST", settings),
        _route(sb, "/_sandbox/dashboard/refunds", "POST", dashboard_refund),
        _route(sb, "/_sandbox/dashboard/refunds/{id}/cancel", "POST", dashboard_cancel_refund),
        _route(sb, "/_sandbox/dashboard/transfers/{id}/reversals", "POST", dashboard_reversal),
        _route(sb, "/_sandbox/balance/top_up", "POST", top_up),
        _route(sb, "/_sandbox/accounts/{id}/onboarding", "POST", finish_onboarding),
        _route(sb, "/_sandbox/accounts/{id}/requirements", "POST", requirements),
        _route(sb, "/_sandbox/accounts/{id}/capabilities", "POST", capabilities),
        _route(sb, "/_sandbox/accounts/{id}/payouts", "POST", payouts),
        _route(sb, "/_sandbox/accounts/{id}/deauthorize", "POST", deauthorize),
        _route(sb, "/_sandbox/deliveries/flush", "POST", flush),
        _route(sb, "/_sandbox/deliveries", "GET", deliveries),
        _route(sb, "/_sandbox/faults/{target:str}", "POST", arm_fault),
        _route(sb, "/_sandbox/faults", "GET", list_faults),
        _route(sb, "/_sandbox/faults", "DELETE", clear_faults),
        _route(sb, "/_sandbox/requests", "GET", requests),
        _route(sb, "/_sandbox/requests", "DELETE", clear_requests),
    ]
