"""Connected accounts as Stripe decides them: capabilities, requirements and flags moving
separately, transfers needing `transfers` active, and accounts the platform lost."""

from __future__ import annotations

from typing import Any

import pytest
import stripe

from .factories import Control, Receiver, merchant, pay

DOCUMENT = "individual.verification.document"


def flags(account: Any) -> tuple[bool, bool, bool]:
    return (account.charges_enabled, account.payouts_enabled, account.details_submitted)


def transfer(client: stripe.StripeClient, destination: str, amount: int = 1_000) -> Any:
    return client.v1.transfers.create(
        params={"amount": amount, "currency": "usd", "destination": destination}
    )


def connect_hook(client: stripe.StripeClient, receiver: Receiver) -> str:
    hook = client.v1.webhook_endpoints.create(
        params={"url": f"{receiver.url}/connect", "enabled_events": ["*"], "connect": True}
    )
    return str(hook.secret)


def test_new_account_requests_capabilities_and_is_off_until_onboarded(
    client: stripe.StripeClient, control: Control
) -> None:
    account = client.v1.accounts.create(
        params={
            "type": "express",
            "capabilities": {
                "card_payments": {"requested": True},
                "transfers": {"requested": True},
            },
        }
    )
    assert account.capabilities is not None
    assert account.capabilities.to_dict() == {"card_payments": "inactive", "transfers": "inactive"}
    assert flags(account) == (False, False, False)
    assert account.requirements is not None and account.future_requirements is not None
    requirements = account.requirements.to_dict()
    assert sorted(requirements) == [
        "alternatives",
        "current_deadline",
        "currently_due",
        "disabled_reason",
        "errors",
        "eventually_due",
        "past_due",
        "pending_verification",
    ]
    assert requirements["disabled_reason"] == "requirements.past_due"
    assert "external_account" in requirements["currently_due"]
    assert sorted(account.future_requirements.to_dict()) == sorted(requirements)
    done = stripe.Account.construct_from(control.onboard(account.id), "k")
    assert done.capabilities is not None
    assert done.capabilities.to_dict() == {"card_payments": "active", "transfers": "active"}
    assert flags(done) == (True, True, True)
    assert done.external_accounts is not None and done.external_accounts.total_count == 1


def test_transfer_needs_the_transfers_capability_active(
    client: stripe.StripeClient, control: Control
) -> None:
    pay(client, 10_000, "pm_card_bypassPending")
    account = merchant(client, control)
    control.post(f"/accounts/{account.id}/capabilities", {"capabilities": {"transfers": "pending"}})
    with pytest.raises(stripe.InvalidRequestError) as refused:
        transfer(client, account.id)
    assert refused.value.http_status == 400
    assert refused.value.json_body is not None
    assert refused.value.json_body["error"] == {
        "type": "invalid_request_error",
        "code": "insufficient_capabilities_for_transfer",
        "doc_url": "https://stripe.com/docs/error-codes/insufficient-capabilities-for-transfer",
        "message": "Your destination account needs to have at least one of the following "
        "capabilities enabled: transfers, crypto_transfers, legacy_payments",
        "param": "destination",
        "request_log_url": refused.value.json_body["error"]["request_log_url"],
    }
    # Charges do not matter: only `transfers` being active does.
    back = control.post(
        f"/accounts/{account.id}/capabilities", {"capabilities": {"transfers": "active"}}
    )
    assert back["capabilities"]["transfers"] == "active"
    assert transfer(client, account.id).destination == account.id


def test_transfers_active_with_payouts_disabled_and_the_reverse(
    client: stripe.StripeClient, control: Control
) -> None:
    pay(client, 10_000, "pm_card_bypassPending")
    account = client.v1.accounts.create(
        params={"type": "express", "capabilities": {"transfers": {"requested": True}}}
    )
    control.onboard(account.id)
    paused = control.post(f"/accounts/{account.id}/payouts", {"enabled": False})
    assert (paused["capabilities"], paused["payouts_enabled"]) == ({"transfers": "active"}, False)
    assert paused["charges_enabled"] is False  # no card_payments requested
    assert transfer(client, account.id).amount == 1_000

    control.post(f"/accounts/{account.id}/payouts", {"enabled": True})
    reverse = control.post(
        f"/accounts/{account.id}/capabilities", {"capabilities": {"transfers": "inactive"}}
    )
    assert (reverse["capabilities"], reverse["payouts_enabled"]) == (
        {"transfers": "inactive"},
        True,
    )
    with pytest.raises(stripe.InvalidRequestError) as refused:
        transfer(client, account.id)
    assert refused.value.code == "insufficient_capabilities_for_transfer"


