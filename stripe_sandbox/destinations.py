"""Event destinations (API v2): webhook endpoints that receive thin or snapshot events.

`POST /v2/core/event_destinations` takes a JSON body, as every v2 call does. The signing
secret is shown once, on create, and only when asked for with
`include: ["webhook_endpoint.signing_secret"]`. Delivery itself lives in `delivery.py`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from .errors import invalid_request, missing_parameter
from .forms import Params, check_known
from .thin import iso

if TYPE_CHECKING:
    from .api import Call
    from .state import Sandbox

Obj = dict[str, Any]

DESTINATION_OBJECT = "v2.core.event_destination"
# Stripe's API reference names `self` and `other_accounts`; its object example and the SDK
# (16.x) say `@self` and `@accounts`. Both spellings are taken and echoed as given.
_FROM_SELF = frozenset({"self", "@self"})
_FROM_ACCOUNTS = frozenset({"other_accounts", "@accounts"})
_INCLUDES = frozenset({"webhook_endpoint.signing_secret", "webhook_endpoint.url"})
_EVENT_NAME = re.compile(r"^(\*|[a-z_0-9]+(\.[a-z_0-9]+)+)$")


def _text(params: Params, name: str, *, required: bool = False) -> str | None:
    value = params.get(name)
    if value is None:
        if required:
            raise missing_parameter(name)
        return None
    if not isinstance(value, str) or (required and not value):
        raise invalid_request(f"Invalid string: {name}", param=name)
    return value


def _strings(params: Params, name: str, *, required: bool = False) -> list[str] | None:
    value = params.get(name)
    if value is None:
        if required:
            raise missing_parameter(name)
        return None
    if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        raise invalid_request(f"Invalid array: {name}", param=name)
    return list(value)


def _enabled_events(params: Params) -> list[str]:
    events = _strings(params, "enabled_events", required=True) or []
    if not events:
        raise missing_parameter("enabled_events")
    for index, name in enumerate(events):
        if not _EVENT_NAME.match(name):
            raise invalid_request(f"Invalid event type: {name}", param=f"enabled_events[{index}]")
    return events


def _events_from(params: Params) -> list[str]:
    scopes = _strings(params, "events_from")
    if scopes is None:
        return ["self"]
    if not scopes:
        raise invalid_request("events_from must name at least one scope.", param="events_from")
    for index, scope in enumerate(scopes):
        if scope not in _FROM_SELF | _FROM_ACCOUNTS:
            raise invalid_request(
                f"Invalid events_from: {scope} (use self or other_accounts).",
                param=f"events_from[{index}]",
            )
    return scopes


def _webhook_url(params: Params) -> str:
    config = params.get("webhook_endpoint")
    if config is None:
        raise missing_parameter("webhook_endpoint")
    if not isinstance(config, dict):
        raise invalid_request("Invalid object: webhook_endpoint", param="webhook_endpoint")
    check_known(config, {"url"})
    url = _text(config, "url", required=True)
    assert url is not None
    if not url.startswith(("http://", "https://")):
        raise invalid_request("Invalid URL.", param="webhook_endpoint.url")
    return url


def _metadata(params: Params) -> dict[str, str]:
    value = params.get("metadata") or {}
    if not (isinstance(value, dict) and all(isinstance(v, str) for v in value.values())):
        raise invalid_request("Invalid object: metadata", param="metadata")
    return dict(value)


def receives_from(destination: Obj) -> tuple[bool, bool]:
    """Whether the destination takes the platform's own events, and connected accounts'."""
    scopes = set(destination["events_from"])
    return bool(scopes & _FROM_SELF), bool(scopes & _FROM_ACCOUNTS)


def create_destination(sb: Sandbox, call: Call) -> Obj:
    params = call.params
    check_known(
        params,
        {
            "description",
            "enabled_events",
            "event_payload",
            "events_from",
            "include",
            "metadata",
            "name",
            "snapshot_api_version",
            "type",
            "webhook_endpoint",
        },
    )
    name = _text(params, "name", required=True)
    kind = _text(params, "type", required=True)
    if kind != "webhook_endpoint":
        raise invalid_request(
            "The sandbox delivers only to webhook endpoints (type webhook_endpoint).",
            param="type",
        )
    payload = _text(params, "event_payload", required=True)
    if payload not in ("thin", "snapshot"):
        raise invalid_request("event_payload must be thin or snapshot.", param="event_payload")
    snapshot_version = _text(params, "snapshot_api_version")
    if snapshot_version is not None and payload == "thin":
        raise invalid_request(
            "snapshot_api_version is only for snapshot events.", param="snapshot_api_version"
        )
    events = _enabled_events(params)
    scopes = _events_from(params)
    url = _webhook_url(params)
    includes = _strings(params, "include") or []
    for index, include in enumerate(includes):
        if include not in _INCLUDES:
            raise invalid_request(f"Invalid include: {include}", param=f"include[{index}]")
    description = _text(params, "description") or ""
    metadata = _metadata(params)

    now = iso(sb.clock.timestamp())
    destination: Obj = {
        "id": "ed_test_" + sb.ids.token(40),
        "object": DESTINATION_OBJECT,
        "amazon_eventbridge": None,
        "created": now,
        "description": description,
        "enabled_events": events,
        "event_payload": payload,
        "events_from": scopes,
        "livemode": False,
        "metadata": metadata,
        "name": name,
        "snapshot_api_version": snapshot_version if payload == "snapshot" else None,
        "status": "enabled",
        "status_details": None,
        "type": "webhook_endpoint",
        "updated": now,
        "webhook_endpoint": {"signing_secret": None, "url": url},
    }
    secret = "whsec_" + sb.ids.token(32)
    sb.store.add(destination)
    sb.private.endpoint_secrets[destination["id"]] = secret
    if "webhook_endpoint.signing_secret" in includes:
        return {**destination, "webhook_endpoint": {"signing_secret": secret, "url": url}}
    return destination


def list_destinations(sb: Sandbox, call: Call) -> Obj:
    check_known(call.params, {"include", "limit", "page"})
    rows = list(reversed(sb.store.newest_first(DESTINATION_OBJECT)))  # oldest first
    limit_raw = call.params.get("limit", "20")
    page_raw = call.params.get("page", "0")
    if not (str(limit_raw).isdigit() and 1 <= int(limit_raw) <= 100):
        raise invalid_request("limit must be between 1 and 100.", param="limit")
    if not str(page_raw).isdigit():
        raise invalid_request("Invalid page token.", param="page")
    limit, start = int(limit_raw), int(page_raw)
    page = rows[start : start + limit]
    more = start + limit < len(rows)
    next_url = f"/v2/core/event_destinations?limit={limit}&page={start + limit}" if more else None
    return {"data": page, "next_page_url": next_url, "previous_page_url": None}


def retrieve_destination(sb: Sandbox, call: Call) -> Obj:
    check_known(call.params, {"include"})
    return sb.store.get(DESTINATION_OBJECT, call.path["id"])


def _set_status(sb: Sandbox, call: Call, status: str) -> Obj:
    check_known(call.params, set())
    destination = sb.store.get(DESTINATION_OBJECT, call.path["id"])
    destination["status"] = status
    disabled = status == "disabled"
    destination["status_details"] = {"disabled": {"reason": "user"}} if disabled else None
    destination["updated"] = iso(sb.clock.timestamp())
    return destination


def disable_destination(sb: Sandbox, call: Call) -> Obj:
    return _set_status(sb, call, "disabled")


def enable_destination(sb: Sandbox, call: Call) -> Obj:
    return _set_status(sb, call, "enabled")


def delete_destination(sb: Sandbox, call: Call) -> Obj:
    check_known(call.params, set())
    destination = sb.store.get(DESTINATION_OBJECT, call.path["id"])
    sb.store.remove(destination["id"])
    return {"id": destination["id"], "object": DESTINATION_OBJECT, "deleted": True}


ROUTES = [
    ("POST", "/v2/core/event_destinations", create_destination, DESTINATION_OBJECT),
    ("GET", "/v2/core/event_destinations", list_destinations, "list:" + DESTINATION_OBJECT),
    ("GET", "/v2/core/event_destinations/{id}", retrieve_destination, DESTINATION_OBJECT),
    ("POST", "/v2/core/event_destinations/{id}/disable", disable_destination, DESTINATION_OBJECT),
    ("POST", "/v2/core/event_destinations/{id}/enable", enable_destination, DESTINATION_OBJECT),
    ("DELETE", "/v2/core/event_destinations/{id}", delete_destination, "deleted"),
]
