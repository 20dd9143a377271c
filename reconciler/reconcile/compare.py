"""The comparers: one Stripe object beside the ledger's row for it, and what differs.

Pure functions of the two (no database, no Stripe), so each rule is tested on its own. A
`Difference` says whether applying Stripe's snapshot through the apply functions can end it
(`healable`): a status, a fee or availability the ledger has not booked yet, an object the
ledger never heard of. What only a person can settle is never healable: an object that is not
ours (no ICPay metadata), a different amount, a fee booked other than Stripe charged it (the
journal is immutable: that takes an adjusting entry someone decides on).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reconciler.apply.context import metadata_int, stripe_id
from reconciler.apply.payments import charged, payment_status_of
from reconciler.ledger.payments import capture_status
from reconciler.ledger.rows import Merchant, Payment, Payout, Refund
from reconciler.ledger.transitions import PAYMENT_CAPTURED
from reconciler.types import StripeObject


@dataclass(frozen=True)
class Difference:
    kind: str
    object_type: str
    object_id: str
    detail: str
    merchant_id: int | None = None
    ledger_value: Any = None
    stripe_value: Any = None
    healable: bool = False

    @property
    def key(self) -> tuple[str, str, str]:
        """What names it: one open discrepancy per kind and object."""
        return self.kind, self.object_type, self.object_id


def is_ours(intent: StripeObject) -> bool:
    return bool(
        metadata_int(intent, "icpay_payment_id") or metadata_int(intent, "icpay_account_id")
    )


def intent_merchant(intent: StripeObject, payment: Payment | None) -> int | None:
    return payment.merchant_id if payment else metadata_int(intent, "icpay_account_id")


def compare_intent(intent: StripeObject, payment: Payment | None) -> list[Difference]:
    """A PaymentIntent (its `latest_charge` expanded with the charge's balance transaction)
    beside our payment for it."""
    pid = intent["id"]
    theirs = payment_status_of(intent)
    if payment is None:
        if not is_ours(intent):
            return [
                Difference(
                    "unattributed_object",
                    "payment_intent",
                    pid,
                    "payment intent without ICPay metadata (icpay_payment_id, icpay_account_id):"
                    " not ours to book; attribute or dismiss it",
                    stripe_value=_shown(intent, "amount", "currency", "status"),
                )
            ]
        return [
            Difference(
                "missing_in_ledger",
                "payment_intent",
                pid,
                f"Stripe has a {intent['status']} payment intent of {intent['amount']} "
                f"{intent['currency']} the ledger has no payment for",
                merchant_id=metadata_int(intent, "icpay_account_id"),
                stripe_value=_shown(intent, "amount", "currency", "status"),
                healable=True,
            )
        ]
    found: list[Difference] = []
    merchant = payment.merchant_id
    amount, currency = charged(payment)
    if (int(intent["amount"]), str(intent["currency"]).lower()) != (amount, currency):
        found.append(
            Difference(
                "amount_mismatch",
                "payment_intent",
                pid,
                f"Stripe's payment intent is for {intent['amount']} {intent['currency']}, "
                f"payment {payment.id} for {amount} {currency}",
                merchant_id=merchant,
                ledger_value={"amount": amount, "currency": currency},
                stripe_value=_shown(intent, "amount", "currency"),
            )
        )
        return found  # nothing else about it can be trusted to compare
    ours = capture_status(payment.status)
    # A declined intent waiting for another attempt reads `pending` at Stripe: still failed.
    if ours != theirs and (ours, theirs) != ("failed", "pending"):
        found.append(
            Difference(
                "status_mismatch",
                "payment_intent",
                pid,
                f"payment {payment.id} is {payment.status}, Stripe's payment intent "
                f"{intent['status']}",
                merchant_id=merchant,
                ledger_value={"status": payment.status},
                stripe_value={"status": intent["status"]},
                healable=True,
            )
        )
    charge = intent.get("latest_charge")
    transaction = charge.get("balance_transaction") if isinstance(charge, dict) else None
    if isinstance(charge, dict) and isinstance(transaction, dict) and theirs == "succeeded":
        found.extend(_compare_settlement(payment, charge, transaction))
    return found


def _compare_settlement(
    payment: Payment, charge: StripeObject, transaction: StripeObject
) -> list[Difference]:
    """Stripe's fee and net for the charge (its balance transaction) beside what we booked."""
    if payment.status not in PAYMENT_CAPTURED:
        return []  # the status difference comes first; heal books the rest with it
    fee, net = int(transaction["fee"]), int(transaction["net"])
    values = {"fee": fee, "net": net, "status": transaction.get("status")}
    booked = {
        "stripe_fee": payment.stripe_fee,
        "net": None if payment.stripe_fee is None else payment.amount - payment.stripe_fee,
        "funds_available": payment.funds_available,
    }
    found = []
    if payment.stripe_fee is None:
        found.append(
            Difference(
                "fee_mismatch",
                "charge",
                charge["id"],
                f"Stripe took a fee of {fee} on payment {payment.id}'s charge; "
                "the ledger has booked none",
                merchant_id=payment.merchant_id,
                ledger_value=booked,
                stripe_value=values,
                healable=True,
            )
        )
    elif payment.stripe_fee != fee or (
        int(transaction["amount"]) == payment.amount and payment.amount - payment.stripe_fee != net
    ):
        found.append(
            Difference(
                "fee_mismatch",
                "charge",
                charge["id"],
                f"payment {payment.id} booked a Stripe fee of {payment.stripe_fee}, the "
                f"charge's balance transaction says {fee} (net {net}): the journal needs an "
                "adjusting entry",
                merchant_id=payment.merchant_id,
                ledger_value=booked,
                stripe_value=values,
            )
        )
    elif transaction.get("status") == "available" and not payment.funds_available:
        found.append(
            Difference(
                "status_mismatch",
                "charge",
                charge["id"],
                f"Stripe made payment {payment.id}'s net available; the ledger holds it pending",
                merchant_id=payment.merchant_id,
                ledger_value=booked,
                stripe_value=values,
                healable=True,
            )
        )
    return found


def compare_refund(
    refund: StripeObject, row: Refund | None, payment: Payment | None
) -> list[Difference]:
    """A refund beside our row for it; `payment` is ours for its charge (None: the charge is
    not ours, and neither is the refund: its payment intent is reported on its own)."""
    rid = refund["id"]
    if row is None:
        if payment is None:
            return []
        return [
            Difference(
                "missing_in_ledger",
                "refund",
                rid,
                f"Stripe has a {refund['status']} refund of {refund['amount']} "
                f"{refund['currency']} on payment {payment.id} the ledger never heard of",
                merchant_id=payment.merchant_id,
                stripe_value=_shown(refund, "amount", "currency", "status"),
                healable=True,
            )
        ]
    found = []
    # A refund of a payment Stripe converted is in the customer's currency: what the ledger
    # booked is what it took from the balance, which only its balance transaction says.
    converted = payment is not None and payment.presentment_currency is not None
    if not converted and (int(refund["amount"]), str(refund["currency"]).lower()) != (
        row.amount,
        row.currency,
    ):
        found.append(
            Difference(
                "amount_mismatch",
                "refund",
                rid,
                f"refund {row.id} is for {row.amount} {row.currency}, Stripe's for "
                f"{refund['amount']} {refund['currency']}",
                merchant_id=row.merchant_id,
                ledger_value={"amount": row.amount, "currency": row.currency},
                stripe_value=_shown(refund, "amount", "currency"),
            )
        )
        return found  # its balance transactions differ for the same reason
    found += compare_movement(
        refund.get("balance_transaction"), -row.amount, row.currency, row, f"refund {row.id}"
    )
    # A refund that failed (or was canceled) gave back what it took, on a second one.
    found += compare_movement(
        refund.get("failure_balance_transaction"),
        row.amount,
        row.currency,
        row,
        f"the failure of refund {row.id}",
    )
    if row.status != refund["status"]:
        found.append(
            Difference(
                "status_mismatch",
                "refund",
                rid,
                f"refund {row.id} is {row.status}, Stripe's {refund['status']}",
                merchant_id=row.merchant_id,
                ledger_value={"status": row.status},
                stripe_value={"status": refund["status"]},
                healable=True,
            )
        )
    return found


def transfer_status(transfer: StripeObject) -> str:
    """The payout status a transfer means: it exists, so the money left; reversals say how
    much came back."""
    reversed_ = int(transfer.get("amount_reversed") or 0)
    if reversed_ and reversed_ >= int(transfer["amount"]):
        return "reversed"
    return "amount_reversed" if reversed_ else "completed"


def compare_transfer(
    transfer: StripeObject, payout: Payout | None, destination: Merchant | None
) -> list[Difference]:
    """A transfer beside our payout for it (found by its id or its `icpay_payout_id`);
    `destination` is the merchant whose account received it, if any."""
    tid = transfer["id"]
    shown = _shown(transfer, "amount", "currency", "destination", "amount_reversed")
    if payout is None:
        if metadata_int(transfer, "icpay_payout_id") is None:
            return [
                Difference(
                    "unattributed_object",
                    "transfer",
                    tid,
                    "transfer made outside ICPay (no icpay_payout_id)"
                    + (f" to merchant {destination.id}'s account" if destination else "")
                    + ": never booked as a payout; attribute or dismiss it",
                    merchant_id=destination.id if destination else None,
                    stripe_value=shown,
                )
            ]
        return [
            Difference(
                "missing_in_ledger",
                "transfer",
                tid,
                f"transfer for payout {metadata_int(transfer, 'icpay_payout_id')}, which the "
                "ledger does not have",
                merchant_id=destination.id if destination else None,
                stripe_value=shown,
                healable=True,
            )
        ]
    if (int(transfer["amount"]), str(transfer["currency"]).lower()) != (
        payout.amount,
        payout.currency,
    ):
        return [
            Difference(
                "amount_mismatch",
                "transfer",
                tid,
                f"payout {payout.id} is for {payout.amount} {payout.currency}, its transfer "
                f"for {transfer['amount']} {transfer['currency']}",
                merchant_id=payout.merchant_id,
                ledger_value={"amount": payout.amount, "currency": payout.currency},
                stripe_value=shown,
            )
        ]
    found = compare_movement(
        transfer.get("balance_transaction"),
        -payout.amount,
        payout.currency,
        payout,
        f"payout {payout.id}",
    )
    for reversal in (transfer.get("reversals") or {}).get("data") or []:
        # The ledger books each reversal as Stripe's reversal says (`reversal:<id>`).
        found += compare_movement(
            reversal.get("balance_transaction"),
            int(reversal["amount"]),
            str(reversal["currency"]).lower(),
            payout,
            f"reversal {reversal['id']} of payout {payout.id}",
        )
    theirs = transfer_status(transfer)
    reversed_ = int(transfer.get("amount_reversed") or 0)
    if (payout.status, payout.amount_reversed, payout.stripe_transfer_id) != (
        theirs,
        reversed_,
        tid,
    ):
        found.append(
            Difference(
                "status_mismatch",
                "transfer",
                tid,
                f"payout {payout.id} is {payout.status} with {payout.amount_reversed} "
                f"reversed; its transfer says {theirs} with {reversed_} reversed",
                merchant_id=payout.merchant_id,
                ledger_value={
                    "status": payout.status,
                    "amount_reversed": payout.amount_reversed,
                    "stripe_transfer_id": payout.stripe_transfer_id,
                },
                stripe_value={"status": theirs, "amount_reversed": reversed_},
                healable=True,
            )
        )
    return found


def compare_movement(
    transaction: object, booked: int, currency: str, row: Refund | Payout, what: str
) -> list[Difference]:
    """What a balance transaction (when expanded) moved in the platform's balance beside what
    the ledger booked for `row` (`booked`: negative when the balance gave it; `what`: the
    movement, for people)."""
    if not isinstance(transaction, dict):
        return []  # not made yet (or not expanded): nothing to compare
    moved, in_ = int(transaction["amount"]), str(transaction["currency"]).lower()
    if (moved, in_) == (booked, currency):
        return []
    return [
        Difference(
            "amount_mismatch",
            "balance_transaction",
            str(transaction["id"]),
            f"{what} moved the platform's balance by {booked} {currency} in the ledger, by "
            f"{moved} {in_} in Stripe's balance transaction {transaction['id']}: the journal "
            "needs an adjusting entry",
            merchant_id=row.merchant_id,
            ledger_value={"amount": booked, "currency": currency},
            stripe_value={
                "amount": moved,
                "currency": in_,
                "type": transaction.get("type"),
                "source": stripe_id(transaction.get("source")),
            },
        )
    ]


ACCOUNT_FLAGS = ("charges_enabled", "payouts_enabled", "details_submitted")


def compare_account(account: StripeObject, merchant: Merchant | None) -> list[Difference]:
    """A connected account beside the merchant it is linked to (None: not linked now; the
    events catch-up follows accounts being made)."""
    if merchant is None or merchant.connect_status == "deauthorized":
        return []
    theirs: dict[str, Any] = {flag: bool(account.get(flag)) for flag in ACCOUNT_FLAGS}
    theirs["transfers"] = (account.get("capabilities") or {}).get("transfers")
    ours: dict[str, Any] = {flag: getattr(merchant, flag) for flag in ACCOUNT_FLAGS}
    ours["transfers"] = (merchant.capabilities or {}).get("transfers")
    if theirs == ours:
        return []
    differing = ", ".join(name for name in theirs if theirs[name] != ours[name])
    return [
        Difference(
            "status_mismatch",
            "account",
            account["id"],
            f"merchant {merchant.id}'s account differs from Stripe's in {differing}",
            merchant_id=merchant.id,
            ledger_value=ours,
            stripe_value=theirs,
            healable=True,
        )
    ]


def charge_of(refund: StripeObject) -> str | None:
    return stripe_id(refund.get("charge"))


def _shown(obj: StripeObject, *names: str) -> dict[str, Any]:
    return {
        name: stripe_id(obj[name]) if name == "destination" else obj[name]
        for name in names
        if name in obj
    }
