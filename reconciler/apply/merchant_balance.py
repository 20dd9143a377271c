"""What a merchant's balance, once changed, may need a person to see.

Two conditions, reported while they hold and closed by themselves once they no longer do, so
the open discrepancy always says how things stand now, whatever order Stripe's events came
in: a balance below zero (the merchant owes ICPay: a refund Stripe made of money already paid
out, or a full refund when ICPay keeps its fee), and money owed to a merchant who
disconnected their account (it cannot be paid out).
"""

from __future__ import annotations

from typing import Any

from reconciler.apply.context import ApplyContext
from reconciler.ledger.balances import running_balances
from reconciler.ledger.rows import Merchant
from reconciler.ledger.session import LedgerSession
from reconciler.reconcile.discrepancies import record_discrepancy, resolve_discrepancy


def _amounts(balances: dict[str, int]) -> str:
    return ", ".join(f"{amount} {currency}" for currency, amount in sorted(balances.items()))


async def follow_merchant_balance(
    ctx: ApplyContext, tx: LedgerSession, merchant_id: int, *, cause: str
) -> None:
    """After a change to the merchant's balance (`cause` says which): report or close."""
    merchant = await tx.get(Merchant, merchant_id)
    balances = {
        currency: balance
        for (_, currency), balance in (await running_balances(tx, merchant_id)).items()
    }
    await _follow_negative(ctx, tx, merchant, balances, cause)
    await _follow_owed(ctx, tx, merchant, balances)


async def report_owed_if_deauthorized(
    ctx: ApplyContext, tx: LedgerSession, merchant: Merchant
) -> None:
    """Money ICPay owes a merchant who disconnected cannot be paid out: report it, whether
    it was owed when they left or arrived after (events come in any order)."""
    if merchant.connect_status != "deauthorized" or merchant.stripe_account_id is None:
        return
    balances = {
        currency: balance
        for (_, currency), balance in (await running_balances(tx, merchant.id)).items()
    }
    await _follow_owed(ctx, tx, merchant, balances)


async def _follow_negative(
    ctx: ApplyContext,
    tx: LedgerSession,
    merchant: Merchant,
    balances: dict[str, int],
    cause: str,
) -> None:
    short = {currency: balance for currency, balance in balances.items() if balance < 0}
    where: dict[str, Any] = {"object_type": "merchant", "object_id": str(merchant.id)}
    if not short:
        await resolve_discrepancy(
            tx,
            kind="negative_merchant_balance",
            **where,
            resolution=f"the balance is back to {_amounts(balances) or 0} after {cause}",
            resolved_by=ctx.detected_by,
            now=ctx.clock(),
        )
        return
    await record_discrepancy(
        tx,
        kind="negative_merchant_balance",
        **where,
        merchant_id=merchant.id,
        detail=f"{cause} took merchant {merchant.id}'s balance to {_amounts(short)}",
        detected_by=ctx.detected_by,
        now=ctx.clock(),
        ledger_value={"balances": short},
        stripe_value={"cause": cause},
    )


async def _follow_owed(
    ctx: ApplyContext, tx: LedgerSession, merchant: Merchant, balances: dict[str, int]
) -> None:
    if merchant.connect_status != "deauthorized" or merchant.stripe_account_id is None:
        return
    owed = {currency: balance for currency, balance in balances.items() if balance > 0}
    where: dict[str, Any] = {"object_type": "account", "object_id": merchant.stripe_account_id}
    if not owed:
        await resolve_discrepancy(
            tx,
            kind="deauthorized_merchant_owed",
            **where,
            resolution="nothing is owed to the merchant any more",
            resolved_by=ctx.detected_by,
            now=ctx.clock(),
        )
        return
    await record_discrepancy(
        tx,
        kind="deauthorized_merchant_owed",
        **where,
        merchant_id=merchant.id,
        detail=(
            f"merchant {merchant.id} disconnected {merchant.stripe_account_id} while ICPay "
            f"owes them {_amounts(owed)}"
        ),
        detected_by=ctx.detected_by,
        now=ctx.clock(),
        ledger_value={"owed": owed},
    )
