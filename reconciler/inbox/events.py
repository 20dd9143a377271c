"""The inbox's rows: their statuses, the shapes they are written and read in, and the retry
policy that moves them along."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from reconciler.config import Settings

RECEIVED, PROCESSING, DONE, FAILED, DEAD, IGNORED = (
    "received",
    "processing",
    "done",
    "failed",
    "dead",
    "ignored",
)
STATUSES = (RECEIVED, PROCESSING, DONE, FAILED, DEAD, IGNORED)
PENDING_STATUSES = (RECEIVED, PROCESSING, FAILED)
REPLAYABLE_STATUSES = (FAILED, DEAD)
MAX_ERROR = 2000  # characters of an error a row keeps


@dataclass(frozen=True)
class InboxPolicy:
    """How often and how patiently the worker retries. No defaults of its own: they are the
    settings' (`InboxPolicy.from_settings(Settings())`)."""

    max_attempts: int
    backoff_base_seconds: int
    backoff_cap_seconds: int
    lease_seconds: int

    @classmethod
    def from_settings(cls, settings: Settings) -> InboxPolicy:
        return cls(
            max_attempts=settings.inbox_max_attempts,
            backoff_base_seconds=settings.inbox_backoff_base_seconds,
            backoff_cap_seconds=settings.inbox_backoff_cap_seconds,
            lease_seconds=settings.inbox_lease_seconds,
        )

    def backoff(self, attempts: int) -> timedelta:
        """Delay before the next try after `attempts` failed tries: base * 2^(n-1), capped."""
        exponent = max(attempts - 1, 0)
        # Cap the exponent too, so a large attempt count cannot build a huge integer.
        seconds = self.backoff_base_seconds * 2 ** min(exponent, 32)
        return timedelta(seconds=min(seconds, self.backoff_cap_seconds))

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.lease_seconds)


@dataclass(frozen=True)
class NewEvent:
    """A verified delivery, ready to be inserted."""

    stripe_event_id: str
    endpoint: str
    event_type: str
    livemode: bool
    account: str | None
    stripe_created: int
    payload: str
    ignored_reason: str | None = None


@dataclass(frozen=True)
class InboxEvent:
    """A claimed row, as the worker hands it to the applier. `payload` is the raw JSON text;
    `attempts` counts this try, and with `id` names the claim (see `claims`)."""

    id: int
    stripe_event_id: str
    endpoint: str
    event_type: str
    livemode: bool
    account: str | None
    payload: str
    attempts: int


@dataclass(frozen=True)
class InboxSummary:
    """One row for operators (no payload)."""

    id: int
    stripe_event_id: str
    endpoint: str
    event_type: str
    status: str
    attempts: int
    received_at: datetime
    next_attempt_at: datetime
    last_error: str | None
