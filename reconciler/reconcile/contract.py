"""What the API and the CLI ask of the reconcile engine, and where they find it.

The engine (`reconciler.reconcile.engine.Reconciler`) is the runtime's `reconciler`. The
callers here know it only by this contract, so they need nothing of how it compares.
"""

from __future__ import annotations

from typing import Any, Protocol, cast

from reconciler.reconcile.progress import RunProgress
from reconciler.reconcile.runs import ReconcileRun


class Reconciles(Protocol):
    async def run(self, run_id: int, *, progress: RunProgress | None = None) -> ReconcileRun:
        """Take a queued (or interrupted) run, do it, and return its final record."""
        ...

    def start(self, run_id: int) -> None:
        """Do the run as a background task of this process."""
        ...


def reconciler_of(runtime: object) -> Reconciles:
    """The runtime's reconcile engine (`runtime.reconciler`), seen through the contract.
    Typed loosely on purpose: `reconciler.runtime` builds the engine, so importing it here
    would close a circle."""
    return cast(Reconciles, cast(Any, runtime).reconciler)
