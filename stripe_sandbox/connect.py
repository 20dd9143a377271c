"""A connected account's state as Stripe decides it: capabilities, requirements, the flags
that follow from them, and what a platform may still do once the account is disconnected.

The account JSON is derived (`refresh`) from what the sandbox knows privately: the statuses a
test gave capabilities, whether payouts are paused, and the requirements. Rules, from Stripe's
docs (see docs/sandbox.md for the pages):

- a non-null `requirements.disabled_reason` (past-due requirements set it to
  `requirements.past_due`) switches every capability off, and charges and payouts with them;
- when an account has both `card_payments` and `transfers` and either is `inactive`, both are;
- `charges_enabled` follows `card_payments` being `active`; `payouts_enabled` needs submitted
  details, an external account, no disabled reason and payouts not paused.
"""

from __future__ import annotations

import copy
from typing import Any

from .errors import StripeError, invalid_request
from .state import Sandbox

Obj = dict[str, Any]

CAPABILITY_STATUSES = ("active", "inactive", "pending")
DISABLED_REASONS = (
    "action_required.requested_capabilities",
    "listed",
    "other",
    "platform_paused",
    "rejected.fraud",
    "rejected.incomplete_verification",
    "rejected.listed",
    "rejected.other",
    "rejected.platform_fraud",
    "rejected.platform_other",
    "rejected.platform_terms_of_service",
    "rejected.terms_of_service",
    "requirements.past_due",
    "requirements.pending_verification",
    "under_review",
)
REQUIREMENT_LISTS = ("currently_due", "eventually_due", "past_due", "pending_verification")
COUPLED = ("card_payments", "transfers")


def requirements(
    currently_due: list[str] | None = None,
    *,
    past_due: list[str] | None = None,
    eventually_due: list[str] | None = None,
    pending_verification: list[str] | None = None,
    current_deadline: int | None = None,
    disabled_reason: str | None = None,
    errors: list[Obj] | None = None,
) -> Obj:
    """A `requirements` (or `future_requirements`) hash: past-due items are also currently
    due, and currently due items are also eventually due, as Stripe lists them."""
    past = _unique(past_due or [])
    current = _unique([*(currently_due or []), *past])
    eventually = _unique([*(eventually_due or []), *current])
    if disabled_reason is None and past:
        disabled_reason = "requirements.past_due"
    return {
        "alternatives": [],
        "current_deadline": current_deadline,
        "currently_due": current,
        "disabled_reason": disabled_reason,
        "errors": list(errors or []),
        "eventually_due": eventually,
        "past_due": past,
        "pending_verification": _unique(pending_verification or []),
    }


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def refresh(sb: Sandbox, account: Obj) -> None:
    """Derive capabilities and the three flags from the account's private state."""
    own = sb.private.capability_status.get(account["id"], {})
    disabled = account["requirements"]["disabled_reason"] is not None
    default = "active" if account["details_submitted"] else "inactive"
    capabilities = {
        name: "inactive" if disabled else own.get(name, default)
        for name in sorted(account["capabilities"])
    }
    if all(name in capabilities for name in COUPLED) and any(
        capabilities[name] == "inactive" for name in COUPLED
    ):
        capabilities.update(dict.fromkeys(COUPLED, "inactive"))
    account["capabilities"] = capabilities
    account["charges_enabled"] = capabilities.get("card_payments") == "active"
    account["payouts_enabled"] = (
        account["details_submitted"]
        and not disabled
        and account["external_accounts"]["total_count"] > 0
        and account["id"] not in sb.private.payouts_paused
    )


def announce(sb: Sandbox, account: Obj, before: Obj) -> None:
    """Emit `account.updated` (to Connect endpoints) if anything changed; its
    `previous_attributes` hold the changed fields' old values, nested ones included."""
    previous = _changed(before, account)
    if previous:
        sb.emit("account.updated", account, account=account["id"], previous=previous)


def _changed(old: Obj, new: Obj) -> Obj:
    previous: Obj = {}
    for key, value in old.items():
        now = new.get(key)
        if now == value:
            continue
        if isinstance(value, dict) and isinstance(now, dict) and value.get("object") is None:
            previous[key] = {**_changed(value, now), **{k: None for k in now.keys() - value}}
        else:
            previous[key] = copy.deepcopy(value)
    return previous


def test_bank_account(account: Obj) -> Obj:
    """The bank account hosted onboarding collects (Stripe's test routing and account
    numbers); its id is made from the account's so that no random id is drawn."""
    return {
        "id": f"ba_{account['id'][len('acct_') :]}00000000",
        "object": "bank_account",
        "account": account["id"],
        "account_holder_name": None,
        "account_holder_type": None,
        "account_type": None,
        "available_payout_methods": ["standard"],
        "bank_name": "STRIPE TEST BANK",
        "country": account["country"],
        "currency": account["default_currency"],
        "default_for_currency": True,
        "fingerprint": None,
        "last4": "6789",
        "metadata": {},
        "routing_number": "110000000",
        "status": "new",
    }


