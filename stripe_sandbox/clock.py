"""The sandbox clock: wall time plus an offset that tests and demos can advance."""

from __future__ import annotations

import time
from collections.abc import Callable


class SandboxClock:
    """Unix time as the sandbox sees it.

    A running clock follows the wall clock from `start`; a frozen one stays put until advanced.
    Advancing never goes backwards, so objects created later always have a later-or-equal
    `created`.
    """

    def __init__(
        self,
        start: float | None = None,
        *,
        frozen: bool = False,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._wall = wall
        self._frozen = frozen
        self._origin_wall = wall()
        self._origin = self._origin_wall if start is None else float(start)
        self._offset = 0.0

    @property
    def frozen(self) -> bool:
        return self._frozen

    def now(self) -> float:
        elapsed = 0.0 if self._frozen else self._wall() - self._origin_wall
        return self._origin + elapsed + self._offset

    def timestamp(self) -> int:
        """Whole seconds, as Stripe's `created` fields are."""
        return int(self.now())

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError("the sandbox clock only moves forward")
        self._offset += seconds
        return self.now()

    def advance_to(self, timestamp: float) -> float:
        return self.advance(max(0.0, timestamp - self.now()))
