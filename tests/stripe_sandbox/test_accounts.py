"""Connect Express accounts, account links and the hosted onboarding page."""

from __future__ import annotations

import httpx
import pytest
import stripe

from .factories import Control, Receiver


def test_express_account_create_retrieve_update_delete(client: stripe.StripeClient) -> None:
    account = client.v1.accounts.create(
        params={
            "type": "express",
            "country": "GB",
            "email": "m@example.com",
            "capabilities": {"transfers": {"requested": True}},
            "metadata": {"icpay_account_id": "m-1"},
        }
    )
    assert account.id.startswith("acct_")
    assert (account.type, account.country, account.default_currency) == ("express", "GB", "gbp")
    assert (account.charges_enabled, account.payouts_enabled, account.details_submitted) == (
        False,
        False,
        False,
    )
    assert account.requirements is not None and account.requirements.currently_due
    assert client.v1.accounts.retrieve(account.id).email == "m@example.com"
    updated = client.v1.accounts.update(account.id, params={"metadata": {"tier": "gold"}})
    assert updated.metadata is not None
    assert updated.metadata.to_dict() == {"icpay_account_id": "m-1", "tier": "gold"}
    with pytest.raises(stripe.InvalidRequestError) as country:
        client.v1.accounts.update(account.id, params={"country": "US"})  # type: ignore[typeddict-unknown-key]
    assert country.value.param == "country"
    assert [a.id for a in client.v1.accounts.list().data] == [account.id]
    deleted = client.v1.accounts.delete(account.id)
    assert deleted.deleted is True
    with pytest.raises(stripe.PermissionError) as gone:
        client.v1.accounts.retrieve(account.id)
    assert gone.value.http_status == 403
    assert gone.value.json_body is not None
    assert gone.value.json_body["error"]["code"] == "account_invalid"


def test_hosted_onboarding_completes_the_account_and_redirects(
    client: stripe.StripeClient, control: Control, receiver: Receiver
) -> None:
    hook = client.v1.webhook_endpoints.create(
        params={"url": receiver.url, "enabled_events": ["account.updated"], "connect": True}
    )
    account = client.v1.accounts.create(params={"type": "express", "country": "US"})
    link = client.v1.account_links.create(
        params={
            "account": account.id,
            "type": "account_onboarding",
            "refresh_url": "https://icpay.example/refresh",
            "return_url": "https://icpay.example/return",
        }
    )
    assert link.object == "account_link" and link.expires_at > link.created
    with httpx.Client() as browser:
        page = browser.get(link.url)
        assert page.status_code == 200 and "<form" in page.text
        submitted = browser.post(link.url, data={"business_name": "Corner Shop"})
        assert submitted.status_code == 303
        assert submitted.headers["location"] == "https://icpay.example/return"
        again = browser.get(link.url)
        assert again.headers["location"] == "https://icpay.example/refresh"
    done = client.v1.accounts.retrieve(account.id)
    assert (done.details_submitted, done.charges_enabled, done.payouts_enabled) == (
        True,
        True,
        True,
    )
    assert done.requirements is not None and done.requirements.currently_due == []
    assert done.capabilities is not None and done.capabilities.transfers == "active"
    control.flush()
    [delivery] = receiver.received
    event = stripe.Webhook.construct_event(delivery.body, delivery.signature, str(hook.secret))
    assert (event.type, event.account) == ("account.updated", account.id)
    assert event.data.previous_attributes["details_submitted"] is False


def test_expired_account_link_redirects_to_refresh_url(
    client: stripe.StripeClient, control: Control
) -> None:
    account = client.v1.accounts.create(params={"type": "express"})
    link = client.v1.account_links.create(
        params={
            "account": account.id,
            "type": "account_update",
            "refresh_url": "https://icpay.example/refresh",
            "return_url": "https://icpay.example/return",
        }
    )
    control.advance(link.expires_at - link.created + 1)
    with httpx.Client() as browser:
        page = browser.get(link.url)
    assert page.status_code == 303
    assert page.headers["location"] == "https://icpay.example/refresh"
    assert client.v1.accounts.retrieve(account.id).details_submitted is False


def test_account_link_needs_urls_and_a_known_type(client: stripe.StripeClient) -> None:
    account = client.v1.accounts.create(params={"type": "express"})
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.account_links.create(params={"account": account.id, "type": "account_onboarding"})
    assert missing.value.code == "parameter_missing"
    with pytest.raises(stripe.InvalidRequestError) as bad_type:
        client.v1.account_links.create(
            params={
                "account": account.id,
                "type": "nonsense",
                "refresh_url": "https://a.example",
                "return_url": "https://a.example",
            }
        )
    assert bad_type.value.param == "type"


def test_set_requirements_disables_payouts_and_blocks_transfers(
    client: stripe.StripeClient, control: Control
) -> None:
    account = client.v1.accounts.create(params={"type": "express"})
    control.onboard(account.id)
    control.post(
        f"/accounts/{account.id}/requirements",
        {"past_due": ["individual.verification.document"]},
    )
    blocked = client.v1.accounts.retrieve(account.id)
    assert blocked.payouts_enabled is False and blocked.requirements is not None
    assert blocked.requirements.currently_due == ["individual.verification.document"]
    assert blocked.requirements.disabled_reason == "requirements.past_due"
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.transfers.create(
            params={"amount": 1, "currency": "usd", "destination": account.id}
        )
    assert refused.value.code == "insufficient_capabilities_for_transfer"
    control.post(f"/accounts/{account.id}/requirements", {"currently_due": []})
    assert client.v1.accounts.retrieve(account.id).payouts_enabled is True
    # An account's events are listed as that account, never among the platform's.
    assert client.v1.events.list(params={"type": "account.updated"}).data == []
    updates = client.v1.events.list(
        params={"type": "account.updated"}, options={"stripe_account": account.id}
    ).data
    assert len(updates) == 3 and all(e.account == account.id for e in updates)
