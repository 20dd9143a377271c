"""From a stored Stripe event to the ledger.

Handlers are found through a registry by event type (one decorator for them all). Unknown
types have no handler: they stay stored and are marked done, never an error. Snapshot events
hand their object to `apply_object`, the one way in that the poller, the sweeper and manual
reconcile share; a thin event names its object, which is fetched as its kind says.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from reconciler.apply.accounts import apply_deauthorization, is_deauthorized
from reconciler.apply.balance import apply_balance
from reconciler.apply.context import ApplyContext, StripeRead
from reconciler.apply.kinds import KINDS, kind_of
from reconciler.apply.objects import apply_object
from reconciler.gateway import AccessRevoked
from reconciler.inbox.envelope import THIN_EVENT_OBJECT
from reconciler.ledger.session import LedgerSession

Payload = dict[str, Any]
EventHandler = Callable[[ApplyContext, Payload], Awaitable[None]]

HANDLERS: dict[str, EventHandler] = {}


def handles(*event_types: str) -> Callable[[EventHandler], EventHandler]:
    def register(handler: EventHandler) -> EventHandler:
        for event_type in event_types:
            HANDLERS[event_type] = handler
        return handler

    return register


SNAPSHOT_EVENTS = (
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


@handles(*SNAPSHOT_EVENTS)
async def _snapshot(ctx: ApplyContext, event: Payload) -> None:
    await apply_object(ctx, event["data"]["object"])


@handles("account.updated")
async def _account_updated(ctx: ApplyContext, event: Payload) -> None:
    account_id = event["data"]["object"]["id"]
    async with ctx.read() as tx:
        if await is_deauthorized(tx, account_id):
            return  # a late event: Stripe no longer answers for the account, nor can it enable it
    # No rank to order account snapshots by: apply what Stripe says now.
    try:
        account = await KINDS["account"].fetch(ctx.stripe, account_id)
    except AccessRevoked:
        # Stripe no longer answers for it: the platform lost the account, whether or not
        # the deauthorization's own event has arrived yet.
        await apply_deauthorization(ctx, account_id)
        return
    await apply_object(ctx, account)


@handles("account.application.deauthorized")
async def _deauthorized(ctx: ApplyContext, event: Payload) -> None:
    if event.get("account"):
        await apply_deauthorization(ctx, event["account"])


@handles("balance.available")
async def _balance_available(ctx: ApplyContext, event: Payload) -> None:
    as_of = datetime.fromtimestamp(int(event["created"]), UTC)
    await apply_balance(ctx, event["data"]["object"], as_of=as_of, source="balance.available")


# Events about a connected account's own objects (its payouts, the payment a transfer
# creates on it) are not the platform ledger's; only these are applied from Connect.
CONNECT_EVENTS = frozenset({"account.updated", "account.application.deauthorized"})


def _thin_related(payload: Payload) -> StripeRead | None:
    """The object a thin event is about, if it is one of ours to apply."""
    if payload.get("context"):  # about a connected account's own object
        return None
    related = payload.get("related_object") or {}
    if related.get("type") in KINDS and related.get("id"):
        return str(related["type"]), str(related["id"])
    return None


def _is_ours(payload: Payload) -> bool:
    return not payload.get("account") or payload.get("type") in CONNECT_EVENTS


async def apply_event(ctx: ApplyContext, payload: Payload) -> None:
    """Apply one stored event's payload, whatever its shape; unknown types change nothing."""
    if payload.get("object") == THIN_EVENT_OBJECT:
        related = _thin_related(payload)
        if related is not None:
            kind_name, object_id = related
            await apply_object(ctx, await KINDS[kind_name].fetch(ctx.stripe, object_id))
        return
    handler = HANDLERS.get(payload.get("type", ""))
    if handler is not None and _is_ours(payload):
        await handler(ctx, payload)


def event_object(payload: Payload) -> Payload:
    """The snapshot a snapshot event carries (empty for a thin one)."""
    data: Payload = (payload.get("data") or {}).get("object") or {}
    return data


async def stripe_reads(tx: LedgerSession, payload: Payload) -> list[StripeRead]:
    """The Stripe reads applying this event will make, as far as they can be told beforehand
    from the event and the rows `tx` holds, so a batch can make them before its transaction.
    A read missed here is still made when applying; one listed needlessly costs a call."""
    if payload.get("object") == THIN_EVENT_OBJECT:
        related = _thin_related(payload)
        return [related] if related else []
    if not _is_ours(payload) or payload.get("type") not in HANDLERS:
        return []
    obj = event_object(payload)
    if payload["type"] == "account.updated":
        return [] if await is_deauthorized(tx, obj["id"]) else [("account", obj["id"])]
    kind = kind_of(obj)
    if kind is None or payload["type"] not in SNAPSHOT_EVENTS:
        return []
    return await kind.reads(tx, obj)
