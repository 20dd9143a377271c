"""`POST /webhooks/stripe` and `POST /webhooks/stripe/connect`.

The view does four things: read the raw body (at most 1 MiB), verify its signature with the
endpoint's own secrets, parse the envelope, submit it to the inbox writer; then it answers. Applying
happens later, in the worker. Every 2xx means the row is committed, so Stripe may forget it.
"""

from __future__ import annotations

import logging
import time

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from handlers._runtime import runtime_of
from reconciler.config import Secret
from reconciler.inbox.envelope import MalformedEvent, parse_event
from reconciler.inbox.events import NewEvent
from reconciler.inbox.signature import SIGNATURE_HEADER, SignatureError, verify_signature
from reconciler.metrics import Metrics

MAX_BODY_BYTES = 1024 * 1024
PLATFORM, CONNECT = "platform", "connect"

logger = logging.getLogger(__name__)


class BodyTooLarge(Exception):
    pass


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The raw body, refusing anything over `limit` before reading it all: a declared length
    is checked first, and a chunked body is counted as it streams in."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _refuse(metrics: Metrics, endpoint: str, outcome: str, status: int, reason: str) -> Response:
    metrics.deliveries.labels(endpoint, outcome).inc()
    return JSONResponse({"error": reason}, status_code=status)


async def _receive(request: Request, endpoint: str, secrets: tuple[Secret, ...]) -> Response:
    runtime = runtime_of(request)
    settings, metrics, writer = runtime.settings, runtime.metrics, runtime.inbox_writer
    try:
        body = await read_body(request)
    except BodyTooLarge:
        logger.warning("webhook %s refused: body over %d bytes", endpoint, MAX_BODY_BYTES)
        return _refuse(metrics, endpoint, "too_large", 413, "body too large")
    except ClientDisconnect:
        return _refuse(metrics, endpoint, "malformed", 400, "body incomplete")
    try:
        verify_signature(
            body,
            request.headers.get(SIGNATURE_HEADER),
            secrets,
            now=time.time(),
            tolerance_seconds=settings.webhook_tolerance_seconds,
        )
    except SignatureError as error:
        # The reason and the size only: never the header's signatures, a secret or the body.
        logger.warning("webhook %s refused: %s (%d bytes)", endpoint, error, len(body))
        return _refuse(metrics, endpoint, "bad_signature", 400, str(error))
    try:
        envelope = parse_event(body)
    except MalformedEvent as error:
        logger.warning("webhook %s refused after a valid signature: %s", endpoint, error)
        return _refuse(metrics, endpoint, "malformed", 400, str(error))
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
        new = await writer.submit(event)
    except Exception as error:  # the database is unreachable or refused: Stripe must retry
        logger.warning("webhook %s not stored: %s", endpoint, type(error).__name__)
        return _refuse(metrics, endpoint, "unavailable", 503, "temporarily unavailable")
    outcome = "duplicate" if not new else ("ignored" if ignored else "stored")
    metrics.deliveries.labels(endpoint, outcome).inc()
    return JSONResponse({"status": outcome})


async def platform_webhook(request: Request) -> Response:
    return await _receive(request, PLATFORM, runtime_of(request).settings.webhook_secrets)


async def connect_webhook(request: Request) -> Response:
    secrets = runtime_of(request).settings.connect_webhook_secrets
    return await _receive(request, CONNECT, secrets)
