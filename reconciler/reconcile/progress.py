"""How a reconcile run tells whoever watches it (the CLI's progress bar, a log) how far it is."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class ProgressUpdate:
    # What the run is comparing now, e.g. "payment_intents", "transfers", "ledger".
    phase: str
    # Running totals for the whole run so far.
    examined: int
    healed: int
    found: int


# Called after each page; must be quick (it runs on the engine's task).
RunProgress = Callable[[ProgressUpdate], None]
