"""Which Stripe accounts a merchant has had, and which one is theirs now.

A merchant links one connected account at a time (`merchants.stripe_account_id`). Choosing
another country before onboarding is submitted makes a new account; disconnecting clears the
link on our side only (the account lives on at Stripe). Either way the old account keeps its
row here: its late events are recognised as a former account's and never link it again, and
payouts already made to it stay attributable.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update

from reconciler.db.tables import connected_accounts
from reconciler.errors import ReconcilerError
from reconciler.ledger.merchants import ConnectState, connect_status
from reconciler.ledger.rows import Merchant
from reconciler.ledger.session import LedgerSession


class AccountTaken(ReconcilerError):
    """The Stripe account is, or was, another merchant's."""

    code = "invalid_request"


async def owner_of(tx: LedgerSession, account_id: str) -> tuple[int, bool] | None:
    """The merchant an account was ever linked to, and whether it is linked still."""
    row = (
        await tx.execute(
            select(connected_accounts.c.merchant_id, connected_accounts.c.unlinked_at).where(
                connected_accounts.c.stripe_account_id == account_id
            )
        )
    ).first()
    return None if row is None else (int(row.merchant_id), row.unlinked_at is None)


async def country_of(tx: LedgerSession, account_id: str) -> str | None:
    """The country the account was made for, as we asked Stripe (None if not ours)."""
    query = select(connected_accounts.c.country).where(
        connected_accounts.c.stripe_account_id == account_id
    )
    country: str | None = (await tx.execute(query)).scalar_one_or_none()
    return country


async def link_account(
    tx: LedgerSession, merchant_id: int, account_id: str, *, country: str | None, now: datetime
) -> Merchant:
    """Make `account_id` the merchant's connected account, the previous one (if any) left
    behind. The Connect state starts afresh: the new account says what it can do."""
    merchant = await tx.lock_merchant(merchant_id)
    if merchant.stripe_account_id == account_id:
        return merchant
    owner = await owner_of(tx, account_id)
    if owner is not None:
        raise AccountTaken(f"Stripe account {account_id} was already linked to a merchant")
    if merchant.stripe_account_id is not None:
        await _unlink(tx, merchant.stripe_account_id, now)
    await tx.execute(
        connected_accounts.insert().values(
            merchant_id=merchant_id, stripe_account_id=account_id, country=country, linked_at=now
        )
    )
    state = ConnectState()
    tx.update(
        merchant,
        now=now,
        stripe_account_id=account_id,
        connect_status=connect_status(account_id, state),
        charges_enabled=state.charges_enabled,
        payouts_enabled=state.payouts_enabled,
        details_submitted=state.details_submitted,
        capabilities=state.capabilities,
        requirements=state.requirements,
    )
    return merchant


async def unlink_account(tx: LedgerSession, merchant_id: int, *, now: datetime) -> str | None:
    """Clear the merchant's link (ours only: Stripe keeps the account). History and balance
    stay. Returns the account left behind, None if there was none."""
    merchant = await tx.lock_merchant(merchant_id)
    account_id = merchant.stripe_account_id
    if account_id is None:
        return None
    await _unlink(tx, account_id, now)
    state = ConnectState()
    tx.update(
        merchant,
        now=now,
        stripe_account_id=None,
        connect_status=connect_status(None, state),
        charges_enabled=False,
        payouts_enabled=False,
        details_submitted=False,
        capabilities={},
        requirements=state.requirements,
    )
    return account_id


async def _unlink(tx: LedgerSession, account_id: str, now: datetime) -> None:
    await tx.execute(
        update(connected_accounts)
        .where(
            connected_accounts.c.stripe_account_id == account_id,
            connected_accounts.c.unlinked_at.is_(None),
        )
        .values(unlinked_at=now)
    )
