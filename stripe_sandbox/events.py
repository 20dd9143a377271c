"""Events: made for every change, kept for /v1/events (30 days), handed to delivery."""

from __future__ import annotations

import copy
import fnmatch
from typing import TYPE_CHECKING, Any

from .errors import invalid_request, missing
from .forms import Params, check_known, get_bool, get_list, get_str
from .settings import API_VERSION
from .store import paginate
from .thin import create_thin_event

if TYPE_CHECKING:
    from .api import Call
    from .state import Sandbox

Obj = dict[str, Any]


def create_event(
    sb: Sandbox,
    type_: str,
    obj: Obj,
    *,
    account: str | None = None,
    previous: Obj | None = None,
) -> Obj:
    data: Obj = {"object": copy.deepcopy(obj)}
    if previous:
        data["previous_attributes"] = copy.deepcopy(previous)
    request = sb.request
    event: Obj = {
        "id": sb.ids.new("evt"),
        "object": "event",
        "api_version": API_VERSION,
        "created": sb.clock.timestamp(),
        "data": data,
        "livemode": False,
        "pending_webhooks": 0,
        "request": {
            "id": request.id if request else None,
            "idempotency_key": request.idempotency_key if request else None,
        },
        "type": type_,
    }
    if account is not None:
        event = {"account": account, **event}
    sb.store.add(event)
    create_thin_event(sb, event)
    sb.deliveries.enqueue(event)
    return event


def _visible(sb: Sandbox, account: str | None) -> list[Obj]:
    """The events within retention of the platform (`account` None) or of one connected
    account: Stripe lists an account's events only for requests made as that account
    (the Stripe-Account header)."""
    horizon = sb.clock.timestamp() - sb.settings.event_retention_days * 86_400
    return [
        e
        for e in sb.store.newest_first("event")
        if e["created"] >= horizon and e.get("account") == account
    ]


def list_events(sb: Sandbox, call: Call) -> Obj:
    params: Params = call.params
    check_known(
        params,
        {
            "created",
            "delivery_success",
            "ending_before",
            "limit",
            "starting_after",
            "type",
            "types",
        },
    )
    visible = rows = _visible(sb, call.account)
    single = get_str(params, "type")
    types = get_list(params, "types")
    if single and types:
        raise invalid_request("You cannot specify both `type` and `types`.", param="types")
    if single:  # `type` may hold a `*` wildcard; `types` takes exact names only
        rows = [e for e in rows if fnmatch.fnmatchcase(e["type"], single)]
    elif types:
        rows = [e for e in rows if e["type"] in types]
    if "delivery_success" in params:
        wanted = get_bool(params, "delivery_success")
        rows = [e for e in rows if (e["pending_webhooks"] == 0) == wanted]
    return paginate(rows, params, "/v1/events", cursors=visible)


def retrieve_event(sb: Sandbox, call: Call) -> Obj:
    check_known(call.params, set())
    event = sb.store.get("event", call.path["id"])
    horizon = sb.clock.timestamp() - sb.settings.event_retention_days * 86_400
    if event["created"] < horizon or event.get("account") != call.account:
        raise missing("event", event["id"])
    return event


ROUTES = [
    ("GET", "/v1/events", list_events, "list:event"),
    ("GET", "/v1/events/{id}", retrieve_event, "event"),
]
