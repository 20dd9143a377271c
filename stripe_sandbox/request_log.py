"""Every API request the sandbox received, by wall-clock arrival time.

Tests and benchmarks read it (`GET /_sandbox/requests`) to see what a client really sent, and
how fast: Stripe counts a rate limit by arrivals, and so can a test. The sandbox clock is no
use for that (tests freeze it), so this log keeps real time.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

# A long-running sandbox (`make run`) keeps only the latest requests.
KEPT = 10_000


@dataclass
class LoggedRequest:
    at: float
    method: str
    path: str
    # Filled in when the answer leaves; None while it is being handled.
    status: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class RequestLog:
    def __init__(self, wall: Callable[[], float] = time.time, kept: int = KEPT) -> None:
        self._wall = wall
        self._entries: deque[LoggedRequest] = deque(maxlen=kept)

    def record(self, method: str, path: str) -> LoggedRequest:
        entry = LoggedRequest(self._wall(), method, path)
        self._entries.append(entry)
        return entry

    def entries(self) -> list[LoggedRequest]:
        return list(self._entries)

    def clear(self) -> None:
        self._entries.clear()
