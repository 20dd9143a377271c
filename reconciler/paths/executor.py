"""The payout executor: makes the Connect transfer of each accepted payout, exactly once.

Row-driven: a payout `pending` in the database is work, whoever accepted it and whenever the
process last died. The executor claims it (`processing`, in a transaction that locks it), then
asks Stripe for the transfer under the payout's own idempotency key, `payout:<id>`, so a retry
after a timeout, a 5xx or a crash between the call and the status update gets the same
transfer. What Stripe answers is applied through the same function the webhooks use; a
refusal (4xx: not enough available funds, an account that cannot take it) fails the payout
with Stripe's message and gives its amount back. Past Stripe's key window (24 hours) the
transfer is looked for by its metadata before ever being created again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from sqlalchemy import or_, select

from reconciler.apply.context import ApplyContext
from reconciler.apply.objects import apply_object
from reconciler.db.tables import payouts
from reconciler.gateway import GatewayError, StripeGateway
from reconciler.ledger.payouts import advance_payout
from reconciler.ledger.rows import Payout
from reconciler.ledger.session import ledger_reader, ledger_session
from reconciler.ledger.transitions import Decision
from reconciler.types import StripeObject

logger = logging.getLogger(__name__)

# Stripe keeps a key at least 24 hours; past this, the key may be gone.
KEY_WINDOW = timedelta(hours=23)


class PayoutExecutor:
    def __init__(
        self,
        context: ApplyContext,
        gateway: StripeGateway,
        *,
        retry_after: timedelta = timedelta(seconds=30),
        poll_interval: float = 5.0,
        batch: int = 50,
    ) -> None:
        self._context = context
        self._gateway = gateway
        self._retry_after = retry_after
        self._poll_interval = poll_interval
        self._batch = batch
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._running: set[int] = set()

    def wake(self) -> None:
        self._wakeup.set()

    def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._loop(), name="payout-executor")

    async def stop(self) -> None:
        if self._task is None:
            return
        self._stopping = True
        self._wakeup.set()
        # A payout in hand is left `processing`: the next start retries it with its key.
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _loop(self) -> None:
        while not self._stopping:
            self._wakeup.clear()
            try:
                await self.run_once()
            except Exception as error:  # the database or Stripe is down: keep trying
                logger.warning("payout executor: %s", error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self._poll_interval)

    async def run_once(self) -> int:
        """Execute every payout due: new ones, and those left processing a while ago."""
        now = self._context.clock()
        async with ledger_reader(self._context.db) as tx:
            due = await tx.execute(
                select(payouts.c.id)
                .where(
                    or_(
                        payouts.c.status == "pending",
                        (payouts.c.status == "processing")
                        & (payouts.c.updated_at <= now - self._retry_after),
                    )
                )
                .order_by(payouts.c.id)
                .limit(self._batch)
            )
            ids = [int(payout_id) for (payout_id,) in due]
        for payout_id in ids:
            await self.execute(payout_id)
        return len(ids)

    async def execute(self, payout_id: int) -> None:
        """Make (or find) the payout's transfer and apply Stripe's answer."""
        if payout_id in self._running:
            return  # this process is at it already
        self._running.add(payout_id)
        try:
            payout = await self._claim(payout_id)
            if payout is not None:
                await self._transfer(payout)
        finally:
            self._running.discard(payout_id)

    async def _claim(self, payout_id: int) -> Payout | None:
        now = self._context.clock()
        async with ledger_session(self._context.db) as tx:
            payout = await tx.lock(Payout, payout_id)
            if payout.status == "pending":
                await advance_payout(tx, payout_id, "processing", now=now)
            elif payout.status != "processing" or payout.stripe_transfer_id is not None:
                return None  # done, cancelled, or its transfer already known
            else:
                tx.update(payout, now=now)  # a retry: not again until retry_after
            return payout

    async def _transfer(self, payout: Payout) -> None:
        try:
            transfer = None
            if self._context.clock() - payout.created_at > KEY_WINDOW:
                transfer = await self._find(payout)
            if transfer is None:
                if payout.destination is None:
                    await self._fail(payout, "the payout names no connected account")
                    return
                transfer = await self._gateway.create_transfer(
                    amount=payout.amount,
                    currency=payout.currency,
                    destination=payout.destination,
                    metadata=transfer_metadata(payout),
                    idempotency_key=f"payout:{payout.id}",
                )
        except GatewayError as error:
            if error.retryable or error.http_status is None or error.http_status >= 500:
                logger.warning("payout %d: Stripe did not answer (%s): retried", payout.id, error)
                return
            await self._fail(payout, error.stripe_message or str(error))
            return
        await apply_object(self._context, transfer)

    async def _fail(self, payout: Payout, message: str) -> None:
        async with ledger_session(self._context.db) as tx:
            decision = await advance_payout(
                tx, payout.id, "failed", now=self._context.clock(), failure_message=message
            )
        if decision is Decision.MOVE:
            logger.info("payout %d failed: %s", payout.id, message)

    async def _find(self, payout: Payout) -> StripeObject | None:
        """The payout's transfer if Stripe made it, found by our metadata: past the key
        window a retried create could make a second one."""
        if payout.destination is None:
            return None
        since = int(payout.created_at.timestamp()) - 3600
        for transfer in await self._gateway.transfers_to(payout.destination, created_gte=since):
            if (transfer.get("metadata") or {}).get("icpay_payout_id") == str(payout.id):
                return transfer
        return None


def transfer_metadata(payout: Payout) -> dict[str, str]:
    return {"icpay_payout_id": str(payout.id), "icpay_account_id": str(payout.merchant_id)}
