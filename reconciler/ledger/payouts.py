"""Payouts: a merchant's share leaving the platform as a Stripe Connect transfer.

The amount is reserved (taken from the merchant's balance into "payouts in flight") when the
pending row is created, in the same serialised transaction as the balance check, so two
requests racing for the last dollar cannot both win. Completion moves it out of the platform's
available balance; failure or cancellation gives it back; a transfer reversal returns funds.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select

from reconciler.db.tables import journal_entries
from reconciler.errors import (
    AccountCannotReceive,
    IllegalTransition,
    InsufficientBalance,
    InvalidAmount,
)
from reconciler.ledger import accounts, journal
from reconciler.ledger.balances import merchant_balance
from reconciler.ledger.merchants import can_receive_transfers
from reconciler.ledger.requests import NO_REQUEST, RequestKey
from reconciler.ledger.rows import Merchant, Payout
from reconciler.ledger.session import LedgerSession
from reconciler.ledger.transitions import PAYOUT, PAYOUT_RELEASED, Decision
from reconciler.money import check_currency, check_positive

REVERSIBLE = frozenset({"completed", "amount_reversed"})


async def reserve_payout(
    tx: LedgerSession,
    *,
    merchant_id: int,
    amount: int,
    currency: str,
    now: datetime,
    request: RequestKey | None = None,
) -> int:
    """Check the merchant can be paid `amount` and reserve it as a pending payout.

    The merchant is locked here before the balance is read, so the check and the
    reservation are one step.
    """
    check_positive(amount, "payout amount")
    currency = check_currency(currency)
    merchant = await tx.lock_merchant(merchant_id)
    if not can_receive_transfers(merchant):
        raise AccountCannotReceive(
            f"merchant {merchant_id} has no connected account whose transfers capability is active"
        )
    balance = await merchant_balance(tx, merchant_id, currency)
    if amount > balance:
        raise InsufficientBalance(
            f"merchant {merchant_id} balance {balance} does not cover payout {amount}"
        )
    return (await book_payout(tx, merchant, amount, currency, now=now, request=request)).id


async def book_payout(
    tx: LedgerSession,
    merchant: Merchant,
    amount: int,
    currency: str,
    *,
    now: datetime,
    request: RequestKey | None = None,
) -> Payout:
    """The pending payout row and its journal entry (the amount leaves the merchant's
    balance), and nothing else: the caller has locked the merchant and made every check."""
    payout = await tx.insert(
        Payout,
        merchant_id=merchant.id,
        stripe_transfer_id=None,
        destination=merchant.stripe_account_id,
        currency=currency,
        amount=amount,
        amount_reversed=0,
        status="pending",
        failure_message=None,
        created_at=now,
        updated_at=now,
        **(request.columns() if request else NO_REQUEST),
    )
    tx.post(
        f"payout:{payout.id}:reserved",
        "payout_reserved",
        journal.two_legs(
            debit_account=accounts.merchant_payable(merchant.id),
            credit_account=accounts.PAYOUTS_IN_FLIGHT,
            amount=amount,
            currency=currency,
        ),
        now=now,
        merchant_id=merchant.id,
    )
    return payout


async def get_payout(tx: LedgerSession, payout_id: int) -> Payout:
    return await tx.get(Payout, payout_id)


async def advance_payout(
    tx: LedgerSession,
    payout_id: int,
    status: str,
    *,
    now: datetime,
    transfer_id: str | None = None,
    failure_message: str | None = None,
    from_snapshot: bool = False,
) -> Decision:
    """Move a payout to processing, completed, failed or cancelled, posting what that means.

    Reversals are not set here: they follow the transfer's reversals (`record_reversals`).
    """
    if status in ("amount_reversed", "reversed"):
        raise IllegalTransition("reversals are recorded with record_reversals(reversals)")
    payout = await tx.lock(Payout, payout_id)
    decision = PAYOUT.step(payout.status, status, from_snapshot=from_snapshot)
    if decision is not Decision.MOVE:
        return decision
    values: dict[str, Any] = {"status": status}
    if transfer_id is not None:
        values["stripe_transfer_id"] = transfer_id
    if failure_message is not None:
        values["failure_message"] = failure_message
    tx.update(payout, now=now, **values)
    if status == "completed":
        _post(
            tx,
            payout,
            "transferred",
            accounts.PAYOUTS_IN_FLIGHT,
            accounts.PLATFORM_AVAILABLE,
            payout.amount,
            now=now,
        )
    elif status in PAYOUT_RELEASED:
        _post(
            tx,
            payout,
            "released",
            accounts.PAYOUTS_IN_FLIGHT,
            accounts.merchant_payable(payout.merchant_id),
            payout.amount,
            now=now,
        )
    return decision


# One reversal of a payout's transfer: its Stripe id (`trr_...`) and amount.
Reversal = tuple[str, int]


async def record_reversals(
    tx: LedgerSession, payout_id: int, reversals: Sequence[Reversal], *, now: datetime
) -> bool:
    """Follow the reversals of the payout's transfer, as a snapshot lists them (all of them:
    Stripe's list only grows). Each is booked once, as an entry of its own keyed by its id,
    so the journal is the same whatever order snapshots arrive in; a snapshot listing no
    more than we hold (a stale one) changes nothing. Returns whether anything was booked.
    """
    payout = await tx.lock(Payout, payout_id)
    amount_reversed = sum(amount for _, amount in reversals)
    if amount_reversed <= payout.amount_reversed:
        return False
    if amount_reversed > payout.amount:
        raise InvalidAmount(
            f"reversed total {amount_reversed} exceeds payout {payout_id} amount {payout.amount}"
        )
    if payout.status not in REVERSIBLE:
        raise IllegalTransition(
            f"payout {payout_id} is {payout.status}: it has no transfer to reverse"
        )
    status = "reversed" if amount_reversed == payout.amount else "amount_reversed"
    if status != payout.status:
        PAYOUT.require(payout.status, status)
    tx.update(payout, now=now, status=status, amount_reversed=amount_reversed)
    # Reversals booked before they were keyed by id (`reversed_to:<total>` entries) are
    # covered first: only what lies beyond that total is booked again.
    covered = await _reversed_before_keys(tx, payout_id)
    for reversal_id, amount in sorted(reversals):
        booked_before = min(amount, covered)
        covered -= booked_before
        if amount == booked_before:
            continue
        # A reversal booked by an earlier snapshot is found by its key and not booked again.
        _post(
            tx,
            payout,
            f"reversal:{reversal_id}",
            accounts.PLATFORM_AVAILABLE,
            accounts.merchant_payable(payout.merchant_id),
            amount - booked_before,
            now=now,
        )
    return True


async def _reversed_before_keys(tx: LedgerSession, payout_id: int) -> int:
    """The reversed total this payout's journal recorded as running totals (keys
    `payout:<id>:reversed_to:<total>`, before reversals were booked one by one)."""
    prefix = f"payout:{payout_id}:reversed_to:"
    keys = await tx.execute(
        select(journal_entries.c.idempotency_key).where(
            journal_entries.c.idempotency_key.startswith(prefix, autoescape=True)
        )
    )
    return max((int(key.removeprefix(prefix)) for (key,) in keys), default=0)


def _post(
    tx: LedgerSession,
    payout: Payout,
    fact: str,
    debit_account: str,
    credit_account: str,
    amount: int,
    *,
    now: datetime,
) -> None:
    tx.post(
        f"payout:{payout.id}:{fact}",
        f"payout_{fact.split(':')[0]}",
        journal.two_legs(
            debit_account=debit_account,
            credit_account=credit_account,
            amount=amount,
            currency=payout.currency,
        ),
        now=now,
        merchant_id=payout.merchant_id,
    )
