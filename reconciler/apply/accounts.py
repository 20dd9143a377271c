"""Applying Connect account snapshots to merchants."""

from __future__ import annotations

from reconciler.apply import _find
from reconciler.apply._find import RowWanted
from reconciler.apply._unattributed import report_unattributed
from reconciler.apply.context import ApplyContext, metadata_int
from reconciler.ledger.merchants import mark_deauthorized, set_connect_state
from reconciler.ledger.rows import Merchant
from reconciler.types import StripeObject


async def apply_account(ctx: ApplyContext, account: StripeObject) -> None:
    """Record what Stripe says the merchant's connected account can do.

    Accounts carry no status to rank, so a stale snapshot cannot be told from a fresh one:
    callers holding an event apply a freshly fetched copy (see apply.events).
    """
    now = ctx.clock()
    async with ctx.write() as tx:
        merchant = await _find.merchant_by_account(tx, account["id"])
        if merchant is None:
            merchant = await _find.merchant_by_id(tx, metadata_int(account, "icpay_account_id"))
            if merchant is not None:  # decided on current data: another may claim it first
                merchant = await tx.lock_merchant(merchant.id)
            if merchant is not None and merchant.stripe_account_id is None:
                tx.update(merchant, now=now, stripe_account_id=account["id"])
            elif merchant is None or merchant.stripe_account_id != account["id"]:
                await report_unattributed(ctx, tx, account, "connected account of no merchant")
                return
        requirements = account.get("requirements") or {}
        await set_connect_state(
            tx,
            merchant.id,
            now=now,
            charges_enabled=bool(account.get("charges_enabled")),
            payouts_enabled=bool(account.get("payouts_enabled")),
            details_submitted=bool(account.get("details_submitted")),
            requirements_due=list(requirements.get("currently_due") or []),
        )


def account_rows(account: StripeObject) -> list[RowWanted]:
    return [
        (Merchant, "stripe_account_id", account.get("id")),
        (Merchant, "id", metadata_int(account, "icpay_account_id")),
    ]


async def apply_deauthorization(ctx: ApplyContext, account_id: str) -> None:
    """The merchant disconnected their account from the platform: nothing more can be paid."""
    async with ctx.write() as tx:
        merchant = await _find.merchant_by_account(tx, account_id)
        if merchant is not None:
            await mark_deauthorized(tx, merchant.id, now=ctx.clock())
