"""Webhook delivery: signing, the background worker, retries with backoff, and faults.

One machinery for every receiver: v1 webhook endpoints (snapshot events) and v2 event
destinations, which take the snapshot event or its thin counterpart (`thin.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import hashlib
import hmac
import itertools
import json
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import httpx

from .destinations import DESTINATION_OBJECT, receives_from
from .thin import notification, thin_id, thin_type

if TYPE_CHECKING:
    from .state import Sandbox

Obj = dict[str, Any]


def sign(secret: str, payload: bytes, timestamp: int) -> str:
    """A `Stripe-Signature` header value for `payload`, as Stripe computes it."""
    signed = f"{timestamp}.".encode() + payload
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def _enabled(receiver: Obj, event_type: str) -> bool:
    return receiver["status"] == "enabled" and any(
        pattern == "*" or fnmatch.fnmatchcase(event_type, pattern)
        for pattern in receiver["enabled_events"]
    )


def endpoint_wants(endpoint: Obj, connect: bool, event: Obj) -> bool:
    """Connect endpoints get events about connected accounts; the others, platform events."""
    return connect == ("account" in event) and _enabled(endpoint, event["type"])


def destination_wants(destination: Obj, event: Obj) -> bool:
    """`events_from` says whose events (`self`, `other_accounts`); a thin destination
    names the events it takes by their thin names (`v1.charge.succeeded`)."""
    own, others = receives_from(destination)
    if not (others if "account" in event else own):
        return False
    thin = destination["event_payload"] == "thin"
    return _enabled(destination, thin_type(event["type"]) if thin else event["type"])


def _url(receiver: Obj) -> str:
    if receiver["object"] == DESTINATION_OBJECT:
        return str(receiver["webhook_endpoint"]["url"])
    return str(receiver["url"])


@dataclass
class Delivery:
    """One event owed to one endpoint (a webhook endpoint or an event destination).

    `event_id` and `event_type` are the v1 event's; `payload` says whether that snapshot is
    sent or its thin counterpart, `delivered_id`.
    """

    id: int
    event_id: str
    event_type: str
    endpoint_id: str
    due: float
    payload: str = "snapshot"  # snapshot | thin
    delivered_id: str = ""
    attempts: int = 0
    status: str = "pending"  # pending | succeeded | failed | dropped
    held: bool = False
    faulted: bool = False
    last_status: int | None = None
    last_error: str | None = None
    sent: int = 0

    def as_dict(self) -> Obj:
        return asdict(self)


class Deliverer:
    """Owes events to endpoints and pays them with signed POSTs.

    Deliveries run outside the state lock, so a receiver may call the API while handling one.
    """

    def __init__(self, sb: Sandbox) -> None:
        self._sb = sb
        self.items: list[Delivery] = []
        self._ids = itertools.count(1)
        self._send_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._client: httpx.AsyncClient | None = None
        self._task: asyncio.Task[None] | None = None

    def enqueue(self, event: Obj) -> None:
        now = self._sb.clock.now()
        for receiver_id, payload in self._receivers(event):
            delivered = event["id"] if payload == "snapshot" else thin_id(event["id"])
            self.items.append(
                Delivery(
                    next(self._ids),
                    event["id"],
                    event["type"],
                    receiver_id,
                    now,
                    payload=payload,
                    delivered_id=delivered,
                )
            )
            # A thin delivery not yet acknowledged leaves the event undelivered too.
            event["pending_webhooks"] += 1
        self._wake.set()

    def _receivers(self, event: Obj) -> Iterator[tuple[str, str]]:
        """Every receiver owed `event`, oldest first, with the payload it takes."""
        store, connect_endpoints = self._sb.store, self._sb.private.connect_endpoints
        for endpoint in reversed(store.newest_first("webhook_endpoint")):
            if endpoint_wants(endpoint, endpoint["id"] in connect_endpoints, event):
                yield endpoint["id"], "snapshot"
        for destination in reversed(store.newest_first(DESTINATION_OBJECT)):
            if destination_wants(destination, event):
                yield destination["id"], destination["event_payload"]

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="stripe-sandbox-deliveries")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._sb.settings.worker_interval)
            self._wake.clear()
            async with self._sb.lock:
                self._sb.tick()
            await self.deliver_due()

    async def deliver_due(self, *, everything: bool = False, release_held: bool = False) -> int:
        """Attempt every delivery due now (or every pending one); return attempts made.

        Loops until nothing is due, so deliveries caused while delivering are included.
        """
        attempts = 0
        async with self._send_lock:
            for _ in range(100):
                due = self._due(everything)
                if not due and release_held:
                    self._release_held_newest_first()
                    due = self._due(everything)
                if not due:
                    break
                for item in due:
                    await self._attempt(item)
                    attempts += 1
        return attempts

    def _release_held_newest_first(self) -> None:
        # Held deliveries go out last in, first out: with every delivery held, the endpoint
        # receives the events in reverse order.
        held = [item for item in self.items if item.status == "pending" and item.held]
        self.items = [item for item in self.items if item not in held]
        for item in reversed(held):
            item.held = False
            self.items.append(item)

    def _due(self, everything: bool) -> list[Delivery]:
        now = self._sb.clock.now()
        return [
            item
            for item in self.items
            if item.status == "pending" and not item.held and (everything or item.due <= now)
        ]

    async def _attempt(self, item: Delivery) -> None:
        sb = self._sb
        endpoint = sb.store.find(item.endpoint_id)
        event = sb.store.find(item.event_id)
        if endpoint is None or event is None:
            item.status, item.last_error = "failed", "endpoint deleted"
            return
        copies = 1
        if not item.faulted:
            item.faulted = True
            fault = sb.faults.for_delivery(item.endpoint_id, item.event_type)
            if fault is not None and fault.kind == "drop":
                item.last_error = f"dropped by fault {fault.id}"
                if fault.redeliver:
                    self._retry_later(item)
                else:
                    item.status = "dropped"
                return
            if fault is not None and fault.kind == "delay":
                item.due = sb.clock.now() + (fault.seconds or 0.0)
                return
            if fault is not None and fault.kind == "reorder":
                item.held = True
                return
            if fault is not None and fault.kind == "duplicate":
                copies = fault.copies or 2
        ok = False
        for _ in range(copies):
            ok = await self._post(item, endpoint, event) or ok
        for other in self.items:
            if other.held and other.endpoint_id == item.endpoint_id and other is not item:
                other.held = False
        if ok:
            item.attempts += 1
            item.status = "succeeded"
            event["pending_webhooks"] = max(0, event["pending_webhooks"] - 1)
        else:
            self._retry_later(item)

    def _retry_later(self, item: Delivery) -> None:
        """Count a failed attempt; retry with exponential backoff until attempts run out."""
        item.attempts += 1
        if item.attempts >= self._sb.settings.delivery_max_attempts:
            item.status = "failed"
            return
        backoff = self._sb.settings.delivery_retry_base * 2 ** (item.attempts - 1)
        item.due = self._sb.clock.now() + backoff

    async def _post(self, item: Delivery, endpoint: Obj, event: Obj) -> bool:
        secret = self._sb.private.endpoint_secrets[endpoint["id"]]
        body = event
        if item.payload == "thin":
            thin = self._sb.store.find(item.delivered_id)
            assert thin is not None  # made with the event, kept as long
            body = notification(thin)
        payload = json.dumps(body, indent=2).encode()
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            # Signed with real time: receivers check it against their own clock.
            "Stripe-Signature": sign(secret, payload, int(time.time())),
        }
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._sb.settings.delivery_timeout)
        item.sent += 1
        try:
            response = await self._client.post(_url(endpoint), content=payload, headers=headers)
        except httpx.HTTPError as exc:
            item.last_status, item.last_error = None, f"{type(exc).__name__}: {exc}"
            return False
        item.last_status = response.status_code
        item.last_error = None if response.is_success else response.text[:200]
        return response.is_success
