"""Every object the sandbox returns, checked against Stripe's OpenAPI spec (2023-08-16):
each field the spec marks required is present, and every field the spec knows has its type.

The spec is read in place from ../shared/stripe (never copied into the project).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest
import stripe

from stripe_sandbox import RunningSandbox

from .factories import Control, merchant, pay

SPEC_PATH = Path(__file__).parents[2] / ".." / "shared" / "stripe" / "openapi-spec3-2023-08-16.json"

pytestmark = pytest.mark.skipif(
    not SPEC_PATH.exists(),
    reason=f"CONFORMANCE NOT CHECKED: Stripe's OpenAPI spec is absent at {SPEC_PATH} "
    "(a fresh clone without ../shared); CI always has it",
)

# Where the spec lags the SDK 16.1.0 field list (which wins, per shared/stripe/README.md).
NEWER_ENUM_VALUES = {("payment_intent", "capture_method"): {"automatic_async"}}


@cache
def schemas() -> dict[str, Any]:
    spec = json.loads(SPEC_PATH.read_text())
    result: dict[str, Any] = spec["components"]["schemas"]
    return result


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = schemas()[schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def violations(value: Any, schema: dict[str, Any], path: str, owner: str = "") -> list[str]:
    """What is wrong with `value` against `schema` (empty when it conforms)."""
    if "$ref" in schema:
        owner = schema["$ref"].rsplit("/", 1)[-1]
    schema = _resolve(schema)
    if value is None:
        return [] if schema.get("nullable") else [f"{path}: null but not nullable"]
    if "anyOf" in schema:
        branches = [violations(value, branch, path, owner) for branch in schema["anyOf"]]
        if any(not b for b in branches):
            return []
        return [f"{path}: matches no anyOf branch: {min(branches, key=len)}"]
    kind = schema.get("type")
    if kind == "integer":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind == "number":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif kind == "boolean":
        ok = isinstance(value, bool)
    elif kind == "string":
        ok = isinstance(value, str)
        if ok and "enum" in schema and value not in schema["enum"]:
            field = path.rsplit(".", 1)[-1]
            if value not in NEWER_ENUM_VALUES.get((owner, field), set()):
                return [f"{path}: {value!r} not in {schema['enum']}"]
    elif kind == "array":
        if not isinstance(value, list):
            return [f"{path}: expected array, got {type(value).__name__}"]
        return [
            problem
            for index, item in enumerate(value)
            for problem in violations(item, schema.get("items", {}), f"{path}[{index}]")
        ]
    elif kind == "object" or "properties" in schema:
        if not isinstance(value, dict):
            return [f"{path}: expected object, got {type(value).__name__}"]
        problems = [
            f"{path}.{name}: required but absent"
            for name in schema.get("required", [])
            if name not in value
        ]
        properties = schema.get("properties", {})
        for name, item in value.items():
            if name in properties:
                problems += violations(item, properties[name], f"{path}.{name}", owner)
        return problems
    else:
        ok = True
    return [] if ok else [f"{path}: expected {kind}, got {type(value).__name__} {value!r}"]


def check(obj: dict[str, Any], schema_name: str | None = None) -> list[str]:
    name = schema_name or obj["object"]
    assert name in schemas(), f"no schema for {name}"
    return violations(obj, {"$ref": f"#/components/schemas/{name}"}, name)


def raw(obj: stripe.StripeObject) -> dict[str, Any]:
    assert obj.last_response is not None
    result: dict[str, Any] = json.loads(obj.last_response.body)
    return result


def test_every_object_type_matches_the_spec(
    client: stripe.StripeClient, control: Control, sandbox: RunningSandbox
) -> None:
    returned: list[tuple[dict[str, Any], str | None]] = []

    def keep(obj: stripe.StripeObject, schema: str | None = None) -> Any:
        returned.append((raw(obj), schema))
        return obj

    visa = keep(pay(client, 10_000))
    keep(pay(client, 5_000, "pm_card_bypassPending"))
    refund_fail = keep(pay(client, 3_000, "pm_card_refundFail"))
    with pytest.raises(stripe.CardError) as declined:
        pay(client, 1_000, "pm_card_chargeDeclined")
    assert declined.value.json_body is not None
    returned.append((declined.value.json_body, "error"))
    open_intent = keep(client.v1.payment_intents.create(params={"amount": 900, "currency": "usd"}))
    keep(client.v1.payment_intents.cancel(open_intent.id))
    keep(client.v1.payment_intents.retrieve(visa.id))
    keep(client.v1.charges.retrieve(str(visa.latest_charge)))
    keep(client.v1.refunds.create(params={"payment_intent": visa.id, "amount": 100}))
    failing = keep(client.v1.refunds.create(params={"payment_intent": refund_fail.id}))
    control.advance(3 * 86_400)
    keep(client.v1.refunds.retrieve(failing.id))
    account = merchant(client, control)
    keep(client.v1.accounts.retrieve(account.id))
    fresh = keep(client.v1.accounts.create(params={"type": "express", "country": "US"}))
    keep(
        client.v1.account_links.create(
            params={
                "account": fresh.id,
                "type": "account_onboarding",
                "refresh_url": "https://a.example/r",
                "return_url": "https://a.example/d",
            }
        )
    )
    keep(client.v1.accounts.delete(fresh.id), "deleted_account")
    transfer = keep(
        client.v1.transfers.create(
            params={"amount": 2_000, "currency": "usd", "destination": account.id}
        )
    )
    keep(client.v1.transfers.reversals.create(transfer.id, params={"amount": 500}))
    keep(client.v1.transfers.retrieve(transfer.id))
    keep(client.v1.balance.retrieve())
    endpoint = keep(
        client.v1.webhook_endpoints.create(
            params={"url": "https://a.example/hook", "enabled_events": ["*"]}
        )
    )
    keep(client.v1.webhook_endpoints.delete(endpoint.id), "deleted_webhook_endpoint")
    for listing in (
        client.v1.payment_intents.list(params={"limit": 100}),
        client.v1.charges.list(params={"limit": 100}),
        client.v1.refunds.list(params={"limit": 100}),
        client.v1.transfers.list(params={"limit": 100}),
        client.v1.transfers.reversals.list(transfer.id),
        client.v1.balance_transactions.list(params={"limit": 100}),
        client.v1.accounts.list(params={"limit": 100}),
        client.v1.events.list(params={"limit": 100}),
        client.v1.events.list(params={"limit": 100}, options={"stripe_account": account.id}),
        client.v1.webhook_endpoints.list(),
    ):
        body = raw(listing)
        assert (body["object"], isinstance(body["has_more"], bool)) == ("list", True)
        assert body["url"].startswith("/v1/")
        returned.extend((item, None) for item in body["data"])
    # A deleted account's events can no longer be read through the API (403), only delivered:
    # its `account.application.deauthorized` is taken as the sandbox stored it.
    returned.extend(
        (json.loads(json.dumps(e)), None)
        for e in sandbox.sandbox.store.newest_first("event")
        if e.get("account") == fresh.id
    )
    events = [obj for obj, _ in returned if obj.get("object") == "event"]
    returned.extend((e["data"]["object"], None) for e in events)
    with httpx.Client() as http:
        unauthorized = http.get(f"{client._requestor.base_addresses['api']}/v1/balance")
    returned.append((unauthorized.json(), "error"))

    kinds = {schema or obj["object"] for obj, schema in returned}
    assert kinds >= {
        "payment_intent",
        "charge",
        "refund",
        "transfer",
        "transfer_reversal",
        "balance",
        "balance_transaction",
        "account",
        "account_link",
        "event",
        "webhook_endpoint",
        "deleted_account",
        "deleted_webhook_endpoint",
        "error",
        "application",
    }
    txn_types = {o["type"] for o, _ in returned if o.get("object") == "balance_transaction"}
    assert txn_types >= {"charge", "refund", "refund_failure", "transfer", "transfer_refund"}
    problems = [p for obj, schema in returned for p in check(obj, schema)]
    assert problems == [], "\n".join(problems)


def test_the_checker_itself_catches_missing_and_mistyped_fields() -> None:
    problems = check({"object": "transfer", "id": "tr_1", "amount": "12", "reversed": None})
    assert "transfer.amount: expected integer, got str '12'" in problems
    assert "transfer.reversed: null but not nullable" in problems
    assert "transfer.reversals: required but absent" in problems
