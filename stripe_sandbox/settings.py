"""Knobs of the sandbox: Stripe's test-mode timings, shortened where tests need it."""

from __future__ import annotations

from dataclasses import dataclass, field

API_VERSION = "2026-10-28.endive"

# Fixed rates into the platform's settlement currency (usd), per major unit: 1.00 of the
# currency is worth this many dollars. Round figures for tests, not market rates.
EXCHANGE_RATES = {
    "eur": 1.08,
    "gbp": 1.27,
    "cad": 0.73,
    "aud": 0.66,
    "jpy": 0.0067,
    "chf": 1.13,
    "sek": 0.095,
    "nok": 0.093,
    "dkk": 0.145,
}


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
    # Asynchronous capture (`capture_method=automatic_async`, the PaymentIntent default): the
    # charge answers and announces itself with `balance_transaction` null, and gets it this
    # many seconds of sandbox time later, with a `charge.updated`. The funds move at once.
    async_capture: bool = False
    balance_transaction_delay: float = 2.0
    # Charges in another currency settle into usd at these rates (see EXCHANGE_RATES).
    exchange_rates: dict[str, float] = field(default_factory=lambda: dict(EXCHANGE_RATES))