def test_card_payments_and_transfers_are_switched_off_together(
    client: stripe.StripeClient, control: Control
) -> None:
    account = merchant(client, control)  # both requested by default
    off = control.post(
        f"/accounts/{account.id}/capabilities", {"capabilities": {"card_payments": "inactive"}}
    )
    assert off["capabilities"] == {"card_payments": "inactive", "transfers": "inactive"}
    assert (off["charges_enabled"], off["payouts_enabled"]) == (False, True)
    pending = control.post(
        f"/accounts/{account.id}/capabilities", {"capabilities": {"card_payments": "pending"}}
    )
    assert pending["capabilities"] == {"card_payments": "pending", "transfers": "active"}
    assert pending["charges_enabled"] is False


def test_currently_due_keeps_the_account_on_until_the_deadline_passes(
    client: stripe.StripeClient, control: Control, receiver: Receiver
) -> None:
    secret = connect_hook(client, receiver)
    account = merchant(client, control)
    now = int(control.get("/state")["now"])
    due = control.post(
        f"/accounts/{account.id}/requirements",
        {"currently_due": [DOCUMENT], "current_deadline": now + 3_600},
    )
    assert due["requirements"]["currently_due"] == [DOCUMENT]
    assert due["requirements"]["eventually_due"] == [DOCUMENT]
    assert (due["requirements"]["past_due"], due["requirements"]["disabled_reason"]) == ([], None)
    assert (due["charges_enabled"], due["payouts_enabled"]) == (True, True)

    control.advance(3_600)
    late = client.v1.accounts.retrieve(account.id)
    assert late.requirements is not None
    assert late.requirements.past_due == [DOCUMENT]
    assert late.requirements.disabled_reason == "requirements.past_due"
    assert flags(late) == (False, False, True)
    assert late.capabilities is not None
    assert late.capabilities.to_dict() == {"card_payments": "inactive", "transfers": "inactive"}

    control.flush()
    updates = [
        stripe.Webhook.construct_event(r.body, r.signature, secret)
        for r in receiver.received
        if r.event["type"] == "account.updated"
    ]
    [went_late] = [e for e in updates if e.data.object.requirements.past_due == [DOCUMENT]]
    assert (went_late.account, went_late.request.id) == (account.id, None)
    previous = went_late.data.previous_attributes
    assert previous["requirements"]["past_due"] == []
    assert previous["requirements"]["disabled_reason"] is None
    assert previous["charges_enabled"] is True and previous["payouts_enabled"] is True
    assert previous["capabilities"].to_dict() == {"card_payments": "active", "transfers": "active"}


def test_requirements_past_due_with_a_reason_and_back(
    client: stripe.StripeClient, control: Control
) -> None:
    account = merchant(client, control)
    body = {
        "past_due": [DOCUMENT],
        "disabled_reason": "requirements.pending_verification",
        "pending_verification": ["individual.id_number"],
        "errors": [
            {
                "code": "verification_document_expired",
                "reason": "The document has expired.",
                "requirement": DOCUMENT,
            }
        ],
        "future_requirements": {"eventually_due": ["company.tax_id"]},
    }
    off = control.post(f"/accounts/{account.id}/requirements", body)
    assert off["requirements"]["disabled_reason"] == "requirements.pending_verification"
    assert off["requirements"]["errors"][0]["code"] == "verification_document_expired"
    assert off["future_requirements"]["eventually_due"] == ["company.tax_id"]
    assert off["future_requirements"]["disabled_reason"] is None
    assert (off["charges_enabled"], off["payouts_enabled"]) == (False, False)
    on = control.post(f"/accounts/{account.id}/requirements", {})
    assert (on["charges_enabled"], on["payouts_enabled"]) == (True, True)
    assert on["capabilities"] == {"card_payments": "active", "transfers": "active"}


