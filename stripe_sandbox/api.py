"""The request pipeline every `/v1` call goes through.

Authenticate, decode the form, apply injected API faults, honour `Idempotency-Key`, then run
the handler under the sandbox lock with the clock brought up to date, and answer with
Stripe's headers and error bodies.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from .connect import check_access
from .errors import StripeError, api_error, authentication, invalid_request, rate_limited
from .expandable import check_expand
from .faults import Fault
from .forms import Params, decode, fingerprint, get_list
from .idempotency import UNSAVED_CODES
from .settings import API_VERSION
from .state import RequestContext, Sandbox
from .store import expand

Obj = dict[str, Any]

logger = logging.getLogger("stripe_sandbox")


@dataclass
class Call:
    """One decoded API request as a handler sees it."""

    params: Params
    path: dict[str, str]
    method: str
    base_url: str
    api_key: str
    # The Stripe-Account (or Stripe-Context) header: whose events to read, or which account
    # reads itself (the only uses the sandbox supports).
    account: str | None = None


Handler = Callable[[Sandbox, Call], "Obj | tuple[int, Obj]"]


def authenticate(request: Request) -> str:
    header = request.headers.get("authorization", "")
    key = ""
    if header.startswith("Bearer "):
        key = header[len("Bearer ") :].strip()
    elif header.startswith("Basic "):
        try:
            key = base64.b64decode(header[len("Basic ") :]).decode().split(":", 1)[0]
        except (binascii.Error, UnicodeDecodeError):
            key = ""
    if not key:
        raise authentication(
            "You did not provide an API key. You need to provide your API key in the "
            "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
            "YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details, "
            "or we can help at https://support.stripe.com/."
        )
    if not key.startswith(("sk_test_", "rk_test_")) or len(key) < 12:
        shown = key[:8] + "*" * max(0, len(key) - 12) + key[-4:]
        raise authentication(f"Invalid API Key provided: {shown}")
    return key


def json_bytes(body: Obj) -> bytes:
    return json.dumps(body, indent=2).encode()


def _respond(status: int, payload: bytes, headers: dict[str, str]) -> Response:
    return Response(payload, status_code=status, headers=headers, media_type="application/json")


def api_endpoint(
    sb: Sandbox, handler: Handler, kind: str
) -> Callable[[Request], Awaitable[Response]]:
    """Wrap `handler`, which answers with a `kind` object, in Stripe's request semantics."""

    async def endpoint(request: Request) -> Response:
        logged = sb.requests.record(request.method, request.url.path)
        response = await answer(request)
        logged.status = response.status_code
        return response

    async def answer(request: Request) -> Response:
        request_id = sb.ids.new("req", 14)
        headers = {
            "Request-Id": request_id,
            "Stripe-Version": request.headers.get("stripe-version", API_VERSION),
        }
        method = request.method
        path = request.url.path
        key: str | None = None
        api_key = ""
        try:
            api_key = authenticate(request)
            # Stripe-Context supersedes Stripe-Account; for a connected account both name it.
            account = (
                request.headers.get("stripe-account")
                or request.headers.get("stripe-context")
                or None
            )
            if account:
                check_access(sb, account, api_key)  # a lost account: 403, whatever the call
            if account and not _as_account_allowed(method, path, account):
                raise invalid_request(
                    "The sandbox keeps no connected-account context: the Stripe-Account "
                    "and Stripe-Context headers are supported only for reading a connected "
                    "account's events and the account itself."
                )
            params = await _params(request)
            fault = sb.faults.for_api(method, path)
            if fault is not None and not fault.execute:
                await _fault_before(sb, fault)
            key = request.headers.get("idempotency-key") if method == "POST" else None
            if key:
                headers["Idempotency-Key"] = key
                saved = sb.idempotency.begin(api_key, key, f"{method} {path} {fingerprint(params)}")
                if saved is not None:
                    return _respond(
                        saved.status, saved.body, {**headers, "Idempotent-Replayed": "true"}
                    )
            call = Call(
                params, dict(request.path_params), method, str(request.base_url), api_key, account
            )
            try:
                status, payload = await _run(sb, handler, kind, call, request_id, key)
            except StripeError as exc:
                status, payload = exc.status, json_bytes(exc.body(request_id))
                headers.update(exc.headers)
                if key and (exc.code in UNSAVED_CODES):
                    sb.idempotency.forget(api_key, key)
                    key = None
            if key:
                sb.idempotency.finish(api_key, key, status, payload)
            if fault is not None and fault.execute:
                await _fault_after(sb, fault)
            return _respond(status, payload, headers)
        except StripeError as exc:
            headers.update(exc.headers)
            return _respond(exc.status, json_bytes(exc.body(request_id)), headers)
        except Exception:
            logger.exception("stripe sandbox: %s %s failed", method, path)
            if key:
                sb.idempotency.forget(api_key, key)
            return _respond(500, json_bytes(api_error().body(request_id)), headers)

    return endpoint


def _as_account_allowed(method: str, path: str, account: str) -> bool:
    return method == "GET" and (
        path.startswith(("/v1/events", "/v2/core/events")) or path == f"/v1/accounts/{account}"
    )


async def _params(request: Request) -> Params:
    """A v1 call's form (body or query); a v2 call's JSON body (or query, for a GET)."""
    if request.method != "POST":
        return decode(request.url.query)
    raw = (await request.body()).decode()
    if not request.url.path.startswith("/v2/"):
        return decode(raw)
    try:
        body = json.loads(raw) if raw.strip() else {}
    except json.JSONDecodeError:
        raise invalid_request("The request body must be JSON.") from None
    if not isinstance(body, dict):
        raise invalid_request("The request body must be a JSON object.")
    return body


async def _run(
    sb: Sandbox, handler: Handler, kind: str, call: Call, request_id: str, key: str | None
) -> tuple[int, bytes]:
    # A bad `expand[]` is refused before the handler runs, never after it changed things.
    check_expand(kind, get_list(call.params, "expand"))
    async with sb.lock:
        sb.request = RequestContext(request_id, key)
        try:
            sb.tick()
            result = handler(sb, call)
            status, body = result if isinstance(result, tuple) else (200, result)
            if call.params.get("expand"):
                body = expand(sb.store, body, call.params)
            return status, json_bytes(body)
        finally:
            sb.request = None


async def _fault_before(sb: Sandbox, fault: Fault) -> None:
    if fault.kind == "rate_limit":
        raise rate_limited(fault.seconds)
    if fault.kind == "hang":
        await asyncio.sleep(
            fault.seconds if fault.seconds is not None else sb.settings.hang_seconds
        )
    raise api_error()


async def _fault_after(sb: Sandbox, fault: Fault) -> None:
    """The call ran and its result is saved; only the answer to this client goes wrong."""
    if fault.kind == "hang":
        await asyncio.sleep(
            fault.seconds if fault.seconds is not None else sb.settings.hang_seconds
        )
        return
    if fault.kind == "rate_limit":
        raise rate_limited(fault.seconds)
    raise api_error()


def _hang_for(sb: Sandbox, fault: Fault) -> float:
    return fault.seconds if fault.seconds is not None else sb.settings.hang_seconds
