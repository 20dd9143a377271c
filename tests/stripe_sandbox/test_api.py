"""Request handling like Stripe's: keys, errors, idempotency, lists and cursors, expand, faults."""

from __future__ import annotations

import time

import httpx
import pytest
import stripe

from stripe_sandbox import RunningSandbox

from .factories import API_KEY, Control, merchant, pay


def test_missing_or_live_key_is_401(sandbox: RunningSandbox) -> None:
    with httpx.Client(base_url=sandbox.url) as http:
        assert http.get("/v1/balance").status_code == 401
        live = http.get("/v1/balance", headers={"Authorization": "Bearer sk_live_abcdefghijkl"})
        assert live.status_code == 401
        assert live.json()["error"]["type"] == "invalid_request_error"
        ok = http.get(
            "/v1/balance",
            headers={"Authorization": f"Bearer {API_KEY}", "Stripe-Version": "2023-08-16"},
        )
        assert ok.status_code == 200 and ok.headers["Stripe-Version"] == "2023-08-16"
        assert ok.headers["Request-Id"].startswith("req_")
        unknown = http.get("/v1/nothing", headers={"Authorization": f"Bearer {API_KEY}"})
        assert unknown.status_code == 404
        assert "Unrecognized request URL" in unknown.json()["error"]["message"]


def test_bad_key_raises_authentication_error(sandbox: RunningSandbox) -> None:
    http_client = stripe.RequestsClient()
    bad = stripe.StripeClient(
        "sk_live_nope_nope", base_addresses={"api": sandbox.url}, http_client=http_client
    )
    with pytest.raises(stripe.AuthenticationError):
        bad.v1.balance.retrieve()
    http_client.close()


