"""`POST /webhooks/stripe` and `POST /webhooks/stripe/connect`.

The view does four things: read the raw body (at most 1 MiB), verify its signature with the
endpoint's own secrets, parse the envelope, submit it to the inbox writer; then it answers. Applying
happens later, in the worker. Every 2xx means the row is committed, so Stripe may forget it.

These two routes take every delivery Stripe makes, so each is a plain ASGI app the service app
calls before its middleware and router (`handlers.app.ServiceApp`): no Request or Response
objects, and the answers are a few constant bytes. Accepted deliveries are counted into one log
line every few seconds (`DeliveryLog`); every refused one is logged on its own.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

from starlette.types import Receive, Scope, Send

from handlers._delivery_log import DeliveryLog
from handlers._runtime import app_runtime
from reconciler.config import Secret, Settings
from reconciler.inbox.envelope import MalformedEvent, parse_event
from reconciler.inbox.events import NewEvent
from reconciler.inbox.signature import SignatureError, verify_signature
from reconciler.runtime import Runtime

MAX_BODY_BYTES = 1024 * 1024
PLATFORM, CONNECT = "platform", "connect"
_SIGNATURE = b"stripe-signature"
_LENGTH = b"content-length"
_JSON_HEADERS = [(b"content-type", b"application/json")]

logger = logging.getLogger(__name__)


class BodyTooLarge(Exception):
    pass


class BodyIncomplete(Exception):
    """The client went away before its body was in."""


def _json(answer: dict[str, str]) -> bytes:
    return json.dumps(answer, separators=(",", ":")).encode()


_ANSWERS = {outcome: _json({"status": outcome}) for outcome in ("stored", "duplicate", "ignored")}


async def read_body(receive: Receive, declared: bytes | None, limit: int = MAX_BODY_BYTES) -> bytes:
    """The raw body, refusing anything over `limit` before reading it all: a declared length
    is checked first, and a chunked body is counted as it streams in."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise BodyIncomplete
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class WebhookEndpoint:
    """One endpoint (`platform` or `connect`) with the secrets `secrets_of` picks from the
    running service's settings. The runtime is looked up per request, from the app."""

    def __init__(
        self,
        endpoint: str,
        secrets_of: Callable[[Settings], tuple[Secret, ...]],
        log: DeliveryLog,
    ) -> None:
        self.endpoint = endpoint
        self._secrets_of = secrets_of
        self._log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        status, body = await self._deliver(app_runtime(scope["app"]), scope, receive)
        await send({"type": "http.response.start", "status": status, "headers": _JSON_HEADERS})
        await send({"type": "http.response.body", "body": body})

    def _refuse(
        self, runtime: Runtime, outcome: str, status: int, reason: str
    ) -> tuple[int, bytes]:
        runtime.metrics.delivery(self.endpoint, outcome)
        return status, _json({"error": reason})

    async def _deliver(self, runtime: Runtime, scope: Scope, receive: Receive) -> tuple[int, bytes]:
        endpoint, settings = self.endpoint, runtime.settings
        declared = header = None
        for name, value in scope["headers"]:
            if name == _SIGNATURE:
                header = value
            elif name == _LENGTH:
                declared = value
        try:
            body = await read_body(receive, declared)
        except BodyTooLarge:
            logger.warning("webhook %s refused: body over %d bytes", endpoint, MAX_BODY_BYTES)
            return self._refuse(runtime, "too_large", 413, "body too large")
        except BodyIncomplete:
            return self._refuse(runtime, "malformed", 400, "body incomplete")
        try:
            verify_signature(
                body,
                header.decode("latin-1") if header is not None else None,
                self._secrets_of(settings),
                now=time.time(),
                tolerance_seconds=settings.webhook_tolerance_seconds,
            )
        except SignatureError as error:
            # The reason and the size only: never the header's signatures, a secret or the body.
            logger.warning("webhook %s refused: %s (%d bytes)", endpoint, error, len(body))
            return self._refuse(runtime, "bad_signature", 400, str(error))
        try:
            envelope = parse_event(body)
        except MalformedEvent as error:
            logger.warning("webhook %s refused after a valid signature: %s", endpoint, error)
            return self._refuse(runtime, "malformed", 400, str(error))
        ignored = None
        if envelope.livemode != settings.livemode:
            ignored = (
                f"{'live' if envelope.livemode else 'test'}-mode event on a "
                f"{'live' if settings.livemode else 'test'}-mode service"
            )
        event = NewEvent(
            stripe_event_id=envelope.stripe_event_id,
            endpoint=endpoint,
            event_type=envelope.event_type,
            livemode=envelope.livemode,
            account=envelope.account,
            stripe_created=envelope.created,
            payload=envelope.payload,
            ignored_reason=ignored,
        )
        try:
            new = await runtime.inbox_writer.submit(event)
        except Exception as error:  # the database is unreachable or refused: Stripe must retry
            logger.warning("webhook %s not stored: %s", endpoint, type(error).__name__)
            return self._refuse(runtime, "unavailable", 503, "temporarily unavailable")
        outcome = "duplicate" if not new else ("ignored" if ignored else "stored")
        runtime.metrics.delivery(endpoint, outcome)
        self._log.accepted(endpoint, outcome, event)
        return 200, _ANSWERS[outcome]


def webhook_endpoints(log: DeliveryLog) -> dict[str, WebhookEndpoint]:
    """The two endpoints by path."""
    return {
        "/webhooks/stripe": WebhookEndpoint(PLATFORM, lambda s: s.webhook_secrets, log),
        "/webhooks/stripe/connect": WebhookEndpoint(
            CONNECT, lambda s: s.connect_webhook_secrets, log
        ),
    }
