"""What the log says about accepted webhook deliveries: one line every `interval` seconds
counting them, rather than a line each.

A line per delivery (uvicorn's access line) cost about a quarter of the service's CPU under
load: a log record, a formatter copying it, a write to stderr, for every request. Each event
is in the inbox anyway (`reconciler events list`), and `/metrics` counts every outcome; the log
keeps what a person reads: every refused delivery on its own line (`handlers.webhooks`), and
here, within `interval` seconds of any accepted one, a line such as
`webhook deliveries over 10.0 s: platform stored=35210 duplicate=12`. With the log at DEBUG each
accepted delivery also gets its own line.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter

from reconciler.inbox.events import NewEvent

logger = logging.getLogger("handlers.webhooks")
INTERVAL_SECONDS = 10.0


class DeliveryLog:
    def __init__(self, interval: float = INTERVAL_SECONDS) -> None:
        self._interval = interval
        self._counts: Counter[tuple[str, str]] = Counter()
        self._last_line = float("-inf")
        self._since = 0.0  # when the first delivery not yet told came
        self._pending: asyncio.TimerHandle | None = None

    def accepted(self, endpoint: str, outcome: str, event: NewEvent) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "webhook endpoint=%s event=%s type=%s outcome=%s",
                endpoint,
                event.stripe_event_id,
                event.event_type,
                outcome,
            )
        self._counts[endpoint, outcome] += 1
        if self._pending is None:
            # At most a line per `interval`: after a quiet spell the first comes at once.
            now = time.monotonic()
            self._since = now
            wait = max(0.0, self._last_line + self._interval - now)
            self._pending = asyncio.get_running_loop().call_later(wait, self.flush)

    def flush(self) -> None:
        """Log the counts so far, if any (also on shutdown)."""
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        if self._counts:
            by_endpoint: dict[str, list[str]] = {}
            for (endpoint, outcome), count in sorted(self._counts.items()):
                by_endpoint.setdefault(endpoint, []).append(f"{outcome}={count}")
            logger.info(
                "webhook deliveries over %.1f s: %s",
                time.monotonic() - self._since,
                "; ".join(f"{name} {' '.join(parts)}" for name, parts in by_endpoint.items()),
            )
            self._counts.clear()
            self._last_line = time.monotonic()
