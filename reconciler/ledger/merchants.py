"""Merchant accounts and the state of their Stripe Connect (Express) account."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from reconciler.db.tables import connected_accounts
from reconciler.ledger.rows import Merchant, Requirements
from reconciler.ledger.session import LedgerSession

CONNECT_STATUSES = ("not_connected", "onboarding", "enabled", "restricted", "deauthorized")
# What ICPay needs of a merchant's account: to receive Connect transfers (their payouts).
TRANSFERS = "transfers"


@dataclass(frozen=True)
class ConnectState:
    """What Stripe says of a connected account, as `account.updated` or a fetch gives it."""

    charges_enabled: bool = False
    payouts_enabled: bool = False
    details_submitted: bool = False
    capabilities: dict[str, str] = field(default_factory=dict)
    requirements: Requirements = field(default_factory=lambda: Requirements())

    @classmethod
    def of_account(cls, account: Mapping[str, Any]) -> ConnectState:
        """From a Stripe account object."""
        raw = account.get("requirements") or {}

        def listed(name: str) -> list[str]:
            return sorted(str(item) for item in raw.get(name) or [])

        requirements = Requirements(
            currently_due=listed("currently_due"),
            eventually_due=listed("eventually_due"),
            past_due=listed("past_due"),
            pending_verification=listed("pending_verification"),
            disabled_reason=raw.get("disabled_reason"),
            current_deadline=raw.get("current_deadline"),
        )
        return cls(
            charges_enabled=bool(account.get("charges_enabled")),
            payouts_enabled=bool(account.get("payouts_enabled")),
            details_submitted=bool(account.get("details_submitted")),
            capabilities={
                str(name): str(status)
                for name, status in (account.get("capabilities") or {}).items()
            },
            requirements=requirements,
        )

    @property
    def can_receive_transfers(self) -> bool:
        return self.capabilities.get(TRANSFERS) == "active"


def connect_status(stripe_account_id: str | None, state: ConnectState) -> str:
    """Summarise Stripe's account state into the one status operators read. `enabled` means
    ICPay can pay the merchant (a transfer needs the `transfers` capability active);
    `payouts_enabled` is about the merchant's own bank payouts and is shown on its own."""
    if stripe_account_id is None:
        return "not_connected"
    if state.can_receive_transfers:
        return "enabled"
    if not state.details_submitted:
        return "onboarding"
    return "restricted"


def can_receive_transfers(merchant: Merchant) -> bool:
    """Whether a Connect transfer to the merchant's account can go through."""
    return (
        merchant.stripe_account_id is not None
        and merchant.connect_status != "deauthorized"
        and merchant.capabilities.get(TRANSFERS) == "active"
    )


async def create_merchant(
    tx: LedgerSession,
    *,
    name: str,
    now: datetime,
    stripe_account_id: str | None = None,
    email: str | None = None,
) -> int:
    state = ConnectState()
    merchant = await tx.insert(
        Merchant,
        name=name,
        email=email,
        stripe_account_id=stripe_account_id,
        connect_status=connect_status(stripe_account_id, state),
        charges_enabled=state.charges_enabled,
        payouts_enabled=state.payouts_enabled,
        details_submitted=state.details_submitted,
        capabilities=state.capabilities,
        requirements=state.requirements,
        created_at=now,
        updated_at=now,
    )
    if stripe_account_id is not None:  # its first account (see ledger.connected_accounts)
        await tx.execute(
            connected_accounts.insert().values(
                merchant_id=merchant.id, stripe_account_id=stripe_account_id, linked_at=now
            )
        )
    return merchant.id


async def get_merchant(tx: LedgerSession, merchant_id: int) -> Merchant:
    return await tx.get(Merchant, merchant_id)


async def set_connect_state(
    tx: LedgerSession, merchant_id: int, state: ConnectState, *, now: datetime
) -> None:
    """Record what Stripe says of the merchant's connected account. A merchant who
    disconnected stays disconnected: a late account snapshot cannot turn payouts back on."""
    merchant = await tx.lock_merchant(merchant_id)
    if merchant.connect_status == "deauthorized":
        return
    tx.update(
        merchant,
        now=now,
        charges_enabled=state.charges_enabled,
        payouts_enabled=state.payouts_enabled,
        details_submitted=state.details_submitted,
        capabilities=state.capabilities,
        requirements=state.requirements,
        connect_status=connect_status(merchant.stripe_account_id, state),
    )


async def mark_deauthorized(tx: LedgerSession, merchant_id: int, *, now: datetime) -> None:
    """The merchant disconnected their account from the platform."""
    merchant = await tx.lock_merchant(merchant_id)
    tx.update(
        merchant,
        now=now,
        connect_status="deauthorized",
        charges_enabled=False,
        payouts_enabled=False,
        capabilities={name: "inactive" for name in merchant.capabilities},
    )
