"""Payouts through the API and the sandbox: accepted, executed once, refused for a reason."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx

from reconciler.apply import apply_object
from reconciler.apply.context import ApplyContext
from reconciler.errors import ConnectNotReady, InsufficientBalance, InsufficientPlatformBalance
from reconciler.ledger.balances import check_balance_invariant, merchant_balance
from reconciler.ledger.payouts import advance_payout, reserve_payout
from reconciler.ledger.requests import RequestKey
from reconciler.ledger.rows import Payment
from reconciler.ledger.session import ledger_reader, ledger_session
from reconciler.money import FeeSchedule
from reconciler.paths.payouts import Asked
from reconciler.types import utcnow
from tests.handlers.api.conftest import Api
from tests.handlers.api.test_connect import connect, walk_onboarding


def onboarded(api: Api) -> tuple[int, str]:
    """A merchant whose Express account is onboarded (as the hosted page leaves it)."""
    operator = api.token("operator")
    account = api.account(operator)
    _, onboarding = connect(api, operator, account)
    walk_onboarding(onboarding["url"])
    status, state = api.call(
        "GET", f"/accounts/{account}/stripe/connect", operator, params={"refresh": "true"}
    )
    assert status == 200 and state["connect"]["status"] == "enabled"
    return account, state["stripe_account_id"]


def pay(api: Api, account: int, amount: int, card: str = "pm_card_bypassPending") -> int:
    """A customer pays the merchant `amount`, and the ledger hears of it (as webhooks do).
    Returns the payment's id."""
    intent = api.stripe.v1.payment_intents.create(
        params={
            "amount": amount,
            "currency": "usd",
            "payment_method": card,
            "payment_method_types": ["card"],
            "confirm": True,
            "metadata": {"icpay_account_id": str(account)},
        }
    )
    context = ApplyContext(db=api.runtime.database, stripe=api.runtime.gateway, fees=FeeSchedule())

    async def apply() -> int:
        await apply_object(context, await api.runtime.gateway.payment_intent(intent.id))
        async with ledger_reader(api.runtime.database) as tx:
            payment = await tx.find(Payment, "payment_intent_id", intent.id)
        assert payment is not None
        return payment.id

    return int(api.run(apply))


def payout(
    api: Api, token: str, account: int, amount: int, key: str, **extra: Any
) -> tuple[int, Any]:
    body = {"account_id": account, "amount": amount, "currency": "usd", **extra}
    response = api.client.post(
        "/api/v1/payouts",
        json=body,
        headers={"authorization": f"Bearer {token}", "idempotency-key": key},
    )
    return response.status_code, response.json()


def balance(api: Api, account: int) -> int:
    async def read() -> int:
        async with ledger_reader(api.runtime.database) as tx:
            assert await check_balance_invariant(tx) == []
            return await merchant_balance(tx, account, "usd")

    return int(api.run(read))


def transfers(api: Api, destination: str) -> list[Any]:
    return list(
        api.stripe.v1.transfers.list(params={"destination": destination, "limit": 100}).data
    )


def test_a_payout_is_made_once_and_a_repeat_answers_with_it(api: Api) -> None:
    account, stripe_account = onboarded(api)
    pay(api, account, 10000)
    merchant = api.token("merchant", account)

    status, made = payout(api, merchant, account, 4000, "po-1")
    assert status == 201, made
    assert made["status"] == "completed" and made["stripe_transfer_id"].startswith("tr_")
    assert (made["amount"], made["currency"], made["ledger"], made["destination"]) == (
        4000,
        "usd",
        "stripe_usd",
        stripe_account,
    )
    [transfer] = transfers(api, stripe_account)
    assert (transfer.id, transfer.amount, transfer.metadata["icpay_payout_id"]) == (
        made["stripe_transfer_id"],
        4000,
        str(made["id"]),
    )
    assert balance(api, account) == 6000

    again = payout(api, merchant, account, 4000, "po-1")
    assert again == (200, made)
    status, conflict = payout(api, merchant, account, 4500, "po-1")
    assert (status, conflict["error"]["code"]) == (409, "idempotency_conflict")
    assert len(transfers(api, stripe_account)) == 1 and balance(api, account) == 6000

    assert api.call("GET", f"/payouts/{made['id']}", merchant) == (200, made)
    status, listed = api.call("GET", "/payouts", merchant, params={"status": "completed"})
    assert status == 200 and [item["id"] for item in listed["data"]] == [made["id"]]


