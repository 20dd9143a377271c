"""The executor: makes the Connect transfer of each accepted payout, and the Stripe refund
of each refund ICPay accepted, exactly once.

Row-driven: a payout `pending` (a refund of ours with no Stripe id yet) in the database is
work, whoever accepted it and whenever the process last died. The executor claims it
(`processing`, in a transaction that locks it), then asks Stripe for the transfer under the
payout's own idempotency key, `payout:<id>`, so a retry after a timeout, a 5xx or a crash
between the call and the status update gets the same transfer. What Stripe answers is
applied through the same function the webhooks use; a refusal (4xx: not enough available
funds, an account that cannot take it) fails the payout with Stripe's message and gives its
amount back. Past Stripe's key window (24 hours) the transfer is looked for by its metadata
before ever being created again. Refunds follow the same steps under the key `refund:<id>`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

from sqlalchemy import or_, select

from reconciler.apply.context import ApplyContext
from reconciler.apply.objects import apply_object
from reconciler.db.tables import payouts, refunds
from reconciler.gateway import GatewayError, StripeGateway
from reconciler.ledger.payouts import advance_payout
from reconciler.ledger.refunds import advance_refund
from reconciler.ledger.rows import Merchant, Payment, Payout, Refund
from reconciler.ledger.session import ledger_reader, ledger_session
from reconciler.ledger.transitions import Decision
from reconciler.types import StripeObject

logger = logging.getLogger(__name__)

# Stripe keeps a key at least 24 hours; past this, the key may be gone.
KEY_WINDOW = timedelta(hours=23)


class Executor:
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
        self._running: set[tuple[str, int]] = set()

    def wake(self) -> None:
        self._wakeup.set()

    def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._loop(), name="executor")

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
                logger.warning("executor: %s", error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self._poll_interval)

    async def run_once(self) -> int:
        """Execute every payout and refund due: new ones, and those left a while ago."""
        return await self._payouts_due() + await self._refunds_due()

    async def _refunds_due(self) -> int:
        now = self._context.clock()
        async with ledger_reader(self._context.db) as tx:
            due = await tx.execute(
                select(refunds.c.id)
                .where(
                    refunds.c.source == "api",
                    refunds.c.status == "pending",
                    refunds.c.stripe_refund_id.is_(None),
                    or_(
                        refunds.c.updated_at == refunds.c.created_at,  # never tried
                        refunds.c.updated_at <= now - self._retry_after,
                    ),
                )
                .order_by(refunds.c.id)
                .limit(self._batch)
            )
            ids = [int(refund_id) for (refund_id,) in due]
        for refund_id in ids:
            await self.execute_refund(refund_id)
        return len(ids)

    async def _payouts_due(self) -> int:
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
            await self.execute(payout_id, retry_now=False)
        return len(ids)

    async def execute(self, payout_id: int, *, retry_now: bool = True) -> None:
        """Make (or find) the payout's transfer and apply Stripe's answer. A payout left
        processing is tried again at once, or (`retry_now` off: the background loop, which
        read its list a while ago) only once `retry_after` has passed since the last try."""
        async with self._alone(("payout", payout_id)) as mine:
            payout = await self._claim(payout_id, retry_now) if mine else None
            if payout is not None:
                await self._transfer(payout)

    async def execute_refund(self, refund_id: int) -> None:
        """Make (or find) the refund at Stripe and apply Stripe's answer."""
        async with self._alone(("refund", refund_id)) as mine:
            claimed = await self._claim_refund(refund_id) if mine else None
            if claimed is not None:
                await self._refund(*claimed)

    @contextlib.asynccontextmanager
    async def _alone(self, work: tuple[str, int]) -> AsyncIterator[bool]:
        """Whether this process may take `work` now (no other task of it is at it)."""
        if work in self._running:
            yield False
            return
        self._running.add(work)
        try:
            yield True
        finally:
            self._running.discard(work)

    async def _claim_refund(self, refund_id: int) -> tuple[Refund, Payment] | None:
        async with ledger_session(self._context.db) as tx:
            refund = await tx.lock(Refund, refund_id)
            if refund.source != "api" or refund.stripe_refund_id is not None:
                return None
            if refund.status != "pending":
                return None  # failed or canceled meanwhile
            tx.update(refund, now=self._context.clock())  # tried now: not again until later
            return refund, await tx.get(Payment, refund.payment_id)

    async def _refund(self, refund: Refund, payment: Payment) -> None:
        try:
            made = None
            if self._context.clock() - refund.created_at > KEY_WINDOW and payment.charge_id:
                made = await self.find_refund(refund, payment.charge_id)
            if made is None:
                if payment.payment_intent_id is None:
                    await self._fail_refund(refund, "the payment has no PaymentIntent at Stripe")
                    return
                made = await self._gateway.create_refund(
                    payment_intent=payment.payment_intent_id,
                    amount=refund.amount,
                    reason=refund.reason,
                    metadata={
                        "icpay_refund_id": str(refund.id),
                        "icpay_payment_id": str(payment.id),
                        "icpay_account_id": str(payment.merchant_id),
                    },
                    idempotency_key=f"refund:{refund.id}",
                )
        except GatewayError as error:
            if _not_its_failure(error):
                logger.warning("refund %d: Stripe did not do it (%s): retried", refund.id, error)
                return
            await self._fail_refund(refund, error.stripe_message or str(error), error.code)
            return
        await apply_object(self._context, made)

    async def find_refund(self, refund: Refund, charge_id: str) -> StripeObject | None:
        """The refund Stripe made for ours, found by its metadata among the charge's."""
        for made in await self._gateway.refunds_for_charge(charge_id):
            if (made.get("metadata") or {}).get("icpay_refund_id") == str(refund.id):
                return made
        return None

    async def _fail_refund(self, refund: Refund, message: str, code: str | None = None) -> None:
        async with ledger_session(self._context.db) as tx:
            await advance_refund(
                tx,
                refund.id,
                "failed",
                now=self._context.clock(),
                failure_reason=(code or "stripe_refused")[:64],
            )
            tx.update(
                await tx.get(Refund, refund.id), now=self._context.clock(), failure_message=message
            )
        logger.info("refund %d failed: %s", refund.id, message)

    async def _claim(self, payout_id: int, retry_now: bool) -> Payout | None:
        now = self._context.clock()
        async with ledger_session(self._context.db) as tx:
            payout = await tx.lock(Payout, payout_id)
            if payout.status == "pending":
                merchant = await tx.get(Merchant, payout.merchant_id)
                if merchant.stripe_account_id != payout.destination:
                    # Accepted for an account the merchant has since left (disconnected,
                    # or replaced): never sent there, and nothing was sent yet.
                    await advance_payout(
                        tx,
                        payout_id,
                        "failed",
                        now=now,
                        failure_message=(
                            f"the merchant's connected account changed from "
                            f"{payout.destination} before the payout was made"
                        ),
                    )
                    return None
                await advance_payout(tx, payout_id, "processing", now=now)
            elif payout.status != "processing" or payout.stripe_transfer_id is not None:
                return None  # done, cancelled, or its transfer already known
            elif not retry_now and now - payout.updated_at < self._retry_after:
                return None  # another try is under way, or was just made
            else:
                # A retry, with the same key: Stripe may have made it already.
                tx.update(payout, now=now)
            return payout

    async def _transfer(self, payout: Payout) -> None:
        try:
            transfer = None
            if self._context.clock() - payout.created_at > KEY_WINDOW:
                transfer = await self.find_transfer(payout)
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
            if _not_its_failure(error):
                logger.warning("payout %d: Stripe did not do it (%s): retried", payout.id, error)
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

    async def find_transfer(self, payout: Payout) -> StripeObject | None:
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


def _not_its_failure(error: GatewayError) -> bool:
    """No answer (5xx, timeout, 409/429), or a refusal of ICPay itself (a bad or restricted
    API key: 401, a 403 other than a lost account) is not the payout's or refund's failure:
    it is tried again with its key, and a person sees the warnings."""
    status = error.http_status
    if error.retryable or status is None or status >= 500 or status == 401:
        return True
    return status == 403 and error.code != "account_invalid"
