"""From a stored Stripe event to the apply function of its object's kind.

Handlers are found through a registry by event type (one decorator for them all). Unknown
types have no handler: they stay stored and are marked done, never an error. Every object
kind has one apply function, shared with the poller, the sweeper and manual reconcile
(`apply_object`), so there is one way into the ledger.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from reconciler.apply.accounts import apply_account, apply_deauthorization
from reconciler.apply.balance import apply_balance
from reconciler.apply.context import ApplyContext, utcnow
from reconciler.apply.payments import apply_charge, apply_payment_intent
from reconciler.apply.refunds import apply_refund
from reconciler.apply.transfers import apply_transfer
from reconciler.config import Settings
from reconciler.db.engine import Database
from reconciler.discrepancies import record_discrepancy
from reconciler.errors import IllegalTransition
from reconciler.gateway import StripeObject
from reconciler.money import FeeSchedule

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


class StoredEvent(Protocol):
    @property
    def payload(self) -> str: ...


class EventApplier:
    """What the inbox worker calls for each stored event. Idempotent: applying an event
    again changes nothing, so a crash between applying and marking done is harmless."""

    def __init__(
        self,
        database: Database,
        stripe: Any,
        settings: Settings,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.context = ApplyContext(
            db=database,
            stripe=stripe,
            fees=FeeSchedule(settings.platform_fee_percent, settings.platform_fee_fixed),
            detected_by="webhook",
            clock=clock,
        )

    async def __call__(self, event: StoredEvent) -> None:
        payload = json.loads(event.payload)
        if payload.get("object") == "v2.core.event":
            await self._apply_thin(payload)
            return
        if payload.get("account") and payload.get("type") not in CONNECT_EVENTS:
            return
        handler = HANDLERS.get(payload.get("type", ""))
        if handler is not None:
            await handler(self.context, payload)

    async def _apply_thin(self, payload: dict[str, Any]) -> None:
        if payload.get("context"):  # about a connected account's own object
            return
        related = payload.get("related_object") or {}
        if related.get("type") in OBJECT_APPLIERS and related.get("id"):
            fresh = await self.context.stripe.retrieve(related["type"], related["id"])
            await apply_object(self.context, fresh)
