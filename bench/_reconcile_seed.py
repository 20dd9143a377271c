"""Seeding the reconcile benchmark: ICPay's books and the sandbox's Stripe, holding the same.

The mix, for `payments` card payments, ICPay's fee 5% + 30 cents: one merchant per 150
payments (an onboarded Express account each), every payment made as checkout makes it (our
payment row first, then its PaymentIntent with `icpay_payment_id` and `icpay_account_id`,
confirmed by the customer's card), 1 in 50 declined; 1 in 10 of the paid ones refunded (two in
three by ICPay: our refund row first, then Stripe's refund with our metadata; one in three
from the Dashboard, unknown to us until applied), half of them in full; each merchant then
paid out in payouts of 10 payments' worth of its balance, as Connect transfers with our
metadata, 1 in 20 of them partly reversed from the Dashboard.

Stripe's side is made in the sandbox's own process (`bench._reconcile_sandbox`); the ledger
is booked from the objects the sandbox then holds, through `apply_object` (the one way in),
in batches of `BATCH` as the inbox worker applies them: one transaction each, the Stripe
reads applying makes answered from the objects just fetched.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx

from reconciler.apply.batch import BatchSpoiled, apply_together, read_stripe_first
from reconciler.apply.context import ApplyContext, StripeRead
from reconciler.apply.events import event_object
from reconciler.apply.kinds import KINDS
from reconciler.apply.objects import apply_object
from reconciler.db.engine import Database
from reconciler.gateway import StripeGateway
from reconciler.ledger.balances import merchant_balance
from reconciler.ledger.connected_accounts import link_account
from reconciler.ledger.merchants import create_merchant
from reconciler.ledger.payments import create_payment
from reconciler.ledger.payouts import advance_payout, get_payout, reserve_payout
from reconciler.ledger.refunds import create_refund
from reconciler.ledger.session import LedgerSession, ledger_session
from reconciler.money import FeeSchedule
from reconciler.paths.executor import transfer_metadata
from reconciler.types import StripeObject, utcnow

# ICPay's fee on each payment (the run is given the same: PLATFORM_FEE_*): more than
# Stripe's 2.9% + 30 cents, so the platform holds what it owes its merchants.
PLATFORM_FEE_PERCENT, PLATFORM_FEE_FIXED = Decimal(5), 30
BATCH = 500
CHUNK = 2000  # objects per seeding call to the sandbox
PAYMENTS_PER_MERCHANT = 150
DECLINE_EVERY, REFUND_EVERY, DASHBOARD_EVERY, FULL_EVERY = 50, 10, 3, 2
PAYOUT_PAYMENTS, REVERSE_EVERY = 10, 20

Payload = dict[str, Any]


@dataclass
class Seeded:
    """What was made, and how long each part took."""

    merchants: int = 0
    payments: int = 0
    declined: int = 0
    refunds: int = 0
    dashboard_refunds: int = 0
    payouts: int = 0
    reversals: int = 0
    applied: int = 0
    spoiled_batches: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    stripe_objects: dict[str, int] = field(default_factory=dict)


def amount_of(n: int) -> int:
    """Payment amounts from $5.00 to $500.00, spread without a random stream."""
    return 500 + (n * 7919) % 49_500


class HeldStripe:
    """A StripeReader answering from objects just fetched from the sandbox, and asking the
    sandbox itself (the gateway) for anything else."""

    def __init__(self, gateway: StripeGateway) -> None:
        self.gateway = gateway
        self.held: dict[str, StripeObject] = {}

    def hold(self, objects: Sequence[StripeObject]) -> None:
        self.held = {obj["id"]: obj for obj in objects}

    async def payment_intent(self, intent_id: str) -> StripeObject:
        return self.held.get(intent_id) or await self.gateway.payment_intent(intent_id)

    async def charge(self, charge_id: str) -> StripeObject:
        return self.held.get(charge_id) or await self.gateway.charge(charge_id)

    async def refund(self, refund_id: str) -> StripeObject:
        return self.held.get(refund_id) or await self.gateway.refund(refund_id)

    async def refunds_for_charge(self, charge_id: str) -> list[StripeObject]:
        return await self.gateway.refunds_for_charge(charge_id)

    async def transfer(self, transfer_id: str) -> StripeObject:
        return self.held.get(transfer_id) or await self.gateway.transfer(transfer_id)

    async def transfer_reversals(self, transfer_id: str) -> list[StripeObject]:
        return await self.gateway.transfer_reversals(transfer_id)

    async def account(self, account_id: str) -> StripeObject:
        return self.held.get(account_id) or await self.gateway.account(account_id)

    async def balance(self) -> StripeObject:
        return await self.gateway.balance()


class Seeder:
    def __init__(
        self, db: Database, sandbox: httpx.AsyncClient, gateway: StripeGateway, api_key: str
    ) -> None:
        self.db = db
        self.sandbox = sandbox
        self.stripe = HeldStripe(gateway)
        self.api_key = api_key
        self.context = ApplyContext(
            db=db,
            stripe=self.stripe,
            fees=FeeSchedule(PLATFORM_FEE_PERCENT, PLATFORM_FEE_FIXED),
            detected_by="bench",
        )
        self.seeded = Seeded()
        # merchant id -> its connected account
        self.accounts: dict[int, str] = {}

    async def _post(self, path: str, body: dict[str, Any]) -> Any:
        answer = await self.sandbox.post(path, json=body, timeout=600)
        answer.raise_for_status()
        return answer.json()

    async def _objects(self, kind: str) -> list[StripeObject]:
        """Every object of `kind` the sandbox holds, oldest first, a chunk at a time."""
        found: list[StripeObject] = []
        while True:
            page = await self.sandbox.get(
                "/_bench/objects",
                params={"kind": kind, "offset": len(found), "limit": CHUNK},
                timeout=600,
            )
            page.raise_for_status()
            found += page.json()
            if len(page.json()) < CHUNK:
                return found

    async def apply(self, objects: Sequence[StripeObject], *, held: Sequence[StripeObject]) -> None:
        """Apply snapshots in batches, the reads they make answered from `held` first."""
        self.stripe.hold(held)
        for start in range(0, len(objects), BATCH):
            await self._apply_batch(objects[start : start + BATCH])
        self.seeded.applied += len(objects)
        # What is held now lives until seeding ends: kept out of the cyclic collector, whose
        # full passes over 100k objects would otherwise make seeding quadratic.
        gc.freeze()

    async def _apply_batch(self, objects: Sequence[StripeObject]) -> None:
        payloads: list[Payload] = [{"data": {"object": obj}} for obj in objects]
        foreseen = await read_stripe_first(self.context, payloads, _reads_of)
        try:
            async with self.db.write() as conn:
                tx = LedgerSession(conn)
                await apply_together(self.context, tx, foreseen, payloads, _apply_payload)
                await tx.flush()
        except BatchSpoiled:
            # As the inbox worker does: the batch's objects one at a time.
            self.seeded.spoiled_batches += 1
            for obj in objects:
                await apply_object(self.context, obj)

    async def merchants(self, count: int) -> None:
        now = utcnow()
        async with ledger_session(self.db) as tx:
            tx.expect_inserts(count)
            ids = [
                await create_merchant(tx, name=f"m{n}", email=f"m{n}@bench.test", now=now)
                for n in range(count)
            ]
        made: list[StripeObject] = []
        for merchant_id in ids:
            # As onboarding makes it (`StripeGateway.create_express_account`), then the
            # merchant submitting Stripe's hosted form.
            account = await self.sandbox.post(
                "/v1/accounts",
                data={
                    "type": "express",
                    "country": "US",
                    "capabilities[transfers][requested]": "true",
                    "metadata[icpay_account_id]": str(merchant_id),
                },
                headers={"authorization": f"Bearer {self.api_key}"},
            )
            account.raise_for_status()
            account_id = str(account.json()["id"])
            done = await self.sandbox.post(f"/_sandbox/accounts/{account_id}/onboarding", json={})
            done.raise_for_status()
            made.append(done.json())
            self.accounts[merchant_id] = account_id
        async with ledger_session(self.db) as tx:
            for merchant_id, account_id in self.accounts.items():
                await link_account(tx, merchant_id, account_id, country="US", now=now)
        await self.apply(made, held=made)
        self.seeded.merchants = count

    async def payments(self, count: int) -> None:
        merchants = list(self.accounts)
        fees = self.context.fees
        for start in range(0, count, CHUNK):
            numbers = range(start, min(start + CHUNK, count))
            now = utcnow()
            async with ledger_session(self.db) as tx:
                tx.expect_inserts(len(numbers))
                made = [
                    [
                        await create_payment(
                            tx,
                            merchant_id=merchants[n % len(merchants)],
                            amount=amount_of(n),
                            currency="usd",
                            fees=fees,
                            now=now,
                        ),
                        merchants[n % len(merchants)],
                        amount_of(n),
                        "pm_card_chargeDeclined" if n % DECLINE_EVERY == 7 else "pm_card_visa",
                    ]
                    for n in numbers
                ]
            await self._post("/_bench/seed/payments", {"payments": made})
        self.seeded.payments = count
        self.seeded.declined = sum(1 for n in range(count) if n % DECLINE_EVERY == 7)
        await self._post("/_bench/seed/settle", {})

    async def book_payments(self) -> list[StripeObject]:
        """The payments' intents applied (each with its charge, as its events would be);
        returns the intents."""
        intents = await self._objects("payment_intent")
        charges = await self._objects("charge")
        await self.apply(intents, held=charges)
        return intents

    async def refunds(self, intents: list[StripeObject]) -> None:
        paid = [intent for intent in intents if intent["status"] == "succeeded"]
        chosen = paid[::REFUND_EVERY]
        ours: list[tuple[StripeObject, int]] = []
        dashboard: list[list[Any]] = []
        for n, intent in enumerate(chosen):
            amount = intent["amount"] if n % FULL_EVERY == 0 else intent["amount"] // 2
            if n % DASHBOARD_EVERY == 1:
                dashboard.append([intent["id"], amount, {}])
            else:
                ours.append((intent, amount))
        now = utcnow()
        made: list[list[Any]] = []
        async with ledger_session(self.db) as tx:
            tx.expect_inserts(len(ours))
            for intent, amount in ours:
                payment_id = int(intent["metadata"]["icpay_payment_id"])
                refund_id = await create_refund(tx, payment_id=payment_id, amount=amount, now=now)
                metadata = {
                    "icpay_refund_id": str(refund_id),
                    "icpay_payment_id": str(payment_id),
                    "icpay_account_id": intent["metadata"]["icpay_account_id"],
                }
                made.append([intent["id"], amount, metadata])
        for start in range(0, len(made) + len(dashboard), CHUNK):
            await self._post(
                "/_bench/seed/refunds", {"refunds": (made + dashboard)[start : start + CHUNK]}
            )
        refunds = await self._objects("refund")
        await self.apply(refunds, held=refunds)
        self.seeded.refunds = len(refunds)
        self.seeded.dashboard_refunds = len(dashboard)

    async def payouts(self) -> None:
        """Each merchant's balance paid out in payouts of about 10 payments' worth, leaving
        some behind: reserved and claimed as the payout path and its executor do, then the
        transfers, then the Dashboard's partial reversals."""
        merchants = list(self.accounts)
        now = utcnow()
        sent: list[list[Any]] = []
        async with ledger_session(self.db) as tx:
            for merchant_id in merchants:
                balance = await merchant_balance(tx, merchant_id, "usd")
                share = PAYOUT_PAYMENTS * 25_000  # cents: about 10 average payments
                while balance > share * 1.2:
                    payout_id = await reserve_payout(
                        tx, merchant_id=merchant_id, amount=share, currency="usd", now=now
                    )
                    await advance_payout(tx, payout_id, "processing", now=now)
                    balance -= share
                    payout = await get_payout(tx, payout_id)
                    sent.append([self.accounts[merchant_id], share, transfer_metadata(payout)])
        made: list[str] = []
        for start in range(0, len(sent), CHUNK):
            answer = await self._post(
                "/_bench/seed/transfers", {"transfers": sent[start : start + CHUNK]}
            )
            made += answer["made"]
        reversals = [[transfer, 10_000] for transfer in made[::REVERSE_EVERY]]
        if reversals:
            await self._post("/_bench/seed/reversals", {"reversals": reversals})
        transfers = await self._objects("transfer")
        await self.apply(transfers, held=transfers)
        self.seeded.payouts = len(made)
        self.seeded.reversals = len(reversals)

    async def run(self, payments: int) -> Seeded:
        steps: list[tuple[str, Callable[[], Awaitable[Any]]]] = []
        intents: list[StripeObject] = []

        async def book() -> None:
            intents.extend(await self.book_payments())

        merchants = max(2, payments // PAYMENTS_PER_MERCHANT)
        steps = [
            ("merchants", lambda: self.merchants(merchants)),
            ("payments at Stripe", lambda: self.payments(payments)),
            ("payments booked", book),
            ("refunds", lambda: self.refunds(intents)),
            ("payouts", self.payouts),
        ]
        for name, step in steps:
            started = time.perf_counter()
            await step()
            self.seeded.seconds[name] = time.perf_counter() - started
        answer = await self.sandbox.get("/_bench/store")
        self.seeded.stripe_objects = answer.json()
        return self.seeded


async def _reads_of(tx: LedgerSession, payload: Payload) -> list[StripeRead]:
    obj = event_object(payload)
    return await KINDS[obj["object"]].reads(tx, obj)


async def _apply_payload(ctx: ApplyContext, payload: Payload) -> None:
    await apply_object(ctx, event_object(payload))
