"""Choosing the worker's applier from `INBOX_APPLIER`.

`ledger` is the real one, which the composition root hands in (`ledger`: this package knows
nothing of the ledger). `noop` applies nothing, so the inbox can be measured on its own.
`<module>:<factory>` uses `factory(database, settings)`, an async context manager yielding
the applier: benchmarks and tests bring theirs this way.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from reconciler.config import ConfigError, Settings
from reconciler.db.engine import Database
from reconciler.inbox.events import InboxEvent
from reconciler.inbox.worker import Applier

# What `<module>:<factory>` names, and what the composition root gives for `ledger`.
ApplierFactory = Callable[[Database, Settings], AbstractAsyncContextManager[Applier]]


async def noop_applier(event: InboxEvent) -> None:
    """Applies nothing: the inbox's own cost, measured alone."""


@asynccontextmanager
async def _just(applier: Applier) -> AsyncIterator[Applier]:
    yield applier


def open_applier(
    spec: str, database: Database, settings: Settings, *, ledger: ApplierFactory
) -> AbstractAsyncContextManager[Applier]:
    """The applier `spec` names, holding whatever it needs (the Stripe gateway) open."""
    if spec == "ledger":
        return ledger(database, settings)
    if spec == "noop":
        return _just(noop_applier)
    module_name, sep, attribute = spec.partition(":")
    if not sep:
        raise ConfigError(f"INBOX_APPLIER must be ledger, noop or <module>:<factory>, got {spec!r}")
    try:
        # Whatever the module holds: it is called as an ApplierFactory, on trust.
        factory: Any = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError):
        raise ConfigError(f"INBOX_APPLIER: cannot import {spec!r}") from None
    custom: AbstractAsyncContextManager[Applier] = factory(database, settings)
    return custom
