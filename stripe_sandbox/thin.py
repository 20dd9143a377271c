"""Thin events: the `v2.core.event` counterpart Stripe makes of every v1 event.

A thin event carries no snapshot, only a reference to the object it is about
(`related_object` {id, type, url}; the balance, one per account, has no id), the connected
account in `context`, and the API request in `reason`. Its type is the v1 name prefixed with
`v1.` (`v1.account.updated`). Event destinations with `event_payload: thin` receive it;
`GET /v2/core/events/{id}` retrieves it (with `Stripe-Context` for an account's event).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .errors import missing
from .forms import check_known

if TYPE_CHECKING:
    from .api import Call
    from .state import Sandbox

Obj = dict[str, Any]

THIN_OBJECT = "v2.core.event"
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

# Where each kind of object is read back, as Stripe's related_object.url gives it.
_URLS = {
    "payment_intent": "/v1/payment_intents/{id}",
    "charge": "/v1/charges/{id}",
    "refund": "/v1/refunds/{id}",
    "transfer": "/v1/transfers/{id}",
    "account": "/v1/accounts/{id}",
}


def thin_type(snapshot_type: str) -> str:
    return f"v1.{snapshot_type}"


def thin_id(snapshot_id: str) -> str:
    """Stripe's v2 event ids are longer than v1 ones; derived from the snapshot's id so
    making one draws nothing from the seeded stream (every other id stays as it was)."""
    number = int.from_bytes(hashlib.sha256(snapshot_id.encode()).digest(), "big")
    chars = []
    for _ in range(44):
        number, digit = divmod(number, len(_ALPHABET))
        chars.append(_ALPHABET[digit])
    return "evt_65" + "".join(chars)


def iso(timestamp: float) -> str:
    """Stripe's v2 time format: ISO-8601 in UTC with milliseconds and `Z`."""
    moment = datetime.fromtimestamp(timestamp, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _related(obj: Obj) -> Obj | None:
    kind = obj.get("object")
    if kind == "balance":
        return {"type": "balance", "url": "/v1/balance"}
    url = _URLS.get(str(kind))
    if url is None or not obj.get("id"):
        return None  # e.g. the application of account.application.deauthorized
    return {"id": obj["id"], "type": kind, "url": url.format(id=obj["id"])}


def create_thin_event(sb: Sandbox, event: Obj) -> Obj:
    """Store the thin counterpart of the snapshot `event` (as `GET /v2/core/events` shows
    it: the notification plus `snapshot_event`)."""
    request = event["request"]
    thin: Obj = {
        "id": thin_id(event["id"]),
        "object": THIN_OBJECT,
        "type": thin_type(event["type"]),
        "livemode": False,
        "created": iso(event["created"]),
        "reason": ({"type": "request", "request": dict(request)} if request.get("id") else None),
    }
    related = _related(event["data"]["object"])
    if related is not None:
        thin["related_object"] = related
    if event.get("account"):
        thin["context"] = event["account"]
    thin["snapshot_event"] = event["id"]
    sb.store.add(thin)
    return thin


def notification(thin: Obj) -> Obj:
    """The body an event destination receives: the thin event without what only the
    API shows."""
    return {k: v for k, v in thin.items() if k != "snapshot_event"}


def retrieve_thin_event(sb: Sandbox, call: Call) -> Obj:
    check_known(call.params, set())
    event = sb.store.find(call.path["id"])
    horizon = sb.clock.timestamp() - sb.settings.event_retention_days * 86_400
    snapshot = sb.store.find(event["snapshot_event"]) if event is not None else None
    if (
        event is None
        or event["object"] != THIN_OBJECT
        or snapshot is None
        or snapshot["created"] < horizon
        or event.get("context") != call.account
    ):
        raise missing("event", call.path["id"])
    return event


ROUTES = [("GET", "/v2/core/events/{id}", retrieve_thin_event, "v2.core.event")]
