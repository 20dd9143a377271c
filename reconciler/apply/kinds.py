"""One description per kind of Stripe object the ledger follows, read by every way in.

For each kind: the function that applies a snapshot of it, the rows a batch reads before
applying one, the Stripe reads applying will make (so a batch makes them before its
transaction), and how to fetch a fresh copy. The event dispatcher, the batch path, thin
events and (to come) the poller, the sweeper and the reconciler all read them here, so a new
kind, or a new thing applying needs, is declared once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from reconciler.apply._find import RowWanted
from reconciler.apply.accounts import account_rows, apply_account
from reconciler.apply.balance import apply_fetched_balance
from reconciler.apply.context import ApplyContext, StripeRead, StripeReader
from reconciler.apply.payments import (
    apply_charge,
    apply_payment_intent,
    charge_reads,
    charge_refunds,
    charge_rows,
    intent_reads,
    intent_rows,
)
from reconciler.apply.refunds import apply_refund, refund_in_context, refund_reads, refund_rows
from reconciler.apply.transfers import apply_transfer, transfer_reads, transfer_rows
from reconciler.ledger.session import LedgerSession
from reconciler.types import StripeObject

# Returns the snapshot as applied (a fresh copy if it fetched one) when what it reveals is
# to be applied too; None otherwise. Kinds that reveal nothing just return None.
Apply = Callable[[ApplyContext, StripeObject], Awaitable[StripeObject | None]]
Reveals = Callable[[ApplyContext, StripeObject], Awaitable[list[StripeObject]]]
Rows = Callable[[StripeObject], list[RowWanted]]
Reads = Callable[[LedgerSession, StripeObject], Awaitable[list[StripeRead]]]
Fetch = Callable[[StripeReader, str], Awaitable[StripeObject]]
Refetch = Callable[[StripeReader, StripeObject], Awaitable[list[StripeObject]]]


def _no_rows(obj: StripeObject) -> list[RowWanted]:
    return []


async def _no_reads(tx: LedgerSession, obj: StripeObject) -> list[StripeRead]:
    return []


@dataclass(frozen=True)
class ObjectKind:
    """What every way into the ledger needs to know about one kind of Stripe object."""

    name: str  # Stripe's `object` value
    apply: Apply
    fetch: Fetch
    rows: Rows = _no_rows
    reads: Reads = _no_reads
    # Objects a snapshot of this kind shows that must be applied with it (a charge's refunds),
    # read from the snapshot `apply` returns.
    reveals: Reveals | None = None
    # What to fetch and apply, in order, when a snapshot conflicts with the ledger (default:
    # a fresh copy of the object itself).
    refetch: Refetch | None = None

    async def fresh(self, stripe: StripeReader, obj: StripeObject) -> list[StripeObject]:
        if self.refetch is not None:
            return await self.refetch(stripe, obj)
        return [await self.fetch(stripe, obj["id"])]


def _fetch_balance(stripe: StripeReader, _id: str) -> Awaitable[StripeObject]:
    return stripe.balance()  # one balance per account: it has no id


KINDS: dict[str, ObjectKind] = {
    kind.name: kind
    for kind in (
        ObjectKind(
            "payment_intent",
            apply_payment_intent,
            fetch=lambda stripe, object_id: stripe.payment_intent(object_id),
            rows=intent_rows,
            reads=intent_reads,
        ),
        ObjectKind(
            "charge",
            apply_charge,
            fetch=lambda stripe, object_id: stripe.charge(object_id),
            rows=charge_rows,
            reads=charge_reads,
            reveals=charge_refunds,
        ),
        ObjectKind(
            "refund",
            apply_refund,
            fetch=lambda stripe, object_id: stripe.refund(object_id),
            rows=refund_rows,
            reads=refund_reads,
            refetch=refund_in_context,
        ),
        ObjectKind(
            "transfer",
            apply_transfer,
            fetch=lambda stripe, object_id: stripe.transfer(object_id),
            rows=transfer_rows,
            reads=transfer_reads,
        ),
        ObjectKind(
            "account",
            apply_account,
            fetch=lambda stripe, object_id: stripe.account(object_id),
            rows=account_rows,
        ),
        ObjectKind("balance", apply_fetched_balance, fetch=_fetch_balance),
    )
}


def kind_of(obj: StripeObject) -> ObjectKind | None:
    """The description of this snapshot's kind, or None if the ledger does not follow it."""
    return KINDS.get(str(obj.get("object")))
