"""Knobs of the sandbox: Stripe's test-mode timings, shortened where tests need it."""

from __future__ import annotations

from dataclasses import dataclass

API_VERSION = "2026-10-28.endive"


@dataclass
class SandboxSettings:
    """Timings and limits; defaults follow Stripe's US test mode where it has one."""

    # Card funds become available at 00:00 UTC this many days after the charge.
    available_after_days: int = 2
    # Webhook retries: base * 2**(attempt-1) seconds of sandbox time, up to max_attempts.
    delivery_retry_base: float = 60.0
    delivery_max_attempts: int = 6
    delivery_timeout: float = 10.0
    # The refund-fail card's refund turns from succeeded to failed this much later.
    refund_failure_delay: float = 2.0
    # How often the background worker looks for due work (real seconds).
    worker_interval: float = 0.05
    # Account links expire this many seconds after creation, as Stripe's do (minutes).
    account_link_ttl: int = 300
    # A "hang" API fault waits this long (real seconds) unless the fault says otherwise.
    hang_seconds: float = 30.0
    # Events older than this are gone from /v1/events, like Stripe's 30-day retention.
    event_retention_days: int = 30
    # A card refund can be canceled from the Dashboard this long after it succeeded. Stripe
    # says only "a very short window" (support.stripe.com/questions/canceling-a-refund).
    refund_cancel_window: float = 1_800.0
    # Idempotency keys are kept at least this long (sandbox seconds), then pruned, as Stripe
    # prunes keys "at least 24 hours old" (docs.stripe.com/api/idempotent_requests).
    idempotency_key_ttl: float = 86_400.0
