"""Idempotency keys: the first result of a key is replayed; other parameters are refused."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .clock import SandboxClock
from .errors import StripeError

# Errors raised before an endpoint starts executing are not saved (Stripe's rule), so the
# same key can be retried with corrected parameters.
UNSAVED_CODES = frozenset(
    {"parameter_unknown", "parameter_missing", "parameter_invalid_integer", "rate_limit"}
)


@dataclass
class SavedResponse:
    fingerprint: str
    created: float = field(default=0.0)
    status: int = 0
    body: bytes = b""
    done: bool = False


class IdempotencyStore:
    """Results by (API key, Idempotency-Key), kept `ttl()` seconds of sandbox time.

    Stripe removes keys "after they're at least 24 hours old" and treats a key used again
    after that as a new request; here a key goes once it is that old and its first request
    has finished.
    """

    def __init__(self, clock: SandboxClock, ttl: Callable[[], float]) -> None:
        self._clock = clock
        self._ttl = ttl
        # In the order keys were first used, so the oldest are first to go.
        self._saved: dict[tuple[str, str], SavedResponse] = {}

    def begin(self, api_key: str, key: str, fingerprint: str) -> SavedResponse | None:
        """Claim `key`, or return the finished response to replay.

        Raises 409 while the first request with this key is still running and 400 when the
        key was first used with different parameters.
        """
        if len(key) > 255:
            raise StripeError(
                400,
                "invalid_request_error",
                "Idempotency-Key header must be at most 255 characters long.",
            )
        now = self._clock.now()
        self._prune(now)
        saved = self._saved.get((api_key, key))
        if saved is None:
            self._saved[(api_key, key)] = SavedResponse(fingerprint, now)
            return None
        if saved.fingerprint != fingerprint:
            raise StripeError(
                400,
                "idempotency_error",
                "Keys for idempotent requests can only be used with the same parameters they "
                f"were first used with. Try using a key other than '{key}' if you meant to "
                "execute a different request.",
            )
        if not saved.done:
            raise StripeError(
                409,
                "idempotency_error",
                "There is currently another in-progress request using this Stripe token "
                "(probably means you clicked twice). Please try again.",
                code="idempotency_key_in_use",
            )
        return saved

    def _prune(self, now: float) -> None:
        horizon = now - self._ttl()
        expired = []
        for name, saved in self._saved.items():
            if saved.created > horizon:
                break  # the rest are younger
            if saved.done:  # one still running keeps its key until it answers
                expired.append(name)
        for name in expired:
            del self._saved[name]

    def __len__(self) -> int:
        return len(self._saved)

    def finish(self, api_key: str, key: str, status: int, body: bytes) -> None:
        saved = self._saved[(api_key, key)]
        saved.status, saved.body, saved.done = status, body, True

    def forget(self, api_key: str, key: str) -> None:
        self._saved.pop((api_key, key), None)