def test_refusals_say_why_and_leave_nothing(api: Api) -> None:
    operator = api.token("operator")
    unconnected = api.account(operator, "Nobody")
    status, body = payout(api, operator, unconnected, 100, "k1")
    assert (status, body["error"]["code"]) == (409, "connect_not_ready")
    assert "http://127.0.0.1:3000/settings" in body["error"]["message"]

    account, _ = onboarded(api)
    pay(api, account, 5000)
    status, body = payout(api, operator, account, 5001, "k2")
    assert (status, body["error"]["code"]) == (409, "insufficient_merchant_balance")
    status, body = payout(api, operator, account, 100, "k3", ledger="stripe_eur")
    assert (status, body["error"]["code"], body["error"]["param"]) == (
        400,
        "invalid_request",
        "ledger",
    )
    response = api.client.post(
        "/api/v1/payouts",
        json={"account_id": account, "amount": 100, "currency": "usd"},
        headers={"authorization": f"Bearer {operator}"},
    )
    assert (response.status_code, response.json()["error"]["param"]) == (400, "Idempotency-Key")
    for amount in (0, -5, 10.5, "100"):
        status, body = payout(api, operator, account, amount, f"bad-{amount}")  # type: ignore[arg-type]
        assert (status, body["error"]["param"]) == (400, "amount"), amount
    assert balance(api, account) == 5000
    assert api.call("GET", "/payouts", operator)[1]["data"] == []


def test_pending_funds_cannot_be_paid_out(api: Api) -> None:
    """The merchant is owed the payment, but Stripe has the funds only pending: the
    platform's available balance does not cover a payout, and the merchant keeps it all."""
    account, stripe_account = onboarded(api)
    pay(api, account, 10000, "pm_card_visa")
    status, body = payout(api, api.token("operator"), account, 5000, "k")
    assert (status, body["error"]["code"]) == (409, "insufficient_platform_balance")
    assert balance(api, account) == 10000 and transfers(api, stripe_account) == []


def test_stripe_refusing_the_transfer_fails_the_payout_and_gives_it_back(api: Api) -> None:
    account, stripe_account = onboarded(api)
    pay(api, account, 10000)
    # The account loses its transfers capability after the payout is accepted.
    httpx.post(
        f"{api.sandbox_url}/_sandbox/accounts/{stripe_account}/capabilities",
        json={"capabilities": {"transfers": "inactive"}},
    ).raise_for_status()
    status, failed = payout(api, api.token("operator"), account, 3000, "k")
    assert status == 201 and failed["status"] == "failed"
    assert "capabilit" in failed["failure_message"]
    assert balance(api, account) == 10000 and transfers(api, stripe_account) == []


def test_stripe_failing_after_it_executed_still_makes_one_transfer(api: Api) -> None:
    account, stripe_account = onboarded(api)
    pay(api, account, 10000)
    for fault in (
        {"kind": "server_error", "count": 1},
        {"kind": "rate_limit", "count": 1},
        {"kind": "hang", "count": 1, "seconds": 1, "execute": True},
    ):
        httpx.post(
            f"{api.sandbox_url}/_sandbox/faults/api",
            json={**fault, "path": "/v1/transfers", "method": "POST"},
        ).raise_for_status()
    status, made = payout(api, api.token("operator"), account, 2500, "k")
    assert (status, made["status"]) == (201, "completed"), made
    assert [transfer.id for transfer in transfers(api, stripe_account)] == [
        made["stripe_transfer_id"]
    ]
    assert balance(api, account) == 7500