# What a platform may still do once an account is disconnected or deleted.


def redact_key(api_key: str) -> str:
    return api_key[:8] + "*" * max(0, len(api_key) - 12) + api_key[-4:]


def no_access(account_id: str, api_key: str | None) -> StripeError:
    """Stripe's answer to a request for an account the key cannot reach (any more)."""
    key = f" '{redact_key(api_key)}'" if api_key else ""
    return StripeError(
        403,
        "invalid_request_error",
        f"The provided key{key} does not have access to account '{account_id}' (or that "
        "account does not exist). Application access may have been revoked.",
        code="account_invalid",
    )


def check_access(sb: Sandbox, account_id: str, api_key: str | None) -> None:
    """Refuse a request made as, or about, an account that is no longer connected."""
    if account_id in sb.private.revoked_accounts:
        raise no_access(account_id, api_key)
    found = sb.store.find(account_id)
    if found is None or found.get("object") != "account":
        raise no_access(account_id, api_key)


def revoke(sb: Sandbox, account: Obj, reason: str) -> Obj:
    """Disconnect the account (`deauthorized` or `deleted`): the platform no longer sees it,
    and `account.application.deauthorized` goes to the Connect endpoints. Events already
    made are still delivered; the platform's own records about it (transfers, reversals,
    balance transactions) stay."""
    sb.store.remove(account["id"])
    sb.private.revoked_accounts[account["id"]] = reason
    sb.private.capability_status.pop(account["id"], None)
    sb.private.payouts_paused.discard(account["id"])
    application = {"id": "ca_sandbox", "object": "application", "name": "ICPay sandbox"}
    return sb.emit("account.application.deauthorized", application, account=account["id"])


# Validation of the control routes' bodies: everything is checked before anything changes.


def string_list(body: Obj, name: str) -> list[str] | None:
    value = body.get(name)
    if value is None:
        return None
    if not (isinstance(value, list) and all(isinstance(v, str) and v for v in value)):
        raise invalid_request(f"`{name}` must be a list of strings.", param=name)
    return list(value)


def optional_timestamp(body: Obj, name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise invalid_request(f"`{name}` must be a Unix timestamp.", param=name)
    return value


def disabled_reason(body: Obj, name: str = "disabled_reason") -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if value not in DISABLED_REASONS:
        raise invalid_request(f"`{name}` must be one of {', '.join(DISABLED_REASONS)}.", param=name)
    return str(value)


def requirement_errors(body: Obj, name: str = "errors") -> list[Obj]:
    value = body.get(name)
    if value is None:
        return []
    keys = {"code", "reason", "requirement"}
    if not isinstance(value, list) or not all(
        isinstance(e, dict) and set(e) == keys and all(isinstance(e[k], str) for k in keys)
        for e in value
    ):
        raise invalid_request(
            f"`{name}` must be a list of {{code, reason, requirement}} strings.", param=name
        )
    return [dict(e) for e in value]


def capability_statuses(account: Obj, body: Obj) -> dict[str, str]:
    given = body.get("capabilities")
    if not isinstance(given, dict) or not given:
        raise invalid_request(
            "`capabilities` must map capability names to active, inactive or pending.",
            param="capabilities",
        )
    for name, status in given.items():
        if name not in account["capabilities"]:
            raise invalid_request(
                f"The account has not requested the `{name}` capability.",
                param=f"capabilities[{name}]",
            )
        if status not in CAPABILITY_STATUSES:
            raise invalid_request(
                f"`capabilities[{name}]` must be one of {', '.join(CAPABILITY_STATUSES)}.",
                param=f"capabilities[{name}]",
            )
    return dict(given)


def schedule_deadline(sb: Sandbox, account_id: str, deadline: int) -> None:
    """At `current_deadline`, requirements still currently due become past due."""

    def job() -> None:
        account = sb.store.find(account_id)
        if account is None or account.get("object") != "account":
            return
        due = account["requirements"]
        if due["current_deadline"] != deadline or not set(due["currently_due"]) - set(
            due["past_due"]
        ):
            return
        before = copy.deepcopy(account)
        account["requirements"] = requirements(
            due["currently_due"],
            past_due=due["currently_due"],
            eventually_due=due["eventually_due"],
            pending_verification=due["pending_verification"],
            current_deadline=deadline,
            disabled_reason=due["disabled_reason"],
            errors=due["errors"],
        )
        refresh(sb, account)
        announce(sb, account, before)

    sb.schedule(deadline, job)
