"""The reconciliation engine: a run compares the ledger with Stripe and records every
difference as a discrepancy; a heal run (not `dry_run`) also applies Stripe's truth where
that ends the difference, through the same apply functions the webhooks use.

A run walks, in order: Stripe's payment intents (with their charges and balance
transactions), refunds, transfers and connected accounts, a page at a time, each list but the
accounts followed by the ledger's rows of its kind that no page showed (missing at Stripe);
then payouts and refunds left waiting, the journal's invariants and the merchants' balances
against the platform's (read while the lists are walked; read again in turn if that reading
failed, is over a minute old, or a heal may have changed what it read). After each page it
commits what it found, the ids it saw (`reconcile_seen`) and where it is (`resume_from`), so
memory stays a few pages and an interrupted run goes on from its last page. A completed run
whose scope covers whole objects (everything, a merchant, one object: not a time window,
which cannot say which objects it covers) clears the discrepancies earlier runs found that it
no longer sees; dry runs clear too, as clearing changes only the report, never the ledger.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from reconciler.apply.context import ApplyContext, stripe_id
from reconciler.apply.objects import apply_object
from reconciler.db.engine import Database
from reconciler.errors import ReconcilerError
from reconciler.gateway import GatewayError, StripeGateway, StripeNotFound
from reconciler.ledger.rows import LedgerRow, Payment, Payout, Refund
from reconciler.reconcile import ledger_checks, ledger_rows
from reconciler.reconcile.compare import Difference
from reconciler.reconcile.findings import (
    LEDGER_CHECK_KINDS,
    clear_unseen,
    finding_key,
    record_findings,
)
from reconciler.reconcile.pages_ahead import PagesAhead
from reconciler.reconcile.progress import ProgressUpdate, RunProgress
from reconciler.reconcile.runs import (
    FAILED,
    INTERRUPTED,
    SUCCEEDED,
    ReconcileRun,
    beat,
    finish_run,
    get_run,
    interrupt_abandoned,
    queue_run,
    save_progress,
    take_run,
    waiting_runs,
)
from reconciler.reconcile.scope import Scope
from reconciler.reconcile.stripe_lists import (
    ACCOUNTS,
    BY_OBJECT_TYPE,
    PAYMENT_INTENTS,
    REFUNDS,
    STRIPE_LISTS,
    TRANSFERS,
    StripeList,
)
from reconciler.types import Clock, StripeObject, utcnow

log = logging.getLogger(__name__)

MISSING_PHASES = tuple(f"missing:{noun}" for *_, noun in ledger_checks.MISSING_CHECKS)
CHECKS_PHASE = "checks"
# How often a run says it is alive, and how long a silent one is taken for dead.
HEARTBEAT_SECONDS = 60.0
ABANDONED_AFTER = timedelta(minutes=10)
# The resume point of a run whose phases are all done (None would read as not started).
DONE_PHASE = "done"
# What a run of many objects does, in order; a resume point names one of these. The rows
# missing at Stripe of a kind are looked for right after the list that shows that kind, while
# the next list's first page is on its way.
PHASES = (
    PAYMENT_INTENTS.phase,
    MISSING_PHASES[0],
    REFUNDS.phase,
    MISSING_PHASES[1],
    TRANSFERS.phase,
    MISSING_PHASES[2],
    ACCOUNTS.phase,
    CHECKS_PHASE,
)
LISTS_BY_PHASE = {stripe_list.phase: stripe_list for stripe_list in STRIPE_LISTS}
# Written in every resume point. A point without it was written when every list came before
# every missing check: one in a list after the first had its missing checks all still to do.
PHASE_ORDER = 2
# The ledger checks are read while the lists are walked; a reading older than this when its
# phase comes is read again, so a long run does not report what was true at its start.
CHECKS_FRESH_FOR = timedelta(seconds=60)


class RunNotStartable(ReconcilerError):
    code = "illegal_transition"


@dataclass(frozen=True)
class _LedgerReading:
    """What the ledger checks found, which kinds they looked at whole, and when."""

    found: list[Difference]
    checked: set[str]
    read_at: datetime


@dataclass
class _Pass:
    """One run being done: its record, the context heals apply through, running totals."""

    run: ReconcileRun
    context: ApplyContext
    progress: RunProgress | None
    examined: int = 0
    healed: int = 0
    found: int = 0
    # A one-object run: the ids it looked at (the object, its charge...), for clearing.
    touched: set[str] = field(default_factory=set)
    # The ledger-check kinds whose check ran whole in this pass, for clearing.
    checked: set[str] = field(default_factory=set)
    # A heal has written the ledger: ledger checks read before it may no longer be true.
    ledger_written: bool = False
    # Set by the pass's first commit: the ledger checks read ahead wait for it.
    committed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def dry_run(self) -> bool:
        return self.run.dry_run

    @property
    def scope(self) -> Scope:
        return self.run.scope


class Reconciler:
    """Runs reconcile runs: `run` one now, `start` one in the background of this process."""

    def __init__(
        self,
        database: Database,
        gateway: StripeGateway,
        context: ApplyContext,
        *,
        stale_after: timedelta,
        clock: Clock = utcnow,
        page_size: int = 100,
    ) -> None:
        self._db = database
        self._gateway = gateway
        self._context = context
        self._stale_after = stale_after
        self._clock = clock
        self._page_size = page_size
        self._tasks: set[asyncio.Task[ReconcileRun | None]] = set()

    # -- the contract ------------------------------------------------------------------

    async def run(self, run_id: int, *, progress: RunProgress | None = None) -> ReconcileRun:
        """Take the queued (or interrupted) run, do it, and return how it ended: succeeded,
        or failed with the error. Cancelled, it ends `interrupted` (and the cancel goes on)."""
        async with self._db.write() as conn:
            taken = await take_run(conn, run_id, self._clock())
            run = await get_run(conn, run_id)
        if run is None or not taken:
            status = run.status if run else "missing"
            raise RunNotStartable(f"reconcile run {run_id} cannot be started (it is {status})")
        context = replace(self._context, detected_by=f"reconcile:{run_id}", clock=self._clock)
        work = _Pass(run, context, progress, run.examined, run.healed, run.found)
        began = time.monotonic()
        beating = asyncio.create_task(self._beat(run_id), name=f"reconcile-beat-{run_id}")
        try:
            async with self._gateway.background():
                await self._do(work)
        except asyncio.CancelledError:
            await self._finish(work, INTERRUPTED, began)
            raise
        except (GatewayError, ReconcilerError) as error:
            log.warning("reconcile run %d failed: %s", run_id, error)
            return await self._finish(work, FAILED, began, str(error))
        except Exception as error:
            log.exception("reconcile run %d failed", run_id)
            return await self._finish(work, FAILED, began, f"{type(error).__name__}: {error}")
        finally:
            beating.cancel()
        return await self._finish(work, SUCCEEDED, began)

    async def _beat(self, run_id: int) -> None:
        """Say the run is alive every `HEARTBEAT_SECONDS`, however long a page takes."""
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            try:
                async with self._db.write() as conn:
                    await beat(conn, run_id, self._clock())
            except Exception as error:  # the next beat tries again
                log.warning("reconcile run %d: heartbeat not written: %s", run_id, error)

    def start(self, run_id: int) -> None:
        """Run it as a task of this process (the API answers at once with its id)."""
        task = asyncio.create_task(self._run_logged(run_id), name=f"reconcile-run-{run_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        """Cancel the runs this process started: each ends `interrupted`, to be resumed."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def scheduled(self, now: datetime) -> str:
        """The nightly job: first the runs left interrupted (a stop, a deploy), or left by a
        process that died (running without a heartbeat, or queued and never started), then
        a new run of everything, started by the scheduler."""
        async with self._db.write() as conn:
            await interrupt_abandoned(conn, silent_since=now - ABANDONED_AFTER)
            waiting = await waiting_runs(conn, queued_before=now - ABANDONED_AFTER, limit=10)
        outcomes = [await self._run_logged(run_id) for run_id in waiting]
        async with self._db.write() as conn:
            run_id = await queue_run(conn, Scope(), dry_run=False, started_by="scheduler", now=now)
        run = await self.run(run_id)
        if run.status == FAILED:
            raise ReconcilerError(f"reconcile run {run.id} failed: {run.error}")
        resumed = sum(1 for outcome in outcomes if outcome is not None)
        more = f"; resumed {resumed} interrupted" if resumed else ""
        return (
            f"run {run.id}: {run.examined} examined, {run.found} found, {run.healed} healed" + more
        )

    async def _run_logged(self, run_id: int) -> ReconcileRun | None:
        try:
            return await self.run(run_id)
        except RunNotStartable as error:  # another engine took it first: nothing to do
            log.warning("%s", error)
            return None

    # -- a run -------------------------------------------------------------------------

    async def _do(self, work: _Pass) -> None:
        scope = work.scope
        if scope.object_id is not None:
            await self._one_object(work)
            await self._clear(work)
            return
        merchant_id = scope.account_id
        if merchant_id is not None:
            async with self._db.read() as conn:
                if await ledger_rows.merchant(conn, merchant_id) is None:
                    raise ReconcilerError(f"no merchant {merchant_id}")
        resume = work.run.resume_from or {}
        if resume.get("phase") == DONE_PHASE:  # stopped after its last phase: only clearing left
            await self._clear(work)
            return
        if resume.get("order") != PHASE_ORDER and resume.get("phase") in _LISTS_AFTER_THE_FIRST:
            # From the first missing check on, as that order would have gone on (the lists
            # after it walked again, whole, and counted again: once, across an upgrade).
            resume = {"phase": MISSING_PHASES[0], "after": None}
        start = PHASES.index(resume["phase"]) if resume.get("phase") in PHASES else 0
        await self._phases(work, start, resume.get("after"))
        await self._clear(work)

    async def _phases(self, work: _Pass, start: int, after: Any) -> None:
        """The phases from `PHASES[start]` on (its first after `after`). The ledger checks
        are read beside the walk, which mostly waits for Stripe; a list opened ahead
        (`_walk`) waits in `ahead` for its phase."""
        reading = asyncio.create_task(self._read_checks_ahead(work), name="reconcile-checks")
        ahead: dict[str, PagesAhead | None] = {}
        try:
            for number in range(start, len(PHASES)):
                phase = PHASES[number]
                phase_after = after if number == start else None
                if phase in LISTS_BY_PHASE:
                    await self._walk(work, LISTS_BY_PHASE[phase], phase_after, ahead)
                elif phase in MISSING_PHASES:
                    await self._missing(work, MISSING_PHASES.index(phase), phase_after)
                else:
                    await self._checks(work, reading)
        finally:
            reading.cancel()
            for pages in ahead.values():
                if pages is not None:
                    await pages.aclose()
            await asyncio.gather(reading, return_exceptions=True)

    async def _walk(
        self,
        work: _Pass,
        stripe_list: StripeList,
        after: str | None,
        ahead: dict[str, PagesAhead | None],
    ) -> None:
        """Every page of `stripe_list` (the first after `after`). Within a list the gateway
        asks for the next page as soon as one arrives; the run's next list is opened as the
        last page of this one is worked on, so its first page is on its way meanwhile and
        through the missing check between them (`PagesAhead`)."""
        if stripe_list.phase in ahead:
            pages = ahead.pop(stripe_list.phase)
        else:
            pages = await self._open(work, stripe_list, after)
        number = STRIPE_LISTS.index(stripe_list)
        following = STRIPE_LISTS[number + 1] if number + 1 < len(STRIPE_LISTS) else None
        if pages is not None:
            try:
                async for page in pages:
                    items: list[StripeObject] = page["data"]
                    more = bool(page.get("has_more")) and bool(items)
                    after = items[-1]["id"] if items else after
                    if not more and following is not None:
                        ahead[following.phase] = await self._open(work, following, None)
                    resume = {"phase": stripe_list.phase, "after": after} if more else None
                    await self._page(work, stripe_list, items, resume)
            finally:
                await pages.aclose()
        elif stripe_list is ACCOUNTS and work.scope.account_id is not None:
            await self._merchant_account(work)
        if following is not None and following.phase not in ahead:
            ahead[following.phase] = await self._open(work, following, None)

    async def _open(
        self, work: _Pass, stripe_list: StripeList, after: str | None
    ) -> PagesAhead | None:
        """The pages of `stripe_list` in the run's scope after `after`, the first asked for
        now; None when there is nothing to list: a merchant with no connected account has no
        transfers, and a merchant's account is read by its id (`_merchant_account`)."""
        filters = await self._filters(work, stripe_list.resource)
        scope = work.scope
        if filters is None or (stripe_list is ACCOUNTS and scope.account_id is not None):
            return None
        return PagesAhead(
            self._gateway.list_pages(
                stripe_list.resource,
                starting_after=after,
                created_gte=_unix(scope.since),
                created_lt=_unix(scope.until),
                expand=stripe_list.expand,
                limit=self._page_size,
                **filters,
            )
        )

    async def _filters(self, work: _Pass, resource: str) -> dict[str, str] | None:
        """A merchant's transfers are listed by their destination (None: it has none)."""
        if resource != "transfers" or work.scope.account_id is None:
            return {}
        async with self._db.read() as conn:
            merchant = await ledger_rows.merchant(conn, work.scope.account_id)
        if merchant is None or merchant.stripe_account_id is None:
            return None
        return {"destination": merchant.stripe_account_id}

    async def _merchant_account(self, work: _Pass) -> None:
        async with self._db.read() as conn:
            merchant = await ledger_rows.merchant(conn, work.scope.account_id or 0)
        if merchant is not None and merchant.stripe_account_id is not None:
            account = await self._gateway.account(merchant.stripe_account_id)
            await self._page(work, BY_OBJECT_TYPE["account"], [account], None)

    async def _page(
        self,
        work: _Pass,
        stripe_list: StripeList,
        items: list[StripeObject],
        resume: dict[str, Any] | None,
    ) -> None:
        """Compare one page, heal what can be healed, and commit what was found with the ids
        seen and the point to resume from, in one transaction."""
        async with self._db.read() as conn:
            compared = await stripe_list.compare(conn, items, work.scope.account_id)
        found: list[Difference] = []
        healed: list[Difference] = []
        for obj, differences in compared:
            if work.dry_run or not any(d.healable for d in differences):
                found.extend(differences)
                continue
            left = await self._heal(work, stripe_list, obj, differences)
            remaining = {d.key for d in left}
            fixed = [d for d in differences if d.key not in remaining]
            # Each is recorded, and what was fixed resolved at once: the run says what it did.
            found.extend(fixed + left)
            healed.extend(fixed)
        seen = [i for obj in items for i in stripe_list.ids(obj)]
        work.touched.update(seen if work.scope.object_id else ())
        work.examined += len(compared)
        await self._commit(work, stripe_list.phase, found, healed, seen, resume)

    async def _heal(
        self,
        work: _Pass,
        stripe_list: StripeList,
        obj: StripeObject,
        differences: list[Difference],
    ) -> list[Difference]:
        """Apply Stripe's snapshot through the one way in, then compare again: what still
        differs stays open (a heal that failed says why)."""
        work.ledger_written = True  # even a heal that fails may have written some of it
        try:
            await apply_object(work.context, obj)
        except (GatewayError, ReconcilerError) as error:
            return [replace(d, detail=f"{d.detail} (heal failed: {error})") for d in differences]
        async with self._db.read() as conn:
            again = await stripe_list.compare(conn, [obj], work.scope.account_id)
        return [d for _obj, left in again for d in left]

    async def _commit(
        self,
        work: _Pass,
        phase: str,
        found: list[Difference],
        healed: list[Difference],
        seen: list[str],
        resume: dict[str, Any] | None,
    ) -> None:
        run_id, now = work.run.id, self._clock()
        async with self._db.write() as conn:
            recorded = await record_findings(conn, run_id, found=found, healed=healed, now=now)
            await ledger_checks.remember_seen(
                conn, run_id, seen + [finding_key(difference) for difference in found]
            )
            work.found += recorded
            work.healed += len(healed)
            await save_progress(
                conn,
                run_id,
                examined=work.examined,
                healed=work.healed,
                found=work.found,
                resume_from=_marked(resume or _next_phase(phase)),
            )
        work.committed.set()
        if work.progress is not None:
            work.progress(ProgressUpdate(phase, work.examined, work.healed, work.found))

    async def _missing(self, work: _Pass, index: int, after: Any) -> None:
        """Ledger rows whose Stripe object no page showed, a page of rows at a time."""
        table, column, object_type, noun = ledger_checks.MISSING_CHECKS[index]
        phase = MISSING_PHASES[index]
        started = work.run.started_at or self._clock()
        after_id = int(after or 0)
        while True:
            async with self._db.read() as conn:
                found, last = await ledger_checks.missing_at_stripe(
                    conn,
                    work.run.id,
                    work.scope,
                    table=table,
                    column=column,
                    object_type=object_type,
                    noun=noun,
                    made_before=started - self._stale_after,
                    after_id=after_id,
                )
            resume = {"phase": phase, "after": last} if last is not None else None
            await self._commit(work, phase, found, [], [], resume)
            if last is None:
                return
            after_id = last

    async def _checks(self, work: _Pass, read_ahead: asyncio.Task[_LedgerReading]) -> None:
        """Record the ledger checks' findings: those read ahead, unless that reading failed,
        is older than `CHECKS_FRESH_FOR`, or a heal may have changed the ledger under it."""
        reading: _LedgerReading | None = None
        work.committed.set()  # a run resumed at its checks has committed nothing yet
        try:
            reading = await read_ahead
        except Exception as error:  # read again, in turn: an error there fails the run
            log.warning("reconcile run %d: ledger checks read ahead failed: %s", work.run.id, error)
        if (
            reading is None
            or work.ledger_written
            or self._clock() - reading.read_at > CHECKS_FRESH_FOR
        ):
            reading = await self._read_checks(work)
        work.checked = reading.checked
        await self._commit(work, CHECKS_PHASE, reading.found, [], [], None)

    async def _read_checks_ahead(self, work: _Pass) -> _LedgerReading:
        """`_read_checks` once the first page is in: on PostgreSQL its connection would
        otherwise be opened beside the first page's, on a run's critical path."""
        await work.committed.wait()
        return await self._read_checks(work)

    async def _read_checks(self, work: _Pass) -> _LedgerReading:
        """Payouts and refunds stuck, the journal's invariants and (for a run of
        everything) merchants' balances against the platform's: what they find, and the
        kinds they looked at whole."""
        now = self._clock()
        async with self._db.read() as conn:
            found = await ledger_checks.stuck(conn, work.scope, made_before=now - self._stale_after)
            found += await ledger_checks.journal_checks(conn, work.scope)
        checked = set(LEDGER_CHECK_KINDS) - {"merchant_balances_exceed_platform"}
        if work.scope.everything:
            balance = await self._gateway.balance()
            async with self._db.read() as conn:
                found += await ledger_checks.platform_check(conn, balance)
            checked.add("merchant_balances_exceed_platform")
        # A check cut at its page limit did not look at everything: what it did not list
        # may still be true.
        for kind, object_type in (
            ("payout_stuck_pending", "payout"),
            ("refund_stuck_pending", "refund"),
            ("journal_invariant_broken", "journal_entry"),
        ):
            listed = sum(1 for d in found if (d.kind, d.object_type) == (kind, object_type))
            if listed >= ledger_checks.PAGE:
                checked.discard(kind)
        return _LedgerReading(found, checked, now)

    async def _one_object(self, work: _Pass) -> None:
        """A one-object run: the object read by its id, compared as a page of one."""
        object_id, object_type = work.scope.object_id or "", work.scope.object_type
        asked = object_id  # the id the Stripe call that may answer 404 asks for
        try:
            if object_type in ("payment_intent", "charge"):
                intent_id = object_id
                if object_type == "charge":
                    charge = await self._gateway.retrieve("charges", object_id)
                    work.touched.add(object_id)
                    intent_id = stripe_id(charge.get("payment_intent")) or ""
                    if not intent_id:
                        await self._commit(work, "object", [], [], [], None)
                        return
                    asked = intent_id  # the charge is there: only its intent may not be
                obj = await self._gateway.retrieve(
                    "payment_intents", intent_id, expand=("latest_charge.balance_transaction",)
                )
                stripe_list = PAYMENT_INTENTS
            else:
                stripe_list = BY_OBJECT_TYPE[str(object_type)]
                # What its list expands on each object, expanded on this one.
                expand = tuple(path.removeprefix("data.") for path in stripe_list.expand)
                obj = await self._gateway.retrieve(f"{object_type}s", object_id, expand=expand)
        except StripeNotFound:
            work.touched.add(asked)
            await self._commit(work, "object", await self._not_at_stripe(asked), [], [], None)
            return
        await self._page(work, stripe_list, [obj], None)

    async def _not_at_stripe(self, object_id: str) -> list[Difference]:
        async with self._db.read() as conn:
            kind: type[LedgerRow]
            for column, noun, kind in (
                ("payment_intent_id", "payment", Payment),
                ("charge_id", "payment", Payment),
                ("stripe_refund_id", "refund", Refund),
                ("stripe_transfer_id", "payout", Payout),
            ):
                rows = await ledger_rows.rows_by(conn, kind, column, [object_id])
                row = rows.get(object_id)
                if row is not None:
                    return [
                        Difference(
                            "missing_at_stripe",
                            str(self._object_type(object_id)),
                            object_id,
                            f"{noun} {row.id} names {object_id}, which Stripe does not have",
                            merchant_id=row.merchant,
                        )
                    ]
        return []

    @staticmethod
    def _object_type(object_id: str) -> str | None:
        return Scope(object_id=object_id).object_type

    async def _clear(self, work: _Pass) -> None:
        async with self._db.write() as conn:
            await clear_unseen(
                conn,
                work.run.id,
                work.scope,
                touched=work.touched,
                checked=work.checked,
                started_at=work.run.started_at or self._clock(),
                now=self._clock(),
            )

    async def _finish(
        self, work: _Pass, status: str, began: float, error: str | None = None
    ) -> ReconcileRun:
        run_id = work.run.id
        duration_ms = int((time.monotonic() - began) * 1000)
        async with self._db.write() as conn:
            if status != INTERRUPTED:
                await ledger_checks.forget_seen(conn, run_id)
            await finish_run(
                conn,
                run_id,
                status=status,
                now=self._clock(),
                duration_ms=duration_ms,
                error=error,
            )
            finished = await get_run(conn, run_id)
        assert finished is not None
        return finished


def _next_phase(phase: str) -> dict[str, Any] | None:
    """The resume point once `phase` is done: the start of the next one."""
    if phase not in PHASES:
        return None
    if phase == PHASES[-1]:
        return {"phase": DONE_PHASE, "after": None}
    return {"phase": PHASES[PHASES.index(phase) + 1], "after": None}


_LISTS_AFTER_THE_FIRST = {stripe_list.phase for stripe_list in STRIPE_LISTS[1:]}


def _marked(resume: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if resume is None else {**resume, "order": PHASE_ORDER}


def _unix(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp())