def test_stripe_down_leaves_the_payout_processing_for_a_retry_with_its_key(api: Api) -> None:
    account, stripe_account = onboarded(api)
    pay(api, account, 10000)
    httpx.post(
        f"{api.sandbox_url}/_sandbox/faults/api",
        json={"kind": "server_error", "count": 4, "path": "/v1/transfers", "method": "POST"},
    ).raise_for_status()
    status, waiting = payout(api, api.token("operator"), account, 2500, "k")
    assert (status, waiting["status"]) == (202, "processing")
    assert transfers(api, stripe_account) == []

    async def retry() -> None:
        await api.runtime.executor.execute(waiting["id"])

    api.run(retry)
    status, done = api.call("GET", f"/payouts/{waiting['id']}", api.token("operator"))
    assert done["status"] == "completed"
    assert [t.id for t in transfers(api, stripe_account)] == [done["stripe_transfer_id"]]


def test_a_hundred_payouts_racing_for_a_merchants_balance(api: Api) -> None:
    """100 requests of 10.00 against 250.00 (the platform holding plenty): exactly 25."""
    account, stripe_account = onboarded(api)
    pay(api, account, 25000)
    pay(api, api.account(api.token("operator"), "Other"), 100000)  # the platform has plenty

    async def race() -> list[str]:
        async def one(n: int) -> str:
            try:
                await api.runtime.payouts.request(
                    merchant_id=account, amount=1000, currency="usd", ledger="stripe_usd"
                )
            except InsufficientBalance:
                return "refused"
            return "accepted"

        return await asyncio.gather(*(one(n) for n in range(100)))

    outcomes = api.run(race)
    assert outcomes.count("accepted") == 25
    # Decided together (group commit), each against the balance the ones before it left.
    assert api.runtime.payouts.accepting.batches < 100
    api.run(api.runtime.executor.run_once)
    assert len(transfers(api, stripe_account)) == 25
    assert balance(api, account) == 0


def test_requests_decided_together_each_get_their_own_answer(api: Api) -> None:
    """A merchant with no connected account is refused for that, beside another merchant's
    payouts accepted in the same transaction, and one over its balance refused for that."""
    account, _ = onboarded(api)
    pay(api, account, 10000)
    unconnected = api.account(api.token("operator"), "Unconnected")

    async def together() -> list[object]:
        platform = await api.runtime.balances.refresh("usd")
        asked = [(account, 4000), (unconnected, 1000), (account, 4000), (account, 4000)]
        # Submitted at once, as requests past their balance refresh: one batch.
        return await asyncio.gather(
            *(
                api.runtime.payouts.accepting.submit(Asked(merchant, amount, "usd", None, platform))
                for merchant, amount in asked
            ),
            return_exceptions=True,
        )

    before = api.runtime.payouts.accepting.batches
    first, refused, second, over = api.run(together)
    assert api.runtime.payouts.accepting.batches == before + 1
    assert isinstance(refused, ConnectNotReady) and "Settings" in str(refused)
    assert isinstance(over, InsufficientBalance) and "balance 2000" in str(over)
    assert [(p.amount, p.status, new) for p, new in (first, second)] == [  # type: ignore[misc]
        (4000, "pending", True),
        (4000, "pending", True),
    ]
    assert balance(api, account) == 2000


def test_two_merchants_cannot_both_spend_the_platforms_last_dollars(api: Api) -> None:
    """Each is owed 100.00, but Stripe kept its fees: the platform holds 193.60 available.
    Two payouts of 97.00, each covered by its merchant's balance, cannot both be made."""
    first, _ = onboarded(api)
    second, _ = onboarded(api)
    pay(api, first, 10000)
    pay(api, second, 10000)

    async def race() -> list[str]:
        async def one(account: int) -> str:
            try:
                await api.runtime.payouts.request(
                    merchant_id=account, amount=9700, currency="usd", ledger="stripe_usd"
                )
            except InsufficientPlatformBalance:
                return "refused"
            return "accepted"

        return await asyncio.gather(one(first), one(second))

    assert sorted(api.run(race)) == ["accepted", "refused"]
    assert sorted((balance(api, first), balance(api, second))) == [300, 10000]