def test_missing_object_is_404_resource_missing(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.payment_intents.retrieve("pi_missing")
    assert missing.value.http_status == 404
    assert missing.value.code == "resource_missing"
    assert "No such payment_intent: 'pi_missing'" in str(missing.value.user_message)


def test_unknown_and_missing_parameters_are_400(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        client.v1.transfers.create(
            params={"amount": 1, "currency": "usd", "destination": "acct_x", "colour": "red"}  # type: ignore[typeddict-unknown-key]
        )
    assert (unknown.value.code, unknown.value.param) == ("parameter_unknown", "colour")
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.payment_intents.create(params={"amount": 1_000})  # type: ignore[typeddict-item]
    assert (missing.value.code, missing.value.param) == ("parameter_missing", "currency")


def test_bracket_form_decoding_over_raw_http(sandbox: RunningSandbox) -> None:
    body = (
        "amount=1200&currency=usd&metadata[order]=o-1&metadata[who]=a%20b"
        "&payment_method_types[]=card&expand[]=latest_charge"
    )
    with httpx.Client(base_url=sandbox.url) as http:
        response = http.post(
            "/v1/payment_intents",
            content=body,
            headers={
                "Authorization": f"Bearer {API_KEY}",
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )
    assert response.status_code == 200, response.text
    intent = response.json()
    assert intent["metadata"] == {"order": "o-1", "who": "a b"}
    assert intent["payment_method_types"] == ["card"]


def test_idempotent_replay_returns_the_first_response_exactly(
    client: stripe.StripeClient, sandbox: RunningSandbox
) -> None:
    params = {"amount": 1_000, "currency": "usd"}
    first = client.v1.payment_intents.create(params=params, options={"idempotency_key": "k-1"})  # type: ignore[arg-type]
    again = client.v1.payment_intents.create(params=params, options={"idempotency_key": "k-1"})  # type: ignore[arg-type]
    assert again.id == first.id
    assert again.last_response is not None
    assert again.last_response.headers["Idempotent-Replayed"] == "true"
    assert again.last_response.body == first.last_response.body  # type: ignore[union-attr]
    assert len(client.v1.payment_intents.list().data) == 1
    assert len(client.v1.events.list().data) == 1
    with pytest.raises(stripe.IdempotencyError) as mismatch:
        client.v1.payment_intents.create(
            params={"amount": 2_000, "currency": "usd"}, options={"idempotency_key": "k-1"}
        )
    assert mismatch.value.http_status == 400
    assert "same parameters" in str(mismatch.value.user_message)


def test_idempotent_replay_includes_errors(client: stripe.StripeClient, control: Control) -> None:
    account = client.v1.accounts.create(params={"type": "express"})
    control.onboard(account.id)
    params = {"amount": 500, "currency": "usd", "destination": account.id}
    for _ in range(2):
        with pytest.raises(stripe.InvalidRequestError) as refused:
            client.v1.transfers.create(params=params, options={"idempotency_key": "payout:1"})  # type: ignore[arg-type]
        assert refused.value.code == "balance_insufficient"
    pay(client, 1_000, "pm_card_bypassPending")
    with pytest.raises(stripe.InvalidRequestError):  # still the saved answer for this key
        client.v1.transfers.create(params=params, options={"idempotency_key": "payout:1"})  # type: ignore[arg-type]
    assert client.v1.transfers.create(params=params, options={"idempotency_key": "payout:2"})  # type: ignore[arg-type]


def test_cursor_pagination_over_250_objects_has_no_gaps_or_repeats(
    client: stripe.StripeClient, control: Control
) -> None:
    created = []
    for i in range(250):
        created.append(
            client.v1.payment_intents.create(params={"amount": 100 + i, "currency": "usd"}).id
        )
        if i % 50 == 49:
            control.advance(60)
    newest_first = list(reversed(created))
    seen: list[str] = []
    page = client.v1.payment_intents.list(params={"limit": 100})
    while True:
        seen.extend(i.id for i in page.data)
        if not page.has_more:
            break
        page = client.v1.payment_intents.list(params={"limit": 100, "starting_after": seen[-1]})
    assert seen == newest_first
    backwards: list[str] = []
    page = client.v1.payment_intents.list(params={"limit": 30, "ending_before": created[-1]})
    assert page.data == [] and page.has_more is False
    cursor = created[0]
    while True:
        page = client.v1.payment_intents.list(params={"limit": 30, "ending_before": cursor})
        backwards = [i.id for i in page.data] + backwards
        if not page.has_more:
            break
        cursor = page.data[0].id
    assert backwards == newest_first[:-1]
    auto = [i.id for i in client.v1.payment_intents.list(params={"limit": 100}).auto_paging_iter()]
    assert auto == newest_first
    assert page.url == "/v1/payment_intents"


def test_created_filters_and_limit_bounds(client: stripe.StripeClient, control: Control) -> None:
    t0 = int(control.get("/state")["now"])
    early = client.v1.payment_intents.create(params={"amount": 100, "currency": "usd"})
    control.advance(100)
    late = client.v1.payment_intents.create(params={"amount": 100, "currency": "usd"})
    ids = lambda p: [i.id for i in client.v1.payment_intents.list(params=p).data]  # noqa: E731
    assert ids({"created": {"gt": t0}}) == [late.id]
    assert ids({"created": {"gte": t0}}) == [late.id, early.id]
    assert ids({"created": {"lt": t0 + 100}}) == [early.id]
    assert ids({"created": {"lte": t0 + 100}}) == [late.id, early.id]
    assert ids({"created": t0}) == [early.id]
    for bad in (0, 101):
        with pytest.raises(stripe.InvalidRequestError) as out_of_range:
            client.v1.payment_intents.list(params={"limit": bad})
        assert out_of_range.value.param == "limit"


def test_expand_nested_and_in_lists(client: stripe.StripeClient) -> None:
    intent = pay(client, 1_000)
    got = client.v1.payment_intents.retrieve(
        intent.id, params={"expand": ["latest_charge.balance_transaction"]}
    )
    assert isinstance(got.latest_charge, stripe.Charge)
    assert isinstance(got.latest_charge.balance_transaction, stripe.BalanceTransaction)
    listed = client.v1.charges.list(params={"expand": ["data.balance_transaction"]})
    assert isinstance(listed.data[0].balance_transaction, stripe.BalanceTransaction)
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.payment_intents.retrieve(intent.id, params={"expand": ["amount"]})


def test_expand_into_the_items_of_an_embedded_list(
    client: stripe.StripeClient, control: Control
) -> None:
    pay(client, 10_000, "pm_card_bypassPending")
    transfer = client.v1.transfers.create(
        params={"amount": 3_000, "currency": "usd", "destination": merchant(client, control).id}
    )
    reversal = client.v1.transfers.reversals.create(transfer.id, params={"amount": 500})
    [listed] = client.v1.transfers.list(
        params={"expand": ["data.balance_transaction", "data.reversals.data.balance_transaction"]}
    ).data
    assert listed.balance_transaction.amount == -3_000
    [expanded] = listed.reversals.data
    assert expanded.id == reversal.id
    assert (expanded.balance_transaction.id, expanded.balance_transaction.amount) == (
        reversal.balance_transaction,
        500,
    )
    for bad in ("data.reversals.balance_transaction", "data.reversals.data.amount"):
        with pytest.raises(stripe.InvalidRequestError):
            client.v1.transfers.list(params={"expand": [bad]})


def test_api_faults_answer_429_500_then_recover(
    client: stripe.StripeClient, control: Control
) -> None:
    control.fault("api", kind="rate_limit", count=1)
    with pytest.raises(stripe.RateLimitError) as limited:
        client.v1.balance.retrieve()
    assert limited.value.http_status == 429
    assert limited.value.json_body is not None
    assert limited.value.json_body["error"]["code"] == "rate_limit"
    control.fault("api", kind="server_error", count=2, path="/v1/payment_intents")
    client.v1.balance.retrieve()  # other paths are unaffected
    with pytest.raises(stripe.APIError):
        client.v1.payment_intents.list()
    with pytest.raises(stripe.APIError):
        client.v1.payment_intents.list()
    assert client.v1.payment_intents.list().data == []


def test_a_429_carries_retry_after_only_when_the_fault_asks_for_it(
    client: stripe.StripeClient, control: Control
) -> None:
    control.fault("api", kind="rate_limit", count=1)
    with pytest.raises(stripe.RateLimitError) as plain:
        client.v1.balance.retrieve()
    assert "retry-after" not in {name.lower() for name in plain.value.headers or {}}
    control.fault("api", kind="rate_limit", count=1, seconds=1.5)
    with pytest.raises(stripe.RateLimitError) as told:
        client.v1.balance.retrieve()
    assert (told.value.headers or {}).get("retry-after") == "2"  # whole seconds, rounded up


def test_the_request_log_keeps_every_api_call_with_its_arrival_and_answer(
    client: stripe.StripeClient, control: Control
) -> None:
    before = time.time()
    client.v1.balance.retrieve()
    control.fault("api", kind="rate_limit", count=1)
    with pytest.raises(stripe.RateLimitError):
        client.v1.payment_intents.list()
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.refunds.retrieve("re_missing")
    control.get("/state")  # the control surface is not an API call
    logged = control.get("/requests")["data"]
    assert [(e["method"], e["path"], e["status"]) for e in logged] == [
        ("GET", "/v1/balance", 200),
        ("GET", "/v1/payment_intents", 429),
        ("GET", "/v1/refunds/re_missing", 404),
    ]
    arrivals = [entry["at"] for entry in logged]
    assert before <= arrivals[0] <= arrivals[1] <= arrivals[2] <= time.time()
    assert control.request("DELETE", "/requests").json() == {"data": []}
    assert control.get("/requests")["data"] == []


def test_sdk_retries_a_500_with_the_same_idempotency_key(
    sandbox: RunningSandbox, control: Control
) -> None:
    http_client = stripe.RequestsClient()
    retrying = stripe.StripeClient(
        API_KEY,
        base_addresses={"api": sandbox.url},
        http_client=http_client,
        max_network_retries=2,
    )
    stripe_sleep = stripe.RequestsClient._sleep_time_seconds
    stripe.RequestsClient._sleep_time_seconds = lambda self, n: 0.01  # type: ignore[method-assign,assignment]
    try:
        control.fault("api", kind="server_error", count=1, method="POST", execute=True)
        intent = retrying.v1.payment_intents.create(params={"amount": 1_000, "currency": "usd"})
    finally:
        stripe.RequestsClient._sleep_time_seconds = stripe_sleep  # type: ignore[method-assign]
        http_client.close()
    # The call ran once; the retry got the saved result rather than a second PaymentIntent.
    with httpx.Client(base_url=sandbox.url) as http:
        listed = http.get(
            "/v1/payment_intents", headers={"Authorization": f"Bearer {API_KEY}"}
        ).json()
    assert [i["id"] for i in listed["data"]] == [intent.id]


def test_hang_fault_times_out_the_client_and_a_retry_replays(
    sandbox: RunningSandbox, control: Control, client: stripe.StripeClient
) -> None:
    http_client = stripe.RequestsClient(timeout=0.3)
    impatient = stripe.StripeClient(
        API_KEY, base_addresses={"api": sandbox.url}, http_client=http_client, max_network_retries=0
    )
    control.fault(
        "api", kind="hang", count=1, seconds=1.0, execute=True, path="/v1/payment_intents"
    )
    with pytest.raises(stripe.APIConnectionError):
        impatient.v1.payment_intents.create(
            params={"amount": 1_000, "currency": "usd"}, options={"idempotency_key": "pay:9"}
        )
    http_client.close()
    again = client.v1.payment_intents.create(
        params={"amount": 1_000, "currency": "usd"}, options={"idempotency_key": "pay:9"}
    )
    assert [i.id for i in client.v1.payment_intents.list().data] == [again.id]
