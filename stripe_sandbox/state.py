"""The sandbox's whole state: one instance per app, guarded by one asyncio lock."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import money
from .clock import SandboxClock
from .delivery import Deliverer
from .events import create_event
from .faults import Faults
from .idempotency import IdempotencyStore
from .ids import IdGenerator
from .request_log import RequestLog
from .settings import SandboxSettings
from .store import Store

Obj = dict[str, Any]


@dataclass
class RequestContext:
    """The API request being handled, as Stripe records it on the events it causes."""

    id: str | None = None
    idempotency_key: str | None = None


@dataclass
class Card:
    """How a test card behaves."""

    brand: str
    last4: str
    decline_code: str | None = None
    bypass_pending: bool = False
    refund_fails: bool = False
    funding: str = "credit"


@dataclass
class Private:
    """What the sandbox knows but Stripe does not show in the objects."""

    payment_method_cards: dict[str, Card] = field(default_factory=dict)
    charge_cards: dict[str, Card] = field(default_factory=dict)
    # A charge's balance transaction, also while asynchronous capture has not attached it.
    charge_transactions: dict[str, str] = field(default_factory=dict)
    endpoint_secrets: dict[str, str] = field(default_factory=dict)
    connect_endpoints: set[str] = field(default_factory=set)
    account_links: dict[str, Obj] = field(default_factory=dict)
    return_urls: dict[str, str] = field(default_factory=dict)
    refund_queue: list[Obj] = field(default_factory=list)
    # Per currency, the sums of `net` of the balance transactions available and pending, kept
    # as transactions are added and settle (a balance read sums nothing, however many).
    balance_totals: dict[str, dict[str, int]] = field(default_factory=dict)
    # When each refund was sent (succeeded): the Dashboard can cancel it for a while after.
    refund_sent_at: dict[str, float] = field(default_factory=dict)
    payout_transactions: dict[str, set[str]] = field(default_factory=dict)
    # Connect: statuses set on capabilities, accounts with payouts paused, and accounts the
    # platform lost (id -> "deauthorized" | "deleted").
    capability_status: dict[str, dict[str, str]] = field(default_factory=dict)
    payouts_paused: set[str] = field(default_factory=set)
    revoked_accounts: dict[str, str] = field(default_factory=dict)


class Sandbox:
    """State, clock and machinery of one sandbox. Mutate only while holding `lock`."""

    def __init__(
        self,
        seed: int | None = None,
        clock: SandboxClock | None = None,
        settings: SandboxSettings | None = None,
    ) -> None:
        self.seed = seed
        self.store = Store()
        self.clock = clock or SandboxClock()
        self.ids = IdGenerator(seed)
        self.settings = settings or SandboxSettings()
        self.lock = asyncio.Lock()
        self.request: RequestContext | None = None
        self.pending_transactions: list[str] = []
        self.private = Private()
        self.faults = Faults(self.ids)
        self.requests = RequestLog()
        self.idempotency = IdempotencyStore(self.clock, lambda: self.settings.idempotency_key_ttl)
        self.deliveries = Deliverer(self)
        self._jobs: list[tuple[float, int, Callable[[], None]]] = []
        self._job_seq = itertools.count()
        # Checks that run on every tick, registered by the resource modules that own them.
        self.tick_hooks: list[Callable[[Sandbox], None]] = []

    def emit(
        self,
        type_: str,
        obj: Obj,
        *,
        account: str | None = None,
        previous: Obj | None = None,
    ) -> Obj:
        """Record an event about `obj` (snapshotted now) and queue its webhook deliveries."""
        return create_event(self, type_, obj, account=account, previous=previous)

    def schedule(self, due: float, job: Callable[[], None]) -> None:
        """Run `job` (under the lock) once the sandbox clock reaches `due`."""
        heapq.heappush(self._jobs, (due, next(self._job_seq), job))

    def tick(self) -> None:
        """Bring the state up to the clock: settle funds, run due jobs."""
        request, self.request = self.request, None
        try:
            for _ in range(1000):
                money.settle(self)
                for hook in self.tick_hooks:
                    hook(self)
                now = self.clock.now()
                if not self._jobs or self._jobs[0][0] > now:
                    break
                _, _, job = heapq.heappop(self._jobs)
                job()
        finally:
            self.request = request

    def next_job_due(self) -> float | None:
        return self._jobs[0][0] if self._jobs else None
