"""The Stripe gateway: the one module that talks to Stripe through the stripe SDK.

Injected, never configured at import time (no `stripe.api_key = ...`). Async over httpx, with
a timeout per call and a bounded retry of what is worth retrying (429, 409 concurrent
idempotent request, 5xx, network errors), honouring `Retry-After`. The SDK's own retries are
off so this policy is the only one. Every attempt first takes a token from the gateway's one
rate limiter (`reconciler/ratelimit.py`), shared by everything holding the gateway; work inside
`async with gateway.background():` yields to calls serving a user. Every failure reaches
callers as a `GatewayError` that says whether trying again later can help. Objects come back
as plain dicts, the same shape as a webhook's `data.object`, so the apply functions treat both
alike.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Final, TypeVar, cast

import msgspec
import stripe
from stripe._request_options import extract_options_from_dict
from stripe.params import (
    AccountCreateParams,
    AccountListParams,
    EventListParams,
    PaymentIntentCreateParams,
    RefundCreateParams,
    RefundListParams,
    TransferCreateParams,
    TransferListParams,
    TransferReversalListParams,
)

from reconciler.config import Secret
from reconciler.ratelimit import Priority, TokenBucket
from reconciler.types import StripeObject

log = logging.getLogger(__name__)


def _format_sdk_debug_lines_only_when_written() -> None:
    """stripe-python formats every response body (logfmt, escaping each character) for a
    debug line even when nothing writes it (`stripe._util.log_debug`): a tenth of a reconcile
    run's CPU, reading 100-object pages. The line is still made, as before, whenever the
    `stripe` logger is on at DEBUG or STRIPE_LOG/`stripe.log` asks for it."""
    import stripe._api_requestor as requestor
    import stripe._util as sdk_util

    format_and_log: Callable[..., None] = sdk_util.log_debug
    console_level: Callable[[], str | None] = getattr(sdk_util, "_console_log_level", lambda: None)

    def log_debug(message: str, **params: Any) -> None:
        if console_level() == "debug" or sdk_util.logger.isEnabledFor(logging.DEBUG):
            format_and_log(message, **params)

    setattr(requestor, "log_debug", log_debug)  # noqa: B010 (the SDK's module, not ours)


_format_sdk_debug_lines_only_when_written()


def _load_what_the_first_request_would() -> None:
    """httpx's async transport (httpcore on anyio) imports anyio's asyncio backend, its
    streams and its locks on the first request it sends: ~35 ms, which the first page of a
    reconcile run started in a fresh process would wait for. Loaded with this module, at
    start-up, instead."""
    import anyio.abc
    import anyio.lowlevel
    import anyio.streams.memory
    import anyio.streams.stapled
    import anyio.streams.tls  # noqa: F401
    from anyio._core._eventloop import get_async_backend

    get_async_backend("asyncio")


_load_what_the_first_request_would()

# The API version the payloads this code reads are shaped by: the SDK's own (stripe 16.1).
# Written out because the SDK's parameter type lists versions as literals; a test checks the
# two agree.
WEBHOOK_API_VERSION: Final = "2026-10-28.endive"

Sleep = Callable[[float], Awaitable[None]]

# Whose work a call is: set by `StripeGateway.background()`, inherited by the tasks it starts.
_priority: ContextVar[Priority] = ContextVar("stripe_call_priority", default=Priority.USER)


def call_priority() -> Priority:
    """The priority a Stripe call made here and now waits with: BACKGROUND inside
    `StripeGateway.background()` (or a task started there), else USER."""
    return _priority.get()


class GatewayError(Exception):
    """A Stripe call that failed. `retryable`: the same call may succeed later."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        http_status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
        param: str | None = None,
        stripe_message: str | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.http_status = http_status
        self.code = code
        self.retry_after = retry_after
        # The request parameter Stripe refused, and what it said, for a caller to pass on.
        self.param = param
        self.stripe_message = stripe_message

    @property
    def refused_input(self) -> bool:
        """Stripe refused what was asked (a 400 naming a parameter): the caller's to fix."""
        return self.http_status == 400 and self.param is not None


