"""Connect Express accounts: create, retrieve, list, update, delete; onboarding state."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from .connect import announce, no_access, refresh, requirements, revoke, test_bank_account
from .errors import invalid_request, missing_parameter
from .forms import Params, check_known, get_dict, get_str, metadata_update
from .state import Sandbox
from .store import paginate

if TYPE_CHECKING:
    from .api import Call

Obj = dict[str, Any]

COUNTRY_CURRENCY = {
    "US": "usd",
    "CA": "cad",
    "GB": "gbp",
    "AU": "aud",
    "JP": "jpy",
    "CH": "chf",
    "SE": "sek",
    "NO": "nok",
    "DK": "dkk",
    "DE": "eur",
    "FR": "eur",
    "IE": "eur",
    "NL": "eur",
    "ES": "eur",
    "IT": "eur",
    "BE": "eur",
    "AT": "eur",
    "FI": "eur",
    "PT": "eur",
}
INITIAL_REQUIREMENTS = [
    "business_profile.mcc",
    "business_profile.url",
    "business_type",
    "external_account",
    "representative.first_name",
    "representative.last_name",
    "tos_acceptance.date",
    "tos_acceptance.ip",
]
CREATE_PARAMS = {
    "account_token",
    "business_profile",
    "business_type",
    "capabilities",
    "company",
    "controller",
    "country",
    "default_currency",
    "documents",
    "email",
    "external_account",
    "groups",
    "individual",
    "metadata",
    "settings",
    "tos_acceptance",
    "type",
}
UPDATE_PARAMS = CREATE_PARAMS - {"controller", "country", "type"}
BUSINESS_TYPES = ("company", "government_entity", "individual", "non_profit")
BUSINESS_PROFILE_FIELDS = (
    "mcc",
    "name",
    "product_description",
    "support_email",
    "support_phone",
    "support_url",
    "url",
)


def _business_profile(params: Params) -> Obj:
    given = get_dict(params, "business_profile")
    profile: Obj = {
        "annual_revenue": None,
        "estimated_worker_count": None,
        "support_address": None,
    }
    for name in BUSINESS_PROFILE_FIELDS:
        profile[name] = get_str(given, name)
    return profile


def create_account(sb: Sandbox, call: Call) -> Obj:
    params = call.params
    check_known(params, CREATE_PARAMS)
    account_type = get_str(params, "type")
    if account_type is None and "controller" not in params:
        raise missing_parameter("type")
    if account_type not in (None, "express", "custom", "standard"):
        raise invalid_request(
            "Invalid type: must be one of custom, express, or standard", param="type"
        )
    country = (get_str(params, "country") or "US").upper()
    if country not in COUNTRY_CURRENCY:
        raise invalid_request(
            f"Country '{country}' is unknown. Try using a 2-character alphanumeric country "
            "code instead, such as 'US', 'EG', or 'GB'.",
            param="country",
        )
    # Stripe asks Express platforms to request both; the sandbox does it when none are named.
    requested = _requested_capabilities(params) or ["card_payments", "transfers"]
    business_profile = _business_profile(params)
    business_type = _business_type(params)
    default_currency = _default_currency(params) or COUNTRY_CURRENCY[country]
    email = get_str(params, "email")
    metadata = metadata_update({}, params)

    account_id = sb.ids.new("acct", 16)
    account: Obj = {
        "id": account_id,
        "object": "account",
        "business_profile": business_profile,
        "business_type": business_type,
        "capabilities": {name: "inactive" for name in sorted(requested)},
        "charges_enabled": False,
        "controller": {
            "fees": {"payer": "application"},
            "is_controller": True,
            "losses": {"payments": "application"},
            "requirement_collection": "stripe",
            "stripe_dashboard": {"type": "express"},
            "type": "application",
        },
        "country": country,
        "created": sb.clock.timestamp(),
        "default_currency": default_currency,
        "details_submitted": False,
        "email": email,
        "external_accounts": {
            "object": "list",
            "data": [],
            "has_more": False,
            "total_count": 0,
            "url": f"/v1/accounts/{account_id}/external_accounts",
        },
        "future_requirements": requirements(),
        "metadata": metadata,
        "payouts_enabled": False,
        "requirements": requirements(past_due=INITIAL_REQUIREMENTS),
        "settings": _settings(),
        "tos_acceptance": {"date": None, "ip": None, "user_agent": None},
        "type": account_type or "express",
    }
    refresh(sb, account)
    sb.store.add(account)
    return account


def _business_type(params: Params) -> str | None:
    value = get_str(params, "business_type") or None
    if value is not None and value not in BUSINESS_TYPES:
        raise invalid_request(
            f"Invalid business_type: must be one of {', '.join(BUSINESS_TYPES)}",
            param="business_type",
        )
    return value


def _default_currency(params: Params) -> str | None:
    value = get_str(params, "default_currency")
    if value is None:
        return None
    if value.lower() not in set(COUNTRY_CURRENCY.values()):
        raise invalid_request(f"Invalid currency: {value}.", param="default_currency")
    return value.lower()


def _requested_capabilities(params: Params) -> list[str]:
    requested = []
    for name, value in get_dict(params, "capabilities").items():
        if not isinstance(value, dict) or value.get("requested") not in ("true", "false"):
            raise invalid_request(
                "Invalid capabilities: each needs requested=true|false",
                param=f"capabilities[{name}]",
            )
        if value["requested"] == "true":
            requested.append(name)
    return requested


def _settings() -> Obj:
    return {
        "branding": {"icon": None, "logo": None, "primary_color": None, "secondary_color": None},
        "card_issuing": {"tos_acceptance": {"date": None, "ip": None}},
        "card_payments": {
            "decline_on": {"avs_failure": False, "cvc_failure": False},
            "statement_descriptor_prefix": None,
            "statement_descriptor_prefix_kana": None,
            "statement_descriptor_prefix_kanji": None,
        },
        "dashboard": {"display_name": None, "timezone": "Etc/UTC"},
        "payments": {
            "statement_descriptor": None,
            "statement_descriptor_kana": None,
            "statement_descriptor_kanji": None,
        },
        "payouts": {
            "debit_negative_balances": True,
            "schedule": {"delay_days": 2, "interval": "daily"},
            "statement_descriptor": None,
        },
        "sepa_debit_payments": {},
    }


def live_account(
    sb: Sandbox, account_id: str, *, param: str | None = None, api_key: str | None = None
) -> Obj:
    """A connected account; one the platform lost answers as Stripe does (403
    `account_invalid`), an id never made `resource_missing`."""
    if account_id in sb.private.revoked_accounts:
        raise no_access(account_id, api_key)
    return sb.store.get("account", account_id, param=param)


def retrieve_account(sb: Sandbox, call: Call) -> Obj:
    check_known(call.params, set())
    return live_account(sb, call.path["id"], api_key=call.api_key)


def list_accounts(sb: Sandbox, call: Call) -> Obj:
    check_known(call.params, {"created", "ending_before", "limit", "starting_after"})
    return paginate(sb.store.newest_first("account"), call.params, "/v1/accounts")


def update_account(sb: Sandbox, call: Call) -> Obj:
    params = call.params
    check_known(params, UPDATE_PARAMS)
    account = live_account(sb, call.path["id"], api_key=call.api_key)
    changes: Obj = {"metadata": metadata_update(account["metadata"], params)}
    if "email" in params:
        changes["email"] = get_str(params, "email") or None
    if "business_type" in params:
        changes["business_type"] = _business_type(params)
    if "default_currency" in params:
        changes["default_currency"] = _default_currency(params) or account["default_currency"]
    profile = dict(account["business_profile"])
    given = get_dict(params, "business_profile")
    for name in BUSINESS_PROFILE_FIELDS:
        if name in given:
            profile[name] = get_str(given, name) or None
    changes["business_profile"] = profile
    capabilities = dict(account["capabilities"])
    for name in _requested_capabilities(params):
        capabilities.setdefault(name, "inactive")
    changes["capabilities"] = capabilities

    before = copy.deepcopy(account)
    account.update(changes)
    refresh(sb, account)
    announce(sb, account, before)
    return account


def complete_onboarding(sb: Sandbox, account: Obj) -> None:
    """What submitting Stripe's hosted onboarding does to an Express account."""
    before = copy.deepcopy(account)
    profile = account["business_profile"]
    profile["mcc"] = profile["mcc"] or "5734"
    profile["url"] = profile["url"] or "https://merchant.example"
    account["business_type"] = account["business_type"] or "individual"
    account["tos_acceptance"] = {
        "date": sb.clock.timestamp(),
        "ip": "127.0.0.1",
        "user_agent": "stripe-sandbox",
    }
    account["details_submitted"] = True
    if not account["external_accounts"]["data"]:
        account["external_accounts"] = {
            **account["external_accounts"],
            "data": [test_bank_account(account)],
            "total_count": 1,
        }
    # A submitted form answers everything: a fully enabled account, whatever was set before.
    sb.private.capability_status.pop(account["id"], None)
    sb.private.payouts_paused.discard(account["id"])
    account["requirements"] = requirements()
    refresh(sb, account)
    announce(sb, account, before)


def delete_account(sb: Sandbox, call: Call) -> Obj:
    check_known(call.params, set())
    account = live_account(sb, call.path["id"], api_key=call.api_key)
    revoke(sb, account, "deleted")
    return {"id": account["id"], "object": "account", "deleted": True}


ROUTES = [
    ("POST", "/v1/accounts", create_account, "account"),
    ("GET", "/v1/accounts", list_accounts, "list:account"),
    ("GET", "/v1/accounts/{id}", retrieve_account, "account"),
    ("POST", "/v1/accounts/{id}", update_account, "account"),
    ("DELETE", "/v1/accounts/{id}", delete_account, "deleted"),
]
