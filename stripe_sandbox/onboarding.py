"""Account links and the hosted onboarding page they point to."""

from __future__ import annotations

import html
from importlib import resources
from string import Template
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from .accounts import complete_onboarding, live_account
from .errors import StripeError, invalid_request
from .forms import check_known, decode, require_str
from .state import Sandbox

if TYPE_CHECKING:
    from .api import Call

Obj = dict[str, Any]

LINK_TYPES = ("account_onboarding", "account_update")
PAGE = Template(resources.files(__package__).joinpath("onboarding.html").read_text())


def create_link(sb: Sandbox, call: Call) -> Obj:
    params = call.params
    check_known(
        params,
        {"account", "collect", "collection_options", "refresh_url", "return_url", "type"},
    )
    account_id = require_str(params, "account")
    link_type = require_str(params, "type")
    if link_type not in LINK_TYPES:
        raise invalid_request(f"Invalid type: must be one of {', '.join(LINK_TYPES)}", param="type")
    refresh_url = require_str(params, "refresh_url")
    return_url = require_str(params, "return_url")
    for name, url in (("refresh_url", refresh_url), ("return_url", return_url)):
        if not url.startswith(("http://", "https://")):
            raise invalid_request("Not a valid URL", param=name)
    account = live_account(sb, account_id, param="account", api_key=call.api_key)
    created = sb.clock.timestamp()
    token = sb.ids.token(32)
    link = {
        "object": "account_link",
        "created": created,
        "expires_at": created + sb.settings.account_link_ttl,
        "url": f"{call.base_url.rstrip('/')}/_sandbox/onboarding/{token}",
    }
    sb.private.account_links[token] = {
        "account": account["id"],
        "type": link_type,
        "refresh_url": refresh_url,
        "return_url": return_url,
        "expires_at": link["expires_at"],
        "visited": False,
        "submitted": False,
    }
    return link


def onboarding_endpoint(sb: Sandbox) -> Any:
    """The page behind an account link: GET shows the form once, POST submits it."""

    async def endpoint(request: Request) -> Response:
        body = (await request.body()).decode() if request.method == "POST" else ""
        try:
            form = decode(body)
        except StripeError:
            return HTMLResponse("<h1>This form could not be read.</h1>", status_code=400)
        async with sb.lock:
            sb.tick()
            link = sb.private.account_links.get(request.path_params["token"])
            if link is None:
                return HTMLResponse("<h1>This link is not valid.</h1>", status_code=404)
            account = sb.store.find(link["account"])
            expired = sb.clock.now() > link["expires_at"]
            if account is None or link["submitted"]:
                return RedirectResponse(link["refresh_url"], status_code=303)
            if request.method == "GET":
                # Links are single-use: a second visit, or one after expiry, starts over.
                if link["visited"] or expired:
                    return RedirectResponse(link["refresh_url"], status_code=303)
                link["visited"] = True
                title = (
                    "Set up your payouts"
                    if link["type"] == "account_onboarding"
                    else "Update your account"
                )
                page = PAGE.substitute(
                    title=html.escape(title),
                    account=html.escape(account["id"]),
                    country=html.escape(account["country"]),
                    action=html.escape(request.url.path),
                    business_name=html.escape(account["business_profile"]["name"] or ""),
                )
                return HTMLResponse(page)
            if expired and not link["visited"]:
                return RedirectResponse(link["refresh_url"], status_code=303)
            name = form.get("business_name")
            if isinstance(name, str) and name.strip():
                account["business_profile"]["name"] = name.strip()
            link["submitted"] = True
            complete_onboarding(sb, account)
            return RedirectResponse(link["return_url"], status_code=303)

    return endpoint


ROUTES = [("POST", "/v1/account_links", create_link, "account_link")]
