"""From a stored Stripe event to the apply function of its object's kind.

Handlers are found through a registry by event type (one decorator for them all). Unknown
types have no handler: they stay stored and are marked done, never an error. Every object
kind has one apply function, shared with the poller, the sweeper and manual reconcile
(`apply_object`), so there is one way into the ledger.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from reconciler.apply.accounts import apply_account, apply_deauthorization
from reconciler.apply.balance import apply_balance
from reconciler.apply.context import ApplyContext, stripe_id
from reconciler.apply.payments import (
    apply_charge,
    apply_payment_intent,
    charge_to_settle,
    settles,
)
from reconciler.apply.refunds import apply_refund
from reconciler.apply.transfers import apply_transfer
from reconciler.db.tables import payments
from reconciler.discrepancies import record_discrepancy
from reconciler.errors import IllegalTransition
from reconciler.inbox.envelope import THIN_EVENT_OBJECT
from reconciler.ledger.session import LedgerSession
from reconciler.ledger.transitions import PAYMENT_CAPTURED
from reconciler.types import StripeObject

ObjectApplier = Callable[[ApplyContext, StripeObject], Awaitable[None]]
EventHandler = Callable[[ApplyContext, dict[str, Any]], Awaitable[None]]

OBJECT_APPLIERS: dict[str, ObjectApplier] = {
    "payment_intent": apply_payment_intent,
    "charge": apply_charge,
    "refund": apply_refund,
    "transfer": apply_transfer,
    "account": apply_account,
}

HANDLERS: dict[str, EventHandler] = {}


def handles(*event_types: str) -> Callable[[EventHandler], EventHandler]:
    def register(handler: EventHandler) -> EventHandler:
        for event_type in event_types:
            HANDLERS[event_type] = handler
        return handler

    return register


async def apply_object(ctx: ApplyContext, obj: StripeObject) -> None:
    """Apply any snapshot by its kind. Where the snapshot conflicts with the ledger in a way
    rank cannot decide, apply a fresh copy from Stripe; if even that conflicts, record it."""
    applier = OBJECT_APPLIERS[obj["object"]]
    try:
        await applier(ctx, obj)
        return
    except IllegalTransition:
        if ctx.shared is not None:
            raise  # in a batch: give the batch up, this event is then applied alone
        fresh = await ctx.stripe.retrieve(obj["object"], obj["id"])
    try:
        await applier(ctx, fresh)
    except IllegalTransition as conflict:
        async with ctx.write() as tx:
            await record_discrepancy(
                tx,
                kind="status_mismatch",
                object_type=obj["object"],
                object_id=obj["id"],
                detail=str(conflict),
                detected_by=ctx.detected_by,
                now=ctx.clock(),
                stripe_value={"status": fresh.get("status")},
            )


@handles(
    "payment_intent.created",
    "payment_intent.processing",
    "payment_intent.requires_action",
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "payment_intent.canceled",
    "charge.succeeded",
    "charge.failed",
    "charge.captured",
    "charge.refunded",
    "charge.updated",
    "refund.created",
    "refund.updated",
    "refund.failed",
    "charge.refund.updated",
    "transfer.created",
    "transfer.updated",
    "transfer.reversed",
)
async def _snapshot(ctx: ApplyContext, event: dict[str, Any]) -> None:
    await apply_object(ctx, event["data"]["object"])


@handles("account.updated")
async def _account_updated(ctx: ApplyContext, event: dict[str, Any]) -> None:
    # No rank to order account snapshots by: apply what Stripe says now.
    snapshot = event["data"]["object"]
    await apply_account(ctx, await ctx.stripe.account(snapshot["id"]))


@handles("account.application.deauthorized")
async def _deauthorized(ctx: ApplyContext, event: dict[str, Any]) -> None:
    if event.get("account"):
        await apply_deauthorization(ctx, event["account"])


@handles("balance.available")
async def _balance_available(ctx: ApplyContext, event: dict[str, Any]) -> None:
    as_of = datetime.fromtimestamp(int(event["created"]), UTC)
    await apply_balance(ctx, event["data"]["object"], as_of=as_of, source="balance.available")


# Events about a connected account's own objects (its payouts, the payment a transfer
# creates on it) are not the platform ledger's; only these are applied from Connect.
CONNECT_EVENTS = frozenset({"account.updated", "account.application.deauthorized"})


def _thin_related(payload: dict[str, Any]) -> tuple[str, str] | None:
    """The object a thin event is about, if it is one of ours to apply."""
    if payload.get("context"):  # about a connected account's own object
        return None
    related = payload.get("related_object") or {}
    if related.get("type") in OBJECT_APPLIERS and related.get("id"):
        return related["type"], related["id"]
    return None


def _is_ours(payload: dict[str, Any]) -> bool:
    return not payload.get("account") or payload.get("type") in CONNECT_EVENTS


async def apply_event(ctx: ApplyContext, payload: dict[str, Any]) -> None:
    """Apply one stored event's payload, whatever its shape; unknown types change nothing."""
    if payload.get("object") == THIN_EVENT_OBJECT:
        related = _thin_related(payload)
        if related is not None:
            await apply_object(ctx, await ctx.stripe.retrieve(*related))
        return
    handler = HANDLERS.get(payload.get("type", ""))
    if handler is not None and _is_ours(payload):
        await handler(ctx, payload)


StripeRead = tuple[str, ...]  # a StripeReader method's name, then its arguments


async def stripe_reads(tx: LedgerSession, payload: dict[str, Any]) -> list[StripeRead]:
    """The Stripe reads applying this event will make, as far as they can be told beforehand
    from the event and the rows `tx` holds, so a batch can make them before its transaction.
    A read missed here is still made when applying; one listed needlessly costs a call."""
    if payload.get("object") == THIN_EVENT_OBJECT:
        related = _thin_related(payload)
        return [("retrieve", *related)] if related else []
    if not _is_ours(payload) or payload.get("type") not in HANDLERS:
        return []
    obj = (payload.get("data") or {}).get("object") or {}
    if payload["type"] == "account.updated":
        return [("account", obj["id"])]
    if obj.get("object") == "payment_intent":
        charge_id = charge_to_settle(obj, await tx.find(payments, "payment_intent_id", obj["id"]))
        return [("charge", charge_id)] if charge_id else []
    if obj.get("object") not in ("charge", "refund"):
        return []
    reads: list[StripeRead] = []
    intent_id = stripe_id(obj.get("payment_intent"))
    charge_id = obj["id"] if obj["object"] == "charge" else stripe_id(obj.get("charge"))
    payment = await tx.find(payments, "charge_id", charge_id) or (
        await tx.find(payments, "payment_intent_id", intent_id)
    )
    # The intent carries a charge's attribution, and brings a refund's payment up to date.
    behind = payment is None or (
        obj["object"] == "refund" and payment.status not in PAYMENT_CAPTURED
    )
    if intent_id and behind:
        reads.append(("payment_intent", intent_id))
    if obj["object"] == "charge" and settles(obj):
        reads.append(("charge", obj["id"]))
    return reads
