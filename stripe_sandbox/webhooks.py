"""Webhook endpoints: create (the only time the `whsec_` secret is shown), list, update,
delete. Delivery itself lives in `delivery.py`."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from .errors import invalid_request, missing_parameter
from .forms import Params, check_known, get_bool, get_list, get_str, metadata_update, require_str
from .state import Sandbox
from .store import paginate

if TYPE_CHECKING:
    from .api import Call

Obj = dict[str, Any]

# Stripe takes `*` or exact event names; a pattern such as `charge.*` is refused.
_EVENT_PATTERN = re.compile(r"^(\*|[a-z_0-9]+(\.[a-z_0-9]+)+)$")


def _enabled_events(params: Params, *, required: bool) -> list[str] | None:
    if "enabled_events" not in params:
        if required:
            raise missing_parameter("enabled_events")
        return None
    events = get_list(params, "enabled_events")
    if not events:
        raise missing_parameter("enabled_events")
    for index, name in enumerate(events):
        if not _EVENT_PATTERN.match(name):
            raise invalid_request(f"Invalid event type: {name}", param=f"enabled_events[{index}]")
    return events


def _url(params: Params) -> str:
    url = require_str(params, "url")
    if not url.startswith(("http://", "https://")):
        raise invalid_request("Invalid URL: URL must be publicly accessible.", param="url")
    return url


def create_endpoint(sb: Sandbox, call: Call) -> Obj:
    params = call.params
    check_known(
        params, {"api_version", "connect", "description", "enabled_events", "metadata", "url"}
    )
    url = _url(params)
    events = _enabled_events(params, required=True)
    api_version = get_str(params, "api_version") or None
    description = get_str(params, "description")
    metadata = metadata_update({}, params)
    connect = get_bool(params, "connect")

    endpoint_id = sb.ids.new("we")
    secret = "whsec_" + sb.ids.token(32)
    endpoint: Obj = {
        "id": endpoint_id,
        "object": "webhook_endpoint",
        "api_version": api_version,
        "application": None,
        "created": sb.clock.timestamp(),
        "description": description,
        "enabled_events": events,
        "livemode": False,
        "metadata": metadata,
        "status": "enabled",
        "url": url,
    }
    sb.store.add(endpoint)
    sb.private.endpoint_secrets[endpoint_id] = secret
    if connect:
        sb.private.connect_endpoints.add(endpoint_id)
    return {**endpoint, "secret": secret}


def list_endpoints(sb: Sandbox, call: Call) -> Obj:
    check_known(call.params, {"ending_before", "limit", "starting_after"})
    return paginate(sb.store.newest_first("webhook_endpoint"), call.params, "/v1/webhook_endpoints")


def retrieve_endpoint(sb: Sandbox, call: Call) -> Obj:
    check_known(call.params, set())
    return sb.store.get("webhook_endpoint", call.path["id"])


def update_endpoint(sb: Sandbox, call: Call) -> Obj:
    params = call.params
    check_known(params, {"description", "disabled", "enabled_events", "metadata", "url"})
    endpoint = sb.store.get("webhook_endpoint", call.path["id"])
    changes: Obj = {"metadata": metadata_update(endpoint["metadata"], params)}
    if "url" in params:
        changes["url"] = _url(params)
    events = _enabled_events(params, required=False)
    if events is not None:
        changes["enabled_events"] = events
    if "description" in params:
        changes["description"] = get_str(params, "description") or None
    if "disabled" in params:
        changes["status"] = "disabled" if get_bool(params, "disabled") else "enabled"
    endpoint.update(changes)
    return endpoint


def delete_endpoint(sb: Sandbox, call: Call) -> Obj:
    check_known(call.params, set())
    endpoint = sb.store.get("webhook_endpoint", call.path["id"])
    sb.store.remove(endpoint["id"])
    sb.private.connect_endpoints.discard(endpoint["id"])
    return {"id": endpoint["id"], "object": "webhook_endpoint", "deleted": True}


ROUTES = [
    ("POST", "/v1/webhook_endpoints", create_endpoint, "webhook_endpoint"),
    ("GET", "/v1/webhook_endpoints", list_endpoints, "list:webhook_endpoint"),
    ("GET", "/v1/webhook_endpoints/{id}", retrieve_endpoint, "webhook_endpoint"),
    ("POST", "/v1/webhook_endpoints/{id}", update_endpoint, "webhook_endpoint"),
    ("DELETE", "/v1/webhook_endpoints/{id}", delete_endpoint, "deleted"),
]