def test_onboarding_enables_everything_whatever_was_set(
    client: stripe.StripeClient, control: Control
) -> None:
    account = merchant(client, control)
    control.post(f"/accounts/{account.id}/payouts", {"enabled": False})
    control.post(f"/accounts/{account.id}/capabilities", {"capabilities": {"transfers": "pending"}})
    control.post(f"/accounts/{account.id}/requirements", {"past_due": [DOCUMENT]})
    again = control.onboard(account.id)
    assert again["capabilities"] == {"card_payments": "active", "transfers": "active"}
    assert (again["charges_enabled"], again["payouts_enabled"]) == (True, True)
    assert again["requirements"]["currently_due"] == []


def no_access(exc: pytest.ExceptionInfo[stripe.StripeError], account_id: str) -> None:
    assert isinstance(exc.value, stripe.PermissionError)
    assert exc.value.http_status == 403 and exc.value.json_body is not None
    error = exc.value.json_body["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", "account_invalid")
    assert error["message"] == (
        "The provided key 'sk_test_**************0000' does not have access to account "
        f"'{account_id}' (or that account does not exist). Application access may have been "
        "revoked."
    )


@pytest.mark.parametrize("how", ["deauthorize", "delete"])
def test_a_lost_account_answers_access_revoked_while_platform_records_stay(
    how: str, client: stripe.StripeClient, control: Control, receiver: Receiver
) -> None:
    secret = connect_hook(client, receiver)
    receiver.statuses = [500]  # the onboarding's account.updated fails once: retried later
    pay(client, 10_000, "pm_card_bypassPending")
    account = merchant(client, control)
    sent = transfer(client, account.id, 3_000)
    reversal = client.v1.transfers.reversals.create(sent.id, params={"amount": 500})
    control.flush()
    if how == "delete":
        assert client.v1.accounts.delete(account.id).deleted is True
    else:
        answer = control.post(f"/accounts/{account.id}/deauthorize")
        assert answer["deauthorized"] is True

    with pytest.raises(stripe.PermissionError) as retrieved:
        client.v1.accounts.retrieve(account.id)
    no_access(retrieved, account.id)
    with pytest.raises(stripe.PermissionError) as as_account:
        client.v1.events.list(options={"stripe_account": account.id})
    no_access(as_account, account.id)
    with pytest.raises(stripe.PermissionError) as again:
        client.v1.accounts.delete(account.id)
    no_access(again, account.id)
    with pytest.raises(stripe.InvalidRequestError) as to_it:
        transfer(client, account.id)
    assert (to_it.value.code, to_it.value.param) == ("resource_missing", "destination")
    assert client.v1.accounts.list().data == []

    # The platform's own records about it remain readable.
    assert client.v1.transfers.retrieve(sent.id).destination == account.id
    assert [t.id for t in client.v1.transfers.list(params={"destination": account.id}).data] == [
        sent.id
    ]
    assert client.v1.transfers.reversals.retrieve(sent.id, reversal.id).amount == 500
    assert client.v1.balance_transactions.retrieve(str(sent.balance_transaction)).amount == -3_000

    # Its events, the deauthorization and the retried one included, still arrive.
    control.flush(everything=True)
    delivered = [
        stripe.Webhook.construct_event(r.body, r.signature, secret) for r in receiver.received
    ]
    assert [e.type for e in delivered].count("account.updated") == 2  # first try, then retry
    [gone] = [e for e in delivered if e.type == "account.application.deauthorized"]
    assert gone.account == account.id and gone.data.object.object == "application"


def test_control_routes_refuse_a_lost_account(
    client: stripe.StripeClient, control: Control
) -> None:
    account = merchant(client, control)
    control.post(f"/accounts/{account.id}/deauthorize")
    answer = control.request("POST", f"/accounts/{account.id}/payouts", {"enabled": False})
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "account_invalid"
