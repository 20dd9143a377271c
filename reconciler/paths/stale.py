"""The stale sweep: payouts and refunds still pending or processing long after they were
made are read again from Stripe and applied through the same functions as webhooks.

A lost webhook, or a process that died between Stripe's answer and the status update, leaves
a row waiting for news that will not come. The sweep asks Stripe: by the object's id when
ICPay knows it, else by ICPay's metadata (the executor's own lookups), and applies what it
finds. A payout or refund Stripe never made is handed back to the executor, which makes it
under its idempotency key: with Stripe's answer to the first try or a new one, there is only
ever one. Every step is safe to repeat, so two sweeps at once (or a sweep beside the
executor) change nothing more than one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from sqlalchemy import select

from reconciler.apply.context import ApplyContext
from reconciler.apply.objects import apply_object
from reconciler.db.tables import payouts, refunds
from reconciler.gateway import GatewayError, StripeGateway
from reconciler.ledger.rows import Payment, Payout, Refund
from reconciler.ledger.session import ledger_reader
from reconciler.paths.executor import Executor
from reconciler.types import StripeObject

logger = logging.getLogger(__name__)

STALE_PAYOUT_STATUSES = ("pending", "processing")
STALE_REFUND_STATUSES = ("pending", "requires_action")


@dataclass
class SweepResult:
    payouts: int = 0
    refunds: int = 0
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        text = f"{self.payouts} payouts, {self.refunds} refunds read again from Stripe"
        if self.errors:
            text += f"; {len(self.errors)} could not be: " + "; ".join(self.errors[:5])
        return text


class SweepIncomplete(Exception):
    """Some stale objects could not be read from Stripe; the next sweep tries them again."""


class StaleSweep:
    def __init__(
        self,
        context: ApplyContext,
        gateway: StripeGateway,
        executor: Executor,
        *,
        stale_after: timedelta,
        batch: int = 200,
    ) -> None:
        self._context = replace(context, detected_by="sweeper")
        self._gateway = gateway
        self._executor = executor
        self._stale_after = stale_after
        self._batch = batch

    async def run(self, now: datetime) -> str:
        """Sweep what was made before `now - stale_after` and is still unsettled; raises
        `SweepIncomplete` (after doing the rest) if Stripe could not be asked about some."""
        result = await self.sweep(now)
        if result.errors:
            raise SweepIncomplete(result.summary())
        return result.summary()

    async def sweep(self, now: datetime) -> SweepResult:
        before = now - self._stale_after
        payout_ids, refund_ids = await self._stale(before)
        result = SweepResult()
        for payout_id in payout_ids:
            try:
                await self._payout(payout_id)
                result.payouts += 1
            except GatewayError as error:
                result.errors.append(f"payout {payout_id}: {error}")
        for refund_id in refund_ids:
            try:
                await self._refund(refund_id)
                result.refunds += 1
            except GatewayError as error:
                result.errors.append(f"refund {refund_id}: {error}")
        return result

    async def _stale(self, before: datetime) -> tuple[list[int], list[int]]:
        async with ledger_reader(self._context.db) as tx:
            stale_payouts = await tx.execute(
                select(payouts.c.id)
                .where(payouts.c.status.in_(STALE_PAYOUT_STATUSES), payouts.c.created_at <= before)
                .order_by(payouts.c.id)
                .limit(self._batch)
            )
            stale_refunds = await tx.execute(
                select(refunds.c.id)
                .where(refunds.c.status.in_(STALE_REFUND_STATUSES), refunds.c.created_at <= before)
                .order_by(refunds.c.id)
                .limit(self._batch)
            )
            return [int(i) for (i,) in stale_payouts], [int(i) for (i,) in stale_refunds]

    async def _payout(self, payout_id: int) -> None:
        async with ledger_reader(self._context.db) as tx:
            payout = await tx.get(Payout, payout_id)
        transfer: StripeObject | None
        if payout.stripe_transfer_id is not None:
            transfer = await self._gateway.transfer(payout.stripe_transfer_id)
        else:
            transfer = await self._executor.find_transfer(payout)
        if transfer is not None:
            await apply_object(self._context, transfer)
        else:
            # Stripe has no transfer for it: make it, under the payout's own key.
            await self._executor.execute(payout_id)

    async def _refund(self, refund_id: int) -> None:
        async with ledger_reader(self._context.db) as tx:
            refund = await tx.get(Refund, refund_id)
            payment = await tx.get(Payment, refund.payment_id)
        made: StripeObject | None
        if refund.stripe_refund_id is not None:
            made = await self._gateway.refund(refund.stripe_refund_id)
        elif payment.charge_id is not None:
            made = await self._executor.find_refund(refund, payment.charge_id)
        else:
            made = None
        if made is not None:
            await apply_object(self._context, made)
        elif refund.source == "api":
            await self._executor.execute_refund(refund_id)
