"""Applying Connect account snapshots to merchants."""

from __future__ import annotations

from reconciler.apply import _find
from reconciler.apply._find import RowWanted
from reconciler.apply._unattributed import report_unattributed
from reconciler.apply.context import ApplyContext, metadata_int
from reconciler.apply.merchant_balance import report_owed_if_deauthorized
from reconciler.ledger.connected_accounts import link_account, owner_of
from reconciler.ledger.merchants import ConnectState, mark_deauthorized, set_connect_state
from reconciler.ledger.rows import Merchant
from reconciler.ledger.session import LedgerSession
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
            if await owner_of(tx, account["id"]) is not None:
                return  # an account its merchant left behind: what it says is not theirs now
            merchant = await _find.merchant_by_id(tx, metadata_int(account, "icpay_account_id"))
            if merchant is not None:  # decided on current data: another may claim it first
                merchant = await tx.lock_merchant(merchant.id)
            if merchant is not None and merchant.stripe_account_id is None:
                # Ours, made for this merchant, its id lost (a crash after Stripe answered).
                country = account.get("country")
                await link_account(tx, merchant.id, account["id"], country=country, now=now)
            elif merchant is None or merchant.stripe_account_id != account["id"]:
                await report_unattributed(ctx, tx, account, "connected account of no merchant")
                return
        await set_connect_state(tx, merchant.id, ConnectState.of_account(account), now=now)


def account_rows(account: StripeObject) -> list[RowWanted]:
    return [
        (Merchant, "stripe_account_id", account.get("id")),
        (Merchant, "id", metadata_int(account, "icpay_account_id")),
    ]


async def apply_deauthorization(ctx: ApplyContext, account_id: str) -> None:
    """The merchant disconnected their account from the platform: nothing more can be paid
    to it. What ICPay still owes them is not lost: it is reported for a person to settle."""
    async with ctx.write() as tx:
        merchant = await _find.merchant_by_account(tx, account_id)
        if merchant is None:
            return
        await mark_deauthorized(tx, merchant.id, now=ctx.clock())
        await report_owed_if_deauthorized(ctx, tx, merchant)


async def is_deauthorized(tx: LedgerSession, account_id: str) -> bool:
    """The platform's access to this merchant's account is gone: Stripe no longer answers
    for it, and nothing it says can enable the merchant again."""
    merchant = await _find.merchant_by_account(tx, account_id)
    return merchant is not None and merchant.connect_status == "deauthorized"