class StripeNotFound(GatewayError):
    """Stripe has no such object (404 `resource_missing`)."""


class AccessRevoked(GatewayError):
    """Stripe no longer lets the platform act for a connected account (403 `account_invalid`:
    "Application access may have been revoked"): it was deauthorized or deleted."""


def classify(error: stripe.StripeError) -> GatewayError:
    """Turn an SDK error into a GatewayError saying whether to retry."""
    status = error.http_status
    message = f"{type(error).__name__}: {error.user_message or error}"
    retry_after = _retry_after(error.headers or {})
    # The SDK leaves `code` unset on some errors (a 403's PermissionError); the body has it.
    code = error.code or _body_code(error)
    if isinstance(error, stripe.APIConnectionError):
        return GatewayError(message, retryable=True)
    if status == 404:
        return StripeNotFound(message, retryable=False, http_status=status, code=code)
    if status == 403 and code == "account_invalid":
        return AccessRevoked(message, retryable=False, http_status=status, code=code)
    retryable = status in (409, 429) or (status is not None and status >= 500)
    if (error.headers or {}).get("stripe-should-retry") == "false":
        retryable = False
    return GatewayError(
        message,
        retryable=retryable,
        http_status=status,
        code=code,
        retry_after=retry_after,
        param=getattr(error, "param", None),
        stripe_message=error.user_message,
    )


def _body_code(error: stripe.StripeError) -> str | None:
    body = error.json_body if isinstance(error.json_body, dict) else {}
    details = body.get("error")
    code = details.get("code") if isinstance(details, dict) else None
    return code if isinstance(code, str) else None


def _retry_after(headers: Any) -> float | None:
    value = headers.get("retry-after") or headers.get("Retry-After")
    try:
        seconds = float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
    return None if seconds is None else max(0.0, seconds)


def _as_dict(result: stripe.StripeObject) -> StripeObject:
    return result.to_dict()


def _as_is(result: StripeObject) -> StripeObject:
    return result


T = TypeVar("T")

# Plain dicts and lists, as `json.loads` makes them; one decoder, made once.
_json = msgspec.json.Decoder()


class _Listed(msgspec.Struct):
    id: str


class _ListCursor(msgspec.Struct):
    """Of a list page, only what says where the next page starts (a fourth of a full
    decoding's time: the rest is skipped)."""

    data: list[_Listed]
    has_more: bool = False


_cursor = msgspec.json.Decoder(_ListCursor)

# Turns of the event loop httpx takes from a request's start to its bytes on the socket (the
# connection pool, the connection's lock, the write); tests/reconciler/test_gateway.py checks.
_TURNS_TO_SEND = 3


@dataclass(frozen=True)
class _RawPage:
    body: bytes
    next_after: str | None  # the next page's cursor (its last object's id); None: the last


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    base_delay: float = 0.25
    max_delay: float = 8.0

    def delay(self, attempt: int, error: GatewayError) -> float | None:
        """How long to wait before the next attempt; None: Stripe asked for longer than this
        policy waits, and trying sooner than told would only be refused again."""
        if error.retry_after is not None:
            return error.retry_after if error.retry_after <= self.max_delay else None
        backoff: float = self.base_delay * 2**attempt
        return min(backoff, self.max_delay)


