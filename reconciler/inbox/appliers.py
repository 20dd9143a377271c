"""Choosing the worker's applier from `INBOX_APPLIER`.

`ledger` is the real one (`reconciler.apply.EventApplier`). The others exist so the inbox can be
tested and measured on its own: `noop` applies nothing, `record:<file>` appends each event id
to a file (the crash test counts applications there), `<module>:<factory>` uses
`factory(database, settings)`, an async context manager yielding the applier (benchmarks).
"""

from __future__ import annotations

import asyncio
import importlib
import os
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any, cast

from reconciler.config import ConfigError, Settings
from reconciler.db.engine import Database
from reconciler.inbox.events import InboxEvent
from reconciler.inbox.worker import Applier


async def noop_applier(event: InboxEvent) -> None:
    """Applies nothing: the inbox's own cost, measured alone."""


class RecordingApplier:
    """Appends `<stripe event id>\\n` to a file, synced, for each application. Not idempotent
    on purpose: a second application of one event shows up as a second line."""

    def __init__(self, path: Path) -> None:
        self.path = path

    async def __call__(self, event: InboxEvent) -> None:
        await asyncio.to_thread(self._append, event.stripe_event_id)

    def _append(self, line: str) -> None:
        with self.path.open("a") as file:
            file.write(line + "\n")
            file.flush()
            os.fsync(file.fileno())


@asynccontextmanager
async def _ledger_applier(database: Database, settings: Settings) -> AsyncIterator[Applier]:
    from reconciler.apply import EventApplier
    from reconciler.gateway import StripeGateway

    gateway = StripeGateway(settings.stripe_api_key, settings.stripe_api_base)
    try:
        # EventApplier takes any event with a `payload`; its Protocol declares the attribute
        # writable, which a frozen InboxEvent is not, hence the cast.
        yield cast(Applier, EventApplier(database, gateway, settings))
    finally:
        await gateway.aclose()


@asynccontextmanager
async def _just(applier: Applier) -> AsyncIterator[Applier]:
    yield applier


def open_applier(
    spec: str, database: Database, settings: Settings
) -> AbstractAsyncContextManager[Applier]:
    """The applier `spec` names, holding whatever it needs (the Stripe gateway) open."""
    if spec == "ledger":
        return _ledger_applier(database, settings)
    if spec == "noop":
        return _just(noop_applier)
    if spec.startswith("record:"):
        return _just(RecordingApplier(Path(spec.removeprefix("record:"))))
    module_name, sep, attribute = spec.partition(":")
    if not sep:
        raise ConfigError(
            f"INBOX_APPLIER must be ledger, noop, record:<file> or <module>:<factory>, got {spec!r}"
        )
    try:
        factory: Any = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError):
        raise ConfigError(f"INBOX_APPLIER: cannot import {spec!r}") from None
    custom: AbstractAsyncContextManager[Applier] = factory(database, settings)
    return custom
