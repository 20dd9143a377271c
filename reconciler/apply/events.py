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
from reconciler.inbox.envelope import THIN_EVENT_OBJECT, created_at
from reconciler.ledger.session import LedgerSession

Payload = dict[str, Any]
EventHandler = Callable[[ApplyContext, Payload], Awaitable[None]]

HANDLERS: dict[str, EventHandler] = {}
# Stripe names a thin event about a v1 object `v1.<the snapshot event's name>`.
THIN_PREFIX = "v1."


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


async def _refresh_account(ctx: ApplyContext, account_id: str) -> None:
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


@handles("account.updated")
async def _account_updated(ctx: ApplyContext, event: Payload) -> None:
    await _refresh_account(ctx, event["data"]["object"]["id"])


@handles(THIN_PREFIX + "account.updated")
async def _thin_account_updated(ctx: ApplyContext, event: Payload) -> None:
    account_id = _thin_account_id(event)
    if account_id is not None:
        await _refresh_account(ctx, account_id)


@handles("account.application.deauthorized", THIN_PREFIX + "account.application.deauthorized")
async def _deauthorized(ctx: ApplyContext, event: Payload) -> None:
    # Thin or not, the event names no object to fetch: the account is the event's.
    account_id = _account_of(event)
    if account_id:
        await apply_deauthorization(ctx, account_id)


@handles("balance.available")
async def _balance_available(ctx: ApplyContext, event: Payload) -> None:
    await apply_balance(
        ctx, event["data"]["object"], as_of=_created(event), source="balance.available"
    )


@handles(THIN_PREFIX + "balance.available")
async def _thin_balance_available(ctx: ApplyContext, event: Payload) -> None:
    # The thin event names the balance (no id: one per account); what is fetched now is at
    # least as new as the event, so it holds as of the event's time.
    balance = await KINDS["balance"].fetch(ctx.stripe, "")
    await apply_balance(ctx, balance, as_of=_created(event), source="balance.available")


def _created(event: Payload) -> datetime:
    return datetime.fromtimestamp(created_at(event["created"]), UTC)


# Events about a connected account's own objects (its payouts, the payment a transfer
# creates on it) are not the platform ledger's; only these are applied from Connect.
CONNECT_EVENTS = frozenset({"account.updated", "account.application.deauthorized"})


def _is_thin(payload: Payload) -> bool:
    return payload.get("object") == THIN_EVENT_OBJECT


def _account_of(payload: Payload) -> str | None:
    """The connected account an event is about: `account` on a snapshot event, `context`
    on a thin one; None for the platform's own."""
    account = payload.get("context" if _is_thin(payload) else "account")
    return str(account) if account else None


def _v1_type(payload: Payload) -> str:
    """The event's v1 name: a thin event about a v1 object is named `v1.<that name>`."""
    event_type = str(payload.get("type", ""))
    return event_type.removeprefix(THIN_PREFIX) if _is_thin(payload) else event_type


def _thin_account_id(payload: Payload) -> str | None:
    related = payload.get("related_object") or {}
    if related.get("type") == "account" and related.get("id"):
        return str(related["id"])
    return _account_of(payload)


def _thin_related(payload: Payload) -> StripeRead | None:
    """The object a thin event with no handler of its own is about, if ours to apply."""
    if _account_of(payload):  # about a connected account's own object
        return None
    related = payload.get("related_object") or {}
    if related.get("type") in KINDS and related.get("id"):
        return str(related["type"]), str(related["id"])
    return None


def _is_ours(payload: Payload) -> bool:
    return not _account_of(payload) or _v1_type(payload) in CONNECT_EVENTS


async def apply_event(ctx: ApplyContext, payload: Payload) -> None:
    """Apply one stored event's payload, whatever its shape; unknown types change nothing."""
    if not _is_ours(payload):
        return
    handler = HANDLERS.get(payload.get("type", ""))
    if handler is not None:
        await handler(ctx, payload)
        return
    if _is_thin(payload):
        related = _thin_related(payload)
        if related is not None:
            kind_name, object_id = related
            await apply_object(ctx, await KINDS[kind_name].fetch(ctx.stripe, object_id))


def event_object(payload: Payload) -> Payload:
    """The snapshot a snapshot event carries (empty for a thin one)."""
    data: Payload = (payload.get("data") or {}).get("object") or {}
    return data


async def stripe_reads(tx: LedgerSession, payload: Payload) -> list[StripeRead]:
    """The Stripe reads applying this event will make, as far as they can be told beforehand
    from the event and the rows `tx` holds, so a batch can make them before its transaction.
    A read missed here is still made when applying; one listed needlessly costs a call."""
    if not _is_ours(payload):
        return []
    event_type = payload.get("type", "")
    if _is_thin(payload):
        if event_type == THIN_PREFIX + "account.updated":
            account_id = _thin_account_id(payload)
            if account_id is None or await is_deauthorized(tx, account_id):
                return []
            return [("account", account_id)]
        if event_type == THIN_PREFIX + "balance.available":
            return [("balance", "")]
        if event_type in HANDLERS:
            return []
        related = _thin_related(payload)
        return [related] if related else []
    if event_type not in HANDLERS:
        return []
    obj = event_object(payload)
    if event_type == "account.updated":
        return [] if await is_deauthorized(tx, obj["id"]) else [("account", obj["id"])]
    kind = kind_of(obj)
    if kind is None or event_type not in SNAPSHOT_EVENTS:
        return []
    return await kind.reads(tx, obj)
