"""Reading the few envelope fields the inbox keeps from a verified Stripe event body.

Two shapes arrive: snapshot events (`object: event`, `created` a unix time, the object inside
`data.object`, the connected account in `account`) and thin events (`object: v2.core.event`,
`created` an ISO-8601 string, only a `related_object` reference, the account in `context`).
Both are stored whole; applying a thin one fetches the current object from Stripe.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

THIN_EVENT_OBJECT = "v2.core.event"
_MAX_ID = 255
_MAX_TYPE = 100
_MAX_ACCOUNT = 64


class MalformedEvent(ValueError):
    """The body is signed but is not a Stripe event we can store; the message is short."""


@dataclass(frozen=True)
class EventEnvelope:
    payload: str
    stripe_event_id: str
    event_type: str
    created: int
    livemode: bool
    account: str | None
    thin: bool


def _text(body: dict[str, Any], key: str, limit: int) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value or len(value) > limit:
        raise MalformedEvent(f"event field {key!r} missing or invalid")
    return value


def created_at(value: object) -> int:
    """An event's `created` as a unix time, whichever shape (unix or ISO-8601) it has."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            if parsed.tzinfo is not None:
                return int(parsed.timestamp())
    raise MalformedEvent("event field 'created' missing or invalid")


def parse_event(raw: bytes) -> EventEnvelope:
    """The envelope of a snapshot or thin event; `MalformedEvent` if it is neither."""
    try:
        payload = raw.decode("utf-8")  # Stripe sends UTF-8; the inbox keeps the text as sent
        body = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        raise MalformedEvent("body is not JSON") from None
    if not isinstance(body, dict):
        raise MalformedEvent("body is not a JSON object")
    thin = body.get("object") == THIN_EVENT_OBJECT
    livemode = body.get("livemode")
    if not isinstance(livemode, bool):
        raise MalformedEvent("event field 'livemode' missing or invalid")
    account = body.get("context" if thin else "account")
    if account is not None and (not isinstance(account, str) or len(account) > _MAX_ACCOUNT):
        raise MalformedEvent("event field 'account' invalid")
    return EventEnvelope(
        payload=payload,
        stripe_event_id=_text(body, "id", _MAX_ID),
        event_type=_text(body, "type", _MAX_TYPE),
        created=created_at(body.get("created")),
        livemode=livemode,
        account=account or None,
        thin=thin,
    )
