"""Reading the few envelope fields the inbox keeps from a verified Stripe event body.

Two shapes arrive: snapshot events (`object: event`, `created` a unix time, the object inside
`data.object`, the connected account in `account`) and thin events (`object: v2.core.event`,
`created` an ISO-8601 string, only a `related_object` reference, the account in `context`).
Both are stored whole, as the bytes came; applying a thin one fetches the current object from
Stripe.

Only the envelope is decoded (msgspec, into a struct of the few fields kept): the object inside,
most of a ~2 KB delivery, is checked to be well-formed JSON and skipped, never built into
Python objects the request would throw away.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec

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


class _Fields(msgspec.Struct):
    """The fields read from a delivery, each as it came (checked below, with our own messages);
    every other field is skipped."""

    id: Any = None
    type: Any = None
    object: Any = None
    created: Any = None
    livemode: Any = None
    account: Any = None
    context: Any = None


_decoder = msgspec.json.Decoder(_Fields)


def _text(value: Any, key: str, limit: int) -> str:
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
        body = _decoder.decode(raw)
    except msgspec.ValidationError:  # valid JSON, but an array, a string...
        raise MalformedEvent("body is not a JSON object") from None
    except (msgspec.DecodeError, UnicodeDecodeError):
        raise MalformedEvent("body is not JSON") from None
    thin = body.object == THIN_EVENT_OBJECT
    livemode = body.livemode
    if not isinstance(livemode, bool):
        raise MalformedEvent("event field 'livemode' missing or invalid")
    account = body.context if thin else body.account
    if account is not None and (not isinstance(account, str) or len(account) > _MAX_ACCOUNT):
        raise MalformedEvent("event field 'account' invalid")
    return EventEnvelope(
        payload=payload,
        stripe_event_id=_text(body.id, "id", _MAX_ID),
        event_type=_text(body.type, "type", _MAX_TYPE),
        created=created_at(body.created),
        livemode=livemode,
        account=account or None,
        thin=thin,
    )
