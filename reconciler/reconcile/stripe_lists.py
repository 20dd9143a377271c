"""The Stripe lists a run walks, and how a page of each is compared with the ledger.

Each list is read 100 objects a call, newest first, with what comparing needs expanded in the
same call: payment intents come with their latest charge and its balance transaction (fee,
net, availability), so a payment costs a hundredth of a call, not three. Refunds come with
what they took from the balance (and gave back, if they failed); transfers with theirs and
their first reversals', and `amount_reversed`. For each page the ledger's rows are read by the
page's ids (a statement per kind of lookup), compared, and let go.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from reconciler.apply.context import metadata_int, stripe_id
from reconciler.ledger.rows import Merchant
from reconciler.reconcile import ledger_rows
from reconciler.reconcile.compare import (
    Difference,
    charge_of,
    compare_account,
    compare_intent,
    compare_refund,
    compare_transfer,
    intent_merchant,
)
from reconciler.types import Queryable, StripeObject

# The objects of a page the run looked at (in its scope), each with what differs.
Compared = list[tuple[StripeObject, list[Difference]]]
Compare = Callable[[Queryable, list[StripeObject], int | None], Awaitable[Compared]]


@dataclass(frozen=True)
class StripeList:
    phase: str  # also the resume point's name
    resource: str  # the SDK's service: `client.v1.<resource>`
    expand: tuple[str, ...]
    compare: Compare
    # Stripe ids a page's objects stand for, for finding what the ledger holds and no page
    # showed (a payment intent stands for its charge too).
    ids: Callable[[StripeObject], list[str]]


async def compare_intents(
    conn: Queryable, items: list[StripeObject], merchant_id: int | None
) -> Compared:
    payments = await ledger_rows.payments_by_intent(conn, [i["id"] for i in items])
    compared = []
    for intent in items:
        payment = payments.get(intent["id"])
        if merchant_id is not None and intent_merchant(intent, payment) != merchant_id:
            continue
        compared.append((intent, compare_intent(intent, payment)))
    return compared


async def compare_refunds(
    conn: Queryable, items: list[StripeObject], merchant_id: int | None
) -> Compared:
    rows = await ledger_rows.refunds_by_stripe_id(conn, [r["id"] for r in items])
    by_charge = await ledger_rows.payments_by_charge(conn, [charge_of(r) for r in items])
    by_intent = await ledger_rows.payments_by_intent(
        conn, [stripe_id(r.get("payment_intent")) or "" for r in items]
    )
    compared = []
    for refund in items:
        row = rows.get(refund["id"])
        payment = by_charge.get(charge_of(refund)) or by_intent.get(
            stripe_id(refund.get("payment_intent"))
        )
        owner = row.merchant_id if row else (payment.merchant_id if payment else None)
        if merchant_id is not None and owner != merchant_id:
            continue
        compared.append((refund, compare_refund(refund, row, payment)))
    return compared


async def compare_transfers(
    conn: Queryable, items: list[StripeObject], merchant_id: int | None
) -> Compared:
    by_transfer = await ledger_rows.payouts_by_transfer(conn, [t["id"] for t in items])
    by_id = await ledger_rows.payouts_by_id(
        conn, [metadata_int(t, "icpay_payout_id") for t in items]
    )
    destinations = await ledger_rows.merchants_by_account(
        conn, [stripe_id(t.get("destination")) for t in items]
    )
    compared = []
    for transfer in items:
        payout = by_transfer.get(transfer["id"])
        if payout is None:
            named = by_id.get(metadata_int(transfer, "icpay_payout_id"))
            # A payout already paid by another transfer is not this one's.
            if named is not None and named.stripe_transfer_id in (None, transfer["id"]):
                payout = named
        destination = destinations.get(stripe_id(transfer.get("destination")))
        owner = payout.merchant_id if payout else (destination.id if destination else None)
        if merchant_id is not None and owner != merchant_id:
            continue
        compared.append((transfer, compare_transfer(transfer, payout, destination)))
    return compared


async def compare_accounts(
    conn: Queryable, items: list[StripeObject], merchant_id: int | None
) -> Compared:
    merchants: dict[object, Merchant] = await ledger_rows.merchants_by_account(
        conn, [a["id"] for a in items]
    )
    compared = []
    for account in items:
        merchant = merchants.get(account["id"])
        if merchant_id is not None and (merchant is None or merchant.id != merchant_id):
            continue
        compared.append((account, compare_account(account, merchant)))
    return compared


def _intent_ids(intent: StripeObject) -> list[str]:
    charge = stripe_id(intent.get("latest_charge"))
    return [intent["id"], charge] if charge else [intent["id"]]


def _own_id(obj: StripeObject) -> list[str]:
    return [obj["id"]]


def _refund_ids(refund: StripeObject) -> list[str]:
    # Its balance transactions too: a difference about one is cleared only if it was seen.
    return [refund["id"], *_transactions(refund)]


def _transfer_ids(transfer: StripeObject) -> list[str]:
    reversals = (transfer.get("reversals") or {}).get("data") or []
    return [
        transfer["id"],
        *_transactions(transfer),
        *(i for reversal in reversals for i in _transactions(reversal)),
    ]


def _transactions(obj: StripeObject) -> list[str]:
    """The ids of the balance transactions `obj` carries."""
    names = ("balance_transaction", "failure_balance_transaction")
    return [i for name in names if (i := stripe_id(obj.get(name)))]


PAYMENT_INTENTS = StripeList(
    "payment_intents",
    "payment_intents",
    ("data.latest_charge.balance_transaction",),
    compare_intents,
    _intent_ids,
)
REFUNDS = StripeList(
    "refunds",
    "refunds",
    ("data.balance_transaction", "data.failure_balance_transaction"),
    compare_refunds,
    _refund_ids,
)
TRANSFERS = StripeList(
    "transfers",
    "transfers",
    ("data.balance_transaction", "data.reversals.data.balance_transaction"),
    compare_transfers,
    _transfer_ids,
)
ACCOUNTS = StripeList("accounts", "accounts", (), compare_accounts, _own_id)
STRIPE_LISTS = (PAYMENT_INTENTS, REFUNDS, TRANSFERS, ACCOUNTS)
BY_OBJECT_TYPE = {
    "payment_intent": PAYMENT_INTENTS,
    "refund": REFUNDS,
    "transfer": TRANSFERS,
    "account": ACCOUNTS,
}
