"""Stripe events for webhook tests, signed for real with the SDK's own signer."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import stripe

PLATFORM_SECRET = "whsec_platform_current"
PLATFORM_OLD_SECRET = "whsec_platform_previous"
CONNECT_SECRET = "whsec_connect_current"


def snapshot_event(
    event_id: str | None = None,
    event_type: str = "payment_intent.succeeded",
    *,
    livemode: bool = False,
    account: str | None = None,
    created: int = 1_790_000_000,
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "id": event_id or f"evt_{uuid.uuid4().hex[:24]}",
        "object": "event",
        "api_version": "2025-10-29.clover",
        "created": created,
        "livemode": livemode,
        "type": event_type,
        "data": {"object": {"id": "pi_123", "object": "payment_intent", "amount": 1000}},
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
    }
    if account is not None:
        event["account"] = account
    return event


def thin_event(event_id: str | None = None, *, account: str | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {
        "id": event_id or f"evt_test_{uuid.uuid4().hex[:24]}",
        "object": "v2.core.event",
        "type": "v1.billing.meter.error_report_triggered",
        "created": "2026-11-26T12:00:00.000Z",
        "livemode": False,
        "related_object": {"id": "mtr_123", "type": "billing.meter", "url": "/v1/billing/meters"},
        "reason": None,
    }
    if account is not None:
        event["context"] = account
    return event


def body_of(event: dict[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode()


def sign(body: bytes, secret: str, timestamp: int | None = None) -> str:
    """A `Stripe-Signature` header, made by stripe-python."""
    return str(
        stripe.WebhookSignature.generate_signature_header(
            body.decode(), secret, timestamp=int(time.time()) if timestamp is None else timestamp
        )
    )