def test_past_the_key_window_the_transfer_is_found_not_made_again(api: Api) -> None:
    """A payout left processing for over a day (Stripe may have forgotten its key): the
    transfer Stripe made for it is found by its metadata and applied; none is made again."""
    account, stripe_account = onboarded(api)
    pay(api, account, 10000)
    day_ago = utcnow() - timedelta(hours=25)

    async def left_processing() -> int:
        async with ledger_session(api.runtime.database) as tx:
            payout_id = await reserve_payout(
                tx, merchant_id=account, amount=3000, currency="usd", now=day_ago
            )
            await advance_payout(tx, payout_id, "processing", now=day_ago)
        return payout_id

    payout_id = api.run(left_processing)
    made = api.stripe.v1.transfers.create(
        params={
            "amount": 3000,
            "currency": "usd",
            "destination": stripe_account,
            "metadata": {"icpay_payout_id": str(payout_id)},
        }
    )

    async def retry() -> None:
        await api.runtime.executor.execute(payout_id)

    api.run(retry)
    _, done = api.call("GET", f"/payouts/{payout_id}", api.token("operator"))
    assert (done["status"], done["stripe_transfer_id"]) == ("completed", made.id)
    assert [transfer.id for transfer in transfers(api, stripe_account)] == [made.id]


def test_a_payout_made_while_the_balance_read_is_in_flight_is_not_spent_twice(
    api: Api,
) -> None:
    """Stripe works the balance out, then a payout is transferred, then the answer arrives:
    the figure does not show that payout spent, so it must be counted against it."""
    first, _ = onboarded(api)
    second, _ = onboarded(api)
    pay(api, first, 10000)
    pay(api, second, 10000)
    gateway = api.runtime.gateway
    real = gateway.balance

    async def race() -> str:
        accepted, _ = await api.runtime.payouts.request(
            merchant_id=first, amount=9700, currency="usd", ledger="stripe_usd"
        )

        async def balance_in_flight() -> Any:
            answer = await real()
            await api.runtime.executor.execute(accepted.id)  # transferred meanwhile
            return answer

        gateway.balance = balance_in_flight  # type: ignore[method-assign]
        try:
            await api.runtime.payouts.request(
                merchant_id=second, amount=9700, currency="usd", ledger="stripe_usd"
            )
        except InsufficientPlatformBalance:
            return "refused"
        finally:
            del gateway.balance
        return "accepted"

    assert api.run(race) == "refused"


def test_the_same_key_twice_at_once_answers_with_one_payout(api: Api) -> None:
    account, _ = onboarded(api)
    pay(api, account, 10000)
    key = RequestKey(scope=f"merchant:{account}", key="same", digest="d" * 64)

    async def race() -> list[tuple[int, bool]]:
        async def one() -> tuple[int, bool]:
            payout, new = await api.runtime.payouts.request(
                merchant_id=account, amount=9000, currency="usd", ledger="stripe_usd", request=key
            )
            return payout.id, new

        return list(await asyncio.gather(one(), one()))

    first, second = api.run(race)
    assert first[0] == second[0] and sorted([first[1], second[1]]) == [False, True]


def test_a_payout_accepted_before_a_disconnect_is_not_sent_to_the_left_account(
    api: Api,
) -> None:
    account, stripe_account = onboarded(api)
    pay(api, account, 10000)
    operator = api.token("operator")

    async def accept() -> int:
        payout, _ = await api.runtime.payouts.request(
            merchant_id=account, amount=4000, currency="usd", ledger="stripe_usd"
        )
        return payout.id

    payout_id = api.run(accept)
    assert api.call("DELETE", f"/accounts/{account}/stripe/connect", operator)[0] == 200
    api.run(api.runtime.executor.run_once)
    assert transfers(api, stripe_account) == []
    _, failed = api.call("GET", f"/payouts/{payout_id}", operator)
    assert failed["status"] == "failed" and "changed" in failed["failure_message"]
    assert balance(api, account) == 10000
