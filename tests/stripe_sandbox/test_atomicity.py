"""A refused request changes nothing, as at Stripe: every endpoint validates, then acts.

Each case sends one endpoint (through the real stripe SDK, or the control surface over HTTP)
a bad parameter and compares the sandbox's whole state before and after: objects of every
kind (events and balance transactions included), the balance, private bookkeeping (payment
methods, return URLs, the refund queue), scheduled jobs, webhook deliveries, faults, clock.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import stripe

from stripe_sandbox import RunningSandbox
from stripe_sandbox.money import balance_object
from stripe_sandbox.state import Sandbox

from .factories import Control, Receiver, merchant, pay

Error = tuple[int, dict[str, Any]]


def p(**params: Any) -> Any:
    """SDK parameters as sent, bad values included (the SDK's TypedDicts would refuse them)."""
    return params


@dataclass
class World:
    """A sandbox with one object of each kind in a known state."""

    client: stripe.StripeClient
    control: Control
    paid: str  # a succeeded PaymentIntent, its funds available
    charge: str
    open_intent: str  # requires_payment_method, automatic payment methods
    refund: str  # succeeded
    account: str  # onboarded
    fresh_account: str  # not onboarded
    transfer: str
    endpoint: str


@pytest.fixture
def world(client: stripe.StripeClient, control: Control, receiver: Receiver) -> Iterator[World]:
    endpoint = client.v1.webhook_endpoints.create(
        params={"url": f"{receiver.url}/hook", "enabled_events": ["*"]}
    )
    client.v1.webhook_endpoints.create(
        params={"url": f"{receiver.url}/connect", "enabled_events": ["*"], "connect": True}
    )
    paid = pay(client, 10_000, "pm_card_bypassPending")
    open_intent = client.v1.payment_intents.create(params={"amount": 2_000, "currency": "usd"})
    refund = client.v1.refunds.create(params={"payment_intent": paid.id, "amount": 1_000})
    account = merchant(client, control)
    fresh = client.v1.accounts.create(params={"type": "express", "country": "US"})
    transfer = client.v1.transfers.create(
        params={"amount": 3_000, "currency": "usd", "destination": account.id}
    )
    client.v1.transfers.reversals.create(transfer.id, params={"amount": 500})
    control.flush()  # nothing left in flight: the background worker has nothing to change
    yield World(
        client=client,
        control=control,
        paid=paid.id,
        charge=str(paid.latest_charge),
        open_intent=open_intent.id,
        refund=refund.id,
        account=account.id,
        fresh_account=fresh.id,
        transfer=transfer.id,
        endpoint=endpoint.id,
    )


def snapshot(sb: Sandbox) -> dict[str, Any]:
    """Everything a request could change, deep-copied (read while the sandbox is idle)."""
    return copy.deepcopy(
        {
            "objects": {
                kind: {obj["id"]: obj for obj in sb.store.newest_first(kind) if "id" in obj}
                for kind in sb.store.kinds()
            },
            "balance": balance_object(sb),
            "pending_transactions": sb.pending_transactions,
            "private": dataclasses.asdict(sb.private),
            "jobs_due": sorted(due for due, _, _ in sb._jobs),
            "deliveries": [d.as_dict() for d in sb.deliveries.items],
            "faults": [f.as_dict() for f in (*sb.faults.delivery, *sb.faults.api)],
            "clock": sb.clock.now(),
        }
    )


def differences(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """What changed, by object id, for a readable failure."""
    found = []
    kinds = before["objects"].keys() | after["objects"].keys()
    for kind in sorted(kinds):
        old, new = before["objects"].get(kind, {}), after["objects"].get(kind, {})
        found += [f"new {kind} {i}" for i in new.keys() - old.keys()]
        found += [f"removed {kind} {i}" for i in old.keys() - new.keys()]
        for object_id in old.keys() & new.keys():
            changed = [k for k in old[object_id].keys() | new[object_id].keys()
                       if old[object_id].get(k) != new[object_id].get(k)]  # fmt: skip
            if changed:
                found.append(f"changed {kind} {object_id}: {sorted(changed)}")
    found += [name for name in before if name != "objects" and before[name] != after[name]]
    return found


def sdk(call: Callable[[], object]) -> Error:
    try:
        call()
    except stripe.StripeError as exc:
        body: dict[str, Any] = exc.json_body if isinstance(exc.json_body, dict) else {}
        return exc.http_status or 0, body.get("error", {})
    pytest.fail("the sandbox accepted the call")


def control(w: World, method: str, path: str, body: Any = None, raw: bytes = b"") -> Error:
    response = w.control.request(method, path, body, raw=raw)
    if response.status_code == 200:
        pytest.fail(f"the sandbox accepted the call: {response.text[:200]}")
    error = response.json().get("error", {}) if response.status_code < 500 else {}
    return response.status_code, error


LONG_KEY = "k" * 41  # Stripe's metadata keys stop at 40 characters
MD = {"touched": "yes"}  # a valid change sent along with the bad one, which must not land


@dataclass
class Case:
    id: str
    send: Callable[[World], Error]
    param: str | None
    status: int = 400
    code: str | None = None


CASES = [
    # PaymentIntents
    Case(
        "pi_create_return_url_without_confirm",
        lambda w: sdk(
            lambda: w.client.v1.payment_intents.create(
                params=p(amount=1_000, currency="usd", return_url="https://shop.example/done")
            )
        ),
        "return_url",
    ),
    Case(
        "pi_create_confirm_not_a_boolean",
        lambda w: sdk(
            lambda: w.client.v1.payment_intents.create(
                params=p(
                    amount=1_000,
                    currency="usd",
                    payment_method="pm_card_visa",
                    payment_method_types=["card"],
                    confirm="maybe",
                )
            )
        ),
        "confirm",
    ),
    Case(
        "pi_create_confirm_redirects_without_return_url",
        lambda w: sdk(
            lambda: w.client.v1.payment_intents.create(
                params=p(amount=1_000, currency="usd", payment_method="pm_card_visa", confirm=True)
            )
        ),
        None,
    ),
    Case(
        "pi_create_bad_expand",
        lambda w: sdk(
            lambda: w.client.v1.payment_intents.create(
                params=p(amount=1_000, currency="usd", expand=["colour"])
            )
        ),
        "expand",
    ),
    Case(
        "pi_create_amount_too_small",
        lambda w: sdk(
            lambda: w.client.v1.payment_intents.create(params=p(amount=10, currency="usd"))
        ),
        "amount",
        code="amount_too_small",
    ),
    Case(
        "pi_update_amount_too_small",
        lambda w: sdk(
            lambda: w.client.v1.payment_intents.update(
                w.open_intent, params=p(metadata=MD, amount=10)
            )
        ),
        "amount",
        code="amount_too_small",
    ),
    Case(
        "pi_update_amount_not_an_integer",
        lambda w: sdk(
            lambda: w.client.v1.payment_intents.update(
                w.open_intent, params=p(metadata=MD, description="new", amount="12.5")
            )
        ),
        "amount",
        code="parameter_invalid_integer",
    ),
    Case(
        "pi_update_bad_currency",
        lambda w: sdk(
            lambda: w.client.v1.payment_intents.update(
                w.open_intent, params=p(metadata=MD, currency="xyz")
            )
        ),
        "currency",
    ),
    Case(
        "pi_update_unknown_payment_method",
        lambda w: sdk(
            lambda: w.client.v1.payment_intents.update(
                w.open_intent, params=p(description="new", payment_method="pm_card_nope")
            )
        ),
        "payment_method",
        code="resource_missing",
    ),
    Case(
        "pi_update_amount_of_succeeded",
        lambda w: sdk(
            lambda: w.client.v1.payment_intents.update(w.paid, params=p(metadata=MD, amount=2_000))
        ),
        None,
        code="payment_intent_unexpected_state",
    ),
    Case(
        "pi_confirm_redirects_without_return_url",
        lambda w: sdk(
            lambda: w.client.v1.payment_intents.confirm(
                w.open_intent, params=p(payment_method="pm_card_visa")
            )
        ),
        None,
    ),
    Case(
        "pi_confirm_succeeded_with_return_url",
        lambda w: sdk(
            lambda: w.client.v1.payment_intents.confirm(
                w.paid, params=p(return_url="https://shop.example/again")
            )
        ),
        None,
        code="payment_intent_unexpected_state",
    ),
    Case(
        "pi_cancel_bad_reason",
        lambda w: sdk(
            lambda: w.client.v1.payment_intents.cancel(
                w.open_intent, params=p(cancellation_reason="bored")
            )
        ),
        "cancellation_reason",
    ),
    Case(
        "pi_cancel_succeeded",
        lambda w: sdk(lambda: w.client.v1.payment_intents.cancel(w.paid)),
        None,
        code="payment_intent_unexpected_state",
    ),
    # Charges
    Case(
        "charge_update_description_not_a_string",
        lambda w: sdk(
            lambda: w.client.v1.charges.update(
                w.charge, params=p(metadata=MD, description={"a": "b"})
            )
        ),
        "description",
    ),
    Case(
        "charge_update_unknown_customer",
        lambda w: sdk(
            lambda: w.client.v1.charges.update(w.charge, params=p(metadata=MD, customer="cus_x"))
        ),
        "customer",
        code="resource_missing",
    ),
    # Refunds
    Case(
        "refund_create_more_than_remains",
        lambda w: sdk(
            lambda: w.client.v1.refunds.create(params=p(payment_intent=w.paid, amount=99_999))
        ),
        "amount",
        code="amount_too_large",
    ),
    Case(
        "refund_create_bad_metadata",
        lambda w: sdk(
            lambda: w.client.v1.refunds.create(
                params=p(payment_intent=w.paid, amount=100, metadata={LONG_KEY: "v"})
            )
        ),
        f"metadata[{LONG_KEY}]",
    ),
    Case(
        "refund_update_bad_metadata",
        lambda w: sdk(
            lambda: w.client.v1.refunds.update(w.refund, params=p(metadata={"k": "v" * 501}))
        ),
        "metadata[k]",
    ),
    Case(
        "refund_cancel_succeeded",
        lambda w: sdk(lambda: w.client.v1.refunds.cancel(w.refund)),
        None,
    ),
    # Transfers and reversals
    Case(
        "transfer_create_bad_metadata",
        lambda w: sdk(
            lambda: w.client.v1.transfers.create(
                params=p(
                    amount=1_000, currency="usd", destination=w.account, metadata={LONG_KEY: "v"}
                )
            )
        ),
        f"metadata[{LONG_KEY}]",
    ),
    Case(
        "transfer_create_bad_source_type",
        lambda w: sdk(
            lambda: w.client.v1.transfers.create(
                params=p(amount=1_000, currency="usd", destination=w.account, source_type="cheque")
            )
        ),
        "source_type",
    ),
    Case(
        "transfer_create_insufficient_funds",
        lambda w: sdk(
            lambda: w.client.v1.transfers.create(
                params=p(amount=1_000_000, currency="usd", destination=w.account)
            )
        ),
        None,
        code="balance_insufficient",
    ),
    Case(
        "transfer_update_description_not_a_string",
        lambda w: sdk(
            lambda: w.client.v1.transfers.update(
                w.transfer, params=p(metadata=MD, description={"a": "b"})
            )
        ),
        "description",
    ),
    Case(
        "reversal_create_bad_metadata",
        lambda w: sdk(
            lambda: w.client.v1.transfers.reversals.create(
                w.transfer, params=p(amount=100, metadata={LONG_KEY: "v"})
            )
        ),
        f"metadata[{LONG_KEY}]",
    ),
    Case(
        "reversal_create_more_than_remains",
        lambda w: sdk(
            lambda: w.client.v1.transfers.reversals.create(w.transfer, params=p(amount=99_999))
        ),
        "amount",
    ),
    # Accounts and account links
    Case(
        "account_create_bad_business_type",
        lambda w: sdk(
            lambda: w.client.v1.accounts.create(params=p(type="express", business_type="alien"))
        ),
        "business_type",
    ),
    Case(
        "account_update_bad_capability",
        lambda w: sdk(
            lambda: w.client.v1.accounts.update(
                w.account,
                params=p(
                    metadata=MD,
                    email="new@example.com",
                    capabilities={"card_payments": {"requested": "maybe"}},
                ),
            )
        ),
        "capabilities[card_payments]",
    ),
    Case(
        "account_delete_unknown",
        lambda w: sdk(lambda: w.client.v1.accounts.delete("acct_nope")),
        "id",
        status=404,
        code="resource_missing",
    ),
    Case(
        "account_link_bad_url",
        lambda w: sdk(
            lambda: w.client.v1.account_links.create(
                params=p(
                    account=w.fresh_account,
                    type="account_onboarding",
                    refresh_url="not a url",
                    return_url="https://icpay.example/return",
                )
            )
        ),
        "refresh_url",
    ),
    # Webhook endpoints
    Case(
        "webhook_create_connect_not_a_boolean",
        lambda w: sdk(
            lambda: w.client.v1.webhook_endpoints.create(
                params=p(url="https://icpay.example/h", enabled_events=["*"], connect="maybe")
            )
        ),
        "connect",
    ),
    Case(
        "webhook_update_pattern_in_enabled_events",
        lambda w: sdk(
            lambda: w.client.v1.webhook_endpoints.update(
                w.endpoint, params=p(url="https://moved.example/h", enabled_events=["charge.*"])
            )
        ),
        "enabled_events[0]",
    ),
    # Reads
    Case(
        "balance_transactions_unknown_payout",
        lambda w: sdk(lambda: w.client.v1.balance_transactions.list(params=p(payout="po_nope"))),
        "payout",
        code="resource_missing",
    ),
    Case(
        "events_list_bad_limit",
        lambda w: sdk(lambda: w.client.v1.events.list(params=p(limit=0))),
        "limit",
    ),
    Case(
        "balance_unknown_parameter",
        lambda w: sdk(lambda: w.client.v1.balance.retrieve(params=p(colour="red"))),
        "colour",
        code="parameter_unknown",
    ),
    # The control surface
    Case(
        "control_clock_advance_not_finite",
        lambda w: control(w, "POST", "/clock/advance", raw=b'{"seconds": NaN}'),
        "seconds",
    ),
    Case(
        "control_dashboard_refund_unknown_key",
        lambda w: control(
            w, "POST", "/dashboard/refunds", {"payment_intent": w.paid, "ammount": 500}
        ),
        "ammount",
        code="parameter_unknown",
    ),
    Case(
        "control_dashboard_refund_amount_not_an_integer",
        lambda w: control(
            w, "POST", "/dashboard/refunds", {"payment_intent": w.paid, "amount": True}
        ),
        "amount",
        code="parameter_invalid_integer",
    ),
    Case(
        "control_dashboard_cancel_refund_unknown_key",
        lambda w: control(w, "POST", f"/dashboard/refunds/{w.refund}/cancel", {"now": True}),
        "now",
        code="parameter_unknown",
    ),
    Case(
        "control_dashboard_cancel_refund_unknown_refund",
        lambda w: control(w, "POST", "/dashboard/refunds/re_nope/cancel"),
        "id",
        status=404,
        code="resource_missing",
    ),
    Case(
        "control_top_up_amount_not_an_integer",
        lambda w: control(w, "POST", "/balance/top_up", {"amount": 5.5, "currency": "usd"}),
        "amount",
        code="parameter_invalid_integer",
    ),
    Case(
        "control_top_up_amount_not_positive",
        lambda w: control(w, "POST", "/balance/top_up", {"amount": -100, "currency": "usd"}),
        "amount",
    ),
    Case(
        "control_top_up_bad_currency",
        lambda w: control(w, "POST", "/balance/top_up", {"amount": 100, "currency": "xyz"}),
        "currency",
    ),
    Case(
        "control_top_up_without_currency",
        lambda w: control(w, "POST", "/balance/top_up", {"amount": 100}),
        "currency",
        code="parameter_missing",
    ),
    Case(
        "control_dashboard_reversal_bad_metadata",
        lambda w: control(
            w,
            "POST",
            f"/dashboard/transfers/{w.transfer}/reversals",
            {"amount": 100, "metadata": {"k": 5}},
        ),
        "metadata[k]",
    ),
    Case(
        "control_requirements_bad_disabled_reason",
        lambda w: control(
            w,
            "POST",
            f"/accounts/{w.account}/requirements",
            {"currently_due": ["individual.id_number"], "disabled_reason": 5},
        ),
        "disabled_reason",
    ),
    Case(
        "control_requirements_unknown_disabled_reason",
        lambda w: control(
            w,
            "POST",
            f"/accounts/{w.account}/requirements",
            {"past_due": ["individual.id_number"], "disabled_reason": "bored"},
        ),
        "disabled_reason",
    ),
    Case(
        "control_requirements_deadline_already_passed",
        lambda w: control(
            w,
            "POST",
            f"/accounts/{w.account}/requirements",
            {"currently_due": ["individual.id_number"], "current_deadline": 1},
        ),
        "current_deadline",
    ),
    Case(
        "control_requirements_future_past_due",
        lambda w: control(
            w,
            "POST",
            f"/accounts/{w.account}/requirements",
            {"currently_due": ["individual.id_number"], "future_requirements": {"past_due": ["x"]}},
        ),
        "future_requirements[past_due]",
        code="parameter_unknown",
    ),
    Case(
        "control_capabilities_unknown_status",
        lambda w: control(
            w, "POST", f"/accounts/{w.account}/capabilities", {"capabilities": {"transfers": "on"}}
        ),
        "capabilities[transfers]",
    ),
    Case(
        "control_capabilities_not_requested",
        lambda w: control(
            w,
            "POST",
            f"/accounts/{w.account}/capabilities",
            {"capabilities": {"transfers": "inactive", "legacy_payments": "active"}},
        ),
        "capabilities[legacy_payments]",
    ),
    Case(
        "control_payouts_enabled_not_a_boolean",
        lambda w: control(w, "POST", f"/accounts/{w.account}/payouts", {"enabled": "no"}),
        "enabled",
    ),
    Case(
        "control_deauthorize_unknown_key",
        lambda w: control(w, "POST", f"/accounts/{w.account}/deauthorize", {"now": True}),
        "now",
        code="parameter_unknown",
    ),
    Case(
        "control_deauthorize_unknown_account",
        lambda w: control(w, "POST", "/accounts/acct_nope/deauthorize"),
        "id",
        status=404,
        code="resource_missing",
    ),
    Case(
        "events_list_as_an_account_not_connected",
        lambda w: sdk(lambda: w.client.v1.events.list(options={"stripe_account": "acct_nope"})),
        None,
        status=403,
        code="account_invalid",
    ),
    Case(
        "control_onboarding_unknown_account",
        lambda w: control(w, "POST", "/accounts/acct_nope/onboarding"),
        "id",
        status=404,
        code="resource_missing",
    ),
    Case(
        "control_flush_all_not_a_boolean",
        lambda w: control(w, "POST", "/deliveries/flush", {"all": "yes"}),
        "all",
    ),
    Case(
        "control_fault_unknown_target",
        lambda w: control(w, "POST", "/faults/everything", {"kind": "rate_limit", "count": 1}),
        "target",
        status=404,
    ),
    Case(
        "control_fault_method_not_a_string",
        lambda w: control(
            w, "POST", "/faults/api", {"kind": "rate_limit", "count": 1, "method": 5}
        ),
        "method",
    ),
    Case(
        "control_fault_key_of_the_other_target",
        lambda w: control(
            w, "POST", "/faults/deliveries", {"kind": "drop", "count": 1, "execute": True}
        ),
        "execute",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_refused_request_changes_nothing(case: Case, world: World, sandbox: RunningSandbox) -> None:
    before = snapshot(sandbox.sandbox)
    status, error = case.send(world)
    after = snapshot(sandbox.sandbox)
    assert (status, error.get("type"), error.get("param")) == (
        case.status,
        "invalid_request_error",
        case.param,
    ), error
    if case.code is not None:
        assert error.get("code") == case.code, error
    assert differences(before, after) == []
    assert before == after


def test_refused_request_replayed_under_its_key_still_changes_nothing(
    world: World, sandbox: RunningSandbox
) -> None:
    bad = p(amount=1_000, currency="usd", return_url="https://shop.example/done")
    before = snapshot(sandbox.sandbox)
    answers = []
    for _ in range(2):
        with pytest.raises(stripe.InvalidRequestError) as refused:
            world.client.v1.payment_intents.create(params=bad, options={"idempotency_key": "k1"})
        answers.append(refused.value.json_body)
    assert answers[0] == answers[1]
    assert differences(before, snapshot(sandbox.sandbox)) == []
    # The snapshot does see changes: an accepted call shows up in it.
    fixed = world.client.v1.payment_intents.create(
        params=p(amount=1_000, currency="usd"), options={"idempotency_key": "k2"}
    )
    changed = differences(before, snapshot(sandbox.sandbox))
    assert f"new payment_intent {fixed.id}" in changed and "deliveries" in changed


def _refused_cancel(w: World, refund_id: str) -> str:
    status, error = control(w, "POST", f"/dashboard/refunds/{refund_id}/cancel")
    assert (status, error.get("type"), error.get("param")) == (400, "invalid_request_error", None)
    return str(error["message"])


def test_refused_dashboard_cancel_changes_nothing(world: World, sandbox: RunningSandbox) -> None:
    world.control.advance(1_800)  # world.refund succeeded at the start: its window has closed
    before = snapshot(sandbox.sandbox)
    assert "window" in _refused_cancel(world, world.refund)
    assert differences(before, snapshot(sandbox.sandbox)) == []

    fresh = world.client.v1.refunds.create(params={"payment_intent": world.paid, "amount": 100})
    world.control.post(f"/dashboard/refunds/{fresh.id}/cancel")
    world.control.flush()
    before = snapshot(sandbox.sandbox)
    assert "status of canceled" in _refused_cancel(world, fresh.id)
    assert differences(before, snapshot(sandbox.sandbox)) == []