class StripeGateway:
    """The calls this service makes to Stripe."""

    def __init__(
        self,
        api_key: Secret,
        api_base: str | None = None,
        *,
        timeout: float = 15.0,
        retry: RetryPolicy = RetryPolicy(),
        sleep: Sleep = asyncio.sleep,
        limiter: TokenBucket | None = None,
    ) -> None:
        """`limiter`: the bucket every attempt takes a token from; None sends unlimited."""
        self._http = stripe.HTTPXClient(timeout=timeout)
        options: dict[str, Any] = {"http_client": self._http, "max_network_retries": 0}
        if api_base is not None:
            options["base_addresses"] = {"api": api_base}
        self._client = stripe.StripeClient(api_key.reveal(), **options)
        self._retry = retry
        self._sleep = sleep
        self._limiter = limiter

    @property
    def rate_limiter(self) -> TokenBucket | None:
        return self._limiter

    async def aclose(self) -> None:
        await self._http.close_async()  # type: ignore[no-untyped-call]

    @asynccontextmanager
    async def background(self) -> AsyncIterator[None]:
        """Mark the calls made inside (and in tasks started inside) as background work: they
        wait for the rate limiter behind every call serving a user (payouts, refunds,
        checkout, onboarding), which is what a call is unless marked."""
        token = _priority.set(Priority.BACKGROUND)
        try:
            yield
        finally:
            _priority.reset(token)

    async def _call(
        self,
        what: str,
        call: Callable[[], Awaitable[Any]],
        plain: Callable[[Any], StripeObject] = _as_dict,
    ) -> StripeObject:
        """`call` Stripe under the limiter and the retry policy; `plain` makes a plain dict
        of what it returns (an SDK object's `to_dict()` by default)."""
        return plain(await self._attempts(what, call))

    async def _attempts(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """`call`'s answer, each attempt under the limiter, failures retried by the policy."""
        attempt = 0
        while True:
            if self._limiter is not None:
                await self._limiter.acquire(call_priority())
            try:
                result = await call()
            except stripe.StripeError as raw:
                error = classify(raw)
                attempt += 1
                if error.http_status == 429 and error.retry_after and self._limiter is not None:
                    # Stripe limits the account, not this call: every caller waits it out.
                    self._limiter.hold_off(error.retry_after)
                delay = self._retry.delay(attempt - 1, error)
                if not error.retryable or attempt >= self._retry.attempts or delay is None:
                    raise error from raw
                log.warning("stripe %s failed (%s); retry %d in %.2fs", what, error, attempt, delay)
                await self._sleep(delay)
                continue
            return result

    async def payment_intent(self, intent_id: str) -> StripeObject:
        return await self._call(
            "payment_intent", lambda: self._client.v1.payment_intents.retrieve_async(intent_id)
        )

    async def charge(self, charge_id: str) -> StripeObject:
        """The charge with its balance transaction expanded (for the fee and availability)."""
        return await self._call(
            "charge",
            lambda: self._client.v1.charges.retrieve_async(
                charge_id, params={"expand": ["balance_transaction"]}
            ),
        )

    async def refund(self, refund_id: str) -> StripeObject:
        """With its balance transaction expanded (what it took, in the balance's currency)."""
        return await self._call(
            "refund",
            lambda: self._client.v1.refunds.retrieve_async(
                refund_id, params={"expand": ["balance_transaction"]}
            ),
        )

    async def _list_all(
        self, what: str, page_after: Callable[[str | None], Awaitable[stripe.StripeObject]]
    ) -> list[StripeObject]:
        """Every item of a list, a page (100) at a time after the last one read."""
        items: list[StripeObject] = []
        cursor: str | None = None
        while True:
            page = await self._call(what, functools.partial(page_after, cursor))
            items.extend(page["data"])
            if not page.get("has_more") or not page["data"]:
                return items
            cursor = page["data"][-1]["id"]

    async def refunds_for_charge(self, charge_id: str) -> list[StripeObject]:
        def page_after(cursor: str | None) -> Awaitable[stripe.StripeObject]:
            params: RefundListParams = {"charge": charge_id, "limit": 100}
            if cursor:
                params["starting_after"] = cursor
            return self._client.v1.refunds.list_async(params=params)

        return await self._list_all("refunds", page_after)

    async def transfer_reversals(self, transfer_id: str) -> list[StripeObject]:
        def page_after(cursor: str | None) -> Awaitable[stripe.StripeObject]:
            params: TransferReversalListParams = {"limit": 100}
            if cursor:
                params["starting_after"] = cursor
            return self._client.v1.transfers.reversals.list_async(transfer_id, params=params)

        return await self._list_all("transfer_reversals", page_after)

    async def transfer(self, transfer_id: str) -> StripeObject:
        return await self._call(
            "transfer", lambda: self._client.v1.transfers.retrieve_async(transfer_id)
        )

    async def account(self, account_id: str) -> StripeObject:
        return await self._call(
            "account", lambda: self._client.v1.accounts.retrieve_async(account_id)
        )

    async def balance(self) -> StripeObject:
        return await self._call("balance", lambda: self._client.v1.balance.retrieve_async())

    async def _create(
        self,
        what: str,
        call: Callable[[stripe.RequestOptions], Awaitable[stripe.StripeObject]],
        idempotency_key: str | None = None,
    ) -> StripeObject:
        """A POST that creates something, under one idempotency key for all of `_call`'s
        tries: a try that Stripe executed but whose answer was lost (a 500 after the fact, a
        timeout) is answered by the retry with the same object, never made twice. Callers
        with a row of their own pass a key made from it (`payout:<id>`), which also survives
        a restart; otherwise one is made here, once per logical call."""
        key = idempotency_key or f"icpay:{what}:{uuid.uuid4()}"
        return await self._call(what, lambda: call({"idempotency_key": key}))

    async def create_express_account(
        self, *, merchant_id: int, country: str, email: str | None, idempotency_key: str
    ) -> StripeObject:
        """An Express account for the merchant, able to receive Connect transfers, named as
        ours in its metadata (so a lost answer is found again)."""
        params: AccountCreateParams = {
            "type": "express",
            "country": country,
            "capabilities": {"transfers": {"requested": True}},
            "metadata": {"icpay_account_id": str(merchant_id)},
        }
        if email:
            params["email"] = email
        return await self._create(
            "account",
            lambda options: self._client.v1.accounts.create_async(params=params, options=options),
            idempotency_key,
        )

    async def create_account_link(
        self, account_id: str, *, refresh_url: str, return_url: str, update: bool
    ) -> StripeObject:
        """A single-use link to Stripe's hosted onboarding (or, with `update`, to change
        what was submitted). Each call is a new link: its key is made once per call."""
        return await self._create(
            "account_link",
            lambda options: self._client.v1.account_links.create_async(
                params={
                    "account": account_id,
                    "refresh_url": refresh_url,
                    "return_url": return_url,
                    "type": "account_update" if update else "account_onboarding",
                },
                options=options,
            ),
        )

    async def create_payment_intent(
        self, *, amount: int, currency: str, metadata: dict[str, str], idempotency_key: str
    ) -> StripeObject:
        """A PaymentIntent on the platform account, for the customer to confirm with its
        client secret. Methods that redirect are left out: they would need a `return_url` at
        confirmation, and the rail is cards (this API version's parameters have no
        `payment_method_types`)."""
        params: PaymentIntentCreateParams = {
            "amount": amount,
            "currency": currency,
            "automatic_payment_methods": {"enabled": True, "allow_redirects": "never"},
            "metadata": metadata,
        }
        return await self._create(
            "payment_intent",
            lambda options: self._client.v1.payment_intents.create_async(
                params=params, options=options
            ),
            idempotency_key,
        )

    async def create_transfer(
        self,
        *,
        amount: int,
        currency: str,
        destination: str,
        metadata: dict[str, str],
        idempotency_key: str,
    ) -> StripeObject:
        """A Connect transfer from the platform's available balance to `destination`."""
        params: TransferCreateParams = {
            "amount": amount,
            "currency": currency,
            "destination": destination,
            "metadata": metadata,
        }
        return await self._create(
            "transfer",
            lambda options: self._client.v1.transfers.create_async(params=params, options=options),
            idempotency_key,
        )

    async def create_refund(
        self,
        *,
        payment_intent: str,
        amount: int,
        reason: str | None,
        metadata: dict[str, str],
        idempotency_key: str,
    ) -> StripeObject:
        """A refund of (part of) the PaymentIntent's charge, from the platform's balance."""
        params: RefundCreateParams = {
            "payment_intent": payment_intent,
            "amount": amount,
            "metadata": metadata,
        }
        if reason is not None:
            params["reason"] = reason
        return await self._create(
            "refund",
            lambda options: self._client.v1.refunds.create_async(params=params, options=options),
            idempotency_key,
        )

    async def transfers_to(self, destination: str, *, created_gte: int) -> list[StripeObject]:
        """Every transfer to `destination` made since `created_gte` (a Unix time)."""

        def page_after(cursor: str | None) -> Awaitable[stripe.StripeObject]:
            params: TransferListParams = {
                "destination": destination,
                "created": {"gte": created_gte},
                "limit": 100,
            }
            if cursor:
                params["starting_after"] = cursor
            return self._client.v1.transfers.list_async(params=params)

        return await self._list_all("transfers", page_after)

    async def list_pages(
        self,
        resource: str,
        *,
        starting_after: str | None = None,
        created_gte: int | None = None,
        created_lt: int | None = None,
        expand: tuple[str, ...] = (),
        limit: int = 100,
        **filters: str,
    ) -> AsyncGenerator[StripeObject, None]:
        """The pages of a Stripe list (`payment_intents`, `charges`, `refunds`, `transfers`,
        `accounts`, `balance_transactions`), newest first, after `starting_after`, created in
        `[created_gte, created_lt)` (Unix times), with `expand` paths (`data.latest_charge`)
        and the list's own filters (`destination=acct_...`), one at a time: a reconcile run
        walks a list with this, so it holds a page, never the whole list. The next page is
        asked for as soon as a page arrives, before it is decoded, so Stripe's answer and
        the caller's work on a page overlap (two pages held at most)."""
        params: dict[str, Any] = {"limit": limit, **filters}
        created: dict[str, int] = {}
        if created_gte is not None:
            created["gte"] = created_gte
        if created_lt is not None:
            created["lt"] = created_lt
        if created:
            params["created"] = created
        if expand:
            params["expand"] = list(expand)
        url = f"/v1/{resource}"

        def fetch(after: str | None) -> asyncio.Future[_RawPage]:
            paged = params if after is None else {**params, "starting_after": after}
            call = functools.partial(self._get_page, url, paged)
            return asyncio.ensure_future(self._attempts(resource, call))

        pending = fetch(starting_after)
        try:
            while True:
                raw = await pending
                after = raw.next_after
                if after is not None:
                    pending = fetch(after)
                    for _ in range(_TURNS_TO_SEND):  # its request out before this page's decoding
                        await asyncio.sleep(0)
                page = _json.decode(raw.body)
                del raw  # the body, let go while the page is worked on
                yield page
                if after is None:
                    return
        finally:
            if not pending.done():
                pending.cancel()
                await asyncio.gather(pending, return_exceptions=True)

    async def _get_page(self, url: str, params: dict[str, Any]) -> _RawPage:
        """GET a list page as the SDK's `raw_request_async` does (its requestor: key, API
        version, `Stripe-Account` from `params`, encoding, HTTP client), the body kept as
        bytes and only its cursor read, so the next page can be asked for first. Not the
        SDK's objects, nor its decoding: building the objects of a page of 100 expanded
        intents costs ~0.1 s of CPU, more than the request, and its `json.loads` makes an
        `OrderedDict` of every object (7 ms such a page; msgspec, later, 1.5 ms). An error
        answer, or a body that is not a list, is the SDK's to read: it raises what the SDK
        raises, which `classify` maps."""
        options, params = extract_options_from_dict(params)
        requestor = self._client._requestor
        raw, status, headers = await requestor.request_raw_async(
            "get",
            url,
            params=params,
            options=options,
            base_address="api",
            api_mode="V1",
            usage=["raw_request"],
        )
        body = cast(bytes, raw)  # the whole body: only streamed requests give an iterator
        if 200 <= status < 300:
            try:
                cursor = _cursor.decode(body)
            except (msgspec.DecodeError, msgspec.ValidationError):
                pass
            else:
                more = cursor.has_more and bool(cursor.data)
                return _RawPage(body, cursor.data[-1].id if more else None)
        requestor._interpret_response(body, status, headers, "V1")
        raise GatewayError(f"GET {url} answered with something other than a list", retryable=False)

    async def retrieve(
        self, resource: str, object_id: str, *, expand: tuple[str, ...] = ()
    ) -> StripeObject:
        """One object of a resource (`payment_intents`, `charges`, ...), with `expand` paths."""
        service = getattr(self._client.v1, resource)
        params: dict[str, Any] = {"expand": list(expand)} if expand else {}
        return await self._call(
            resource, functools.partial(service.retrieve_async, object_id, params=params)
        )

    async def create_webhook_endpoint(self, url: str, *, connect: bool) -> StripeObject:
        """Register an endpoint for every event, pinned to the API version this code reads;
        the answer is the only time its secret shows."""
        return await self._create(
            "webhook_endpoint",
            lambda options: self._client.v1.webhook_endpoints.create_async(
                params={
                    "url": url,
                    "enabled_events": ["*"],
                    "connect": connect,
                    "api_version": WEBHOOK_API_VERSION,
                },
                options=options,
            ),
        )

    async def connected_accounts(self, *, created_gte: int) -> list[StripeObject]:
        """The platform's connected accounts created since `created_gte` (a Unix time)."""

        def page_after(cursor: str | None) -> Awaitable[stripe.StripeObject]:
            params: AccountListParams = {"created": {"gte": created_gte}, "limit": 100}
            if cursor:
                params["starting_after"] = cursor
            return self._client.v1.accounts.list_async(params=params)

        return await self._list_all("accounts", page_after)

    async def event_pages(
        self,
        *,
        created_gte: int,
        stripe_account: str | None,
        page_size: int = 100,
        older_than: str | None = None,
    ) -> AsyncIterator[list[StripeObject]]:
        """Every event created at or after `created_gte` (a Unix time), and listed after the
        event `older_than` if given, a page at a time as Stripe lists them: newest first.
        `stripe_account` None reads the platform's own events; an `acct_...` reads that
        connected account's (Stripe lists them only under its `Stripe-Account` header).

        Pages follow each other by `starting_after` the last (oldest) event read, an event id,
        never a time: events of one second split by a page boundary are all read. Events made
        while paging land in front of the first page, not among the pages still to come, so
        nothing shifts; they are read by the next run, from its own overlap."""
        cursor = older_than
        while True:
            page = await self._events_page(created_gte, stripe_account, page_size, after=cursor)
            data: list[StripeObject] = page["data"]
            if data:
                yield data
            if not page.get("has_more") or not data:
                return
            cursor = data[-1]["id"]

    async def event_pages_after(
        self, event_id: str, *, created_gte: int, stripe_account: str | None, page_size: int = 100
    ) -> AsyncIterator[list[StripeObject]]:
        """Every event listed after `event_id` (made later, or in its second and placed before
        it), created at or after `created_gte`, a page at a time, oldest first: Stripe's
        `ending_before` gives the page of events just newer than its cursor (newest first,
        reversed here), and each next page is the one just newer than the newest read. Events
        made while paging come in later pages, so a walk ends at the newest event listed.
        A cursor event Stripe no longer lists (past its 30 days) is a `GatewayError` with
        code `resource_missing`."""
        cursor = event_id
        while True:
            page = await self._events_page(created_gte, stripe_account, page_size, before=cursor)
            data: list[StripeObject] = page["data"]
            if data:
                yield list(reversed(data))
            if not page.get("has_more") or not data:
                return
            cursor = data[0]["id"]

    async def _events_page(
        self,
        created_gte: int,
        stripe_account: str | None,
        page_size: int,
        *,
        after: str | None = None,
        before: str | None = None,
    ) -> StripeObject:
        params: EventListParams = {"created": {"gte": created_gte}, "limit": page_size}
        if after:
            params["starting_after"] = after
        if before:
            params["ending_before"] = before
        options: stripe.RequestOptions = {}
        if stripe_account is not None:
            options["stripe_account"] = stripe_account
        return await self._call(
            "events",
            functools.partial(self._client.v1.events.list_async, params=params, options=options),
        )
