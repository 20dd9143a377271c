"""Settings: the one place that reads the environment.

Values come from environment variables, then an optional `.env` file, then defaults. Secrets
are wrapped so they never appear in a repr, a log line or a traceback. A missing or malformed
value raises `ConfigError` naming the variable and what it expects.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///var/reconciler.db"
SANDBOX_API_KEY = "sk_test_sandbox"


class ConfigError(ValueError):
    """A configuration value is missing or malformed; the message names the variable."""


class Secret:
    """A string that never shows itself when printed."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def read_env_file(path: Path) -> dict[str, str]:
    """Parse a `.env` file of KEY=VALUE lines (comments and blank lines ignored)."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ConfigError(f"{path}:{number}: expected KEY=VALUE, got {line[:40]!r}")
        values[key.strip()] = value.strip().strip("'\"")
    return values


class _Reader:
    def __init__(self, environ: Mapping[str, str], file_values: Mapping[str, str]) -> None:
        self._environ = environ
        self._file_values = file_values

    def raw(self, name: str) -> str | None:
        if name in self._environ:
            return self._environ[name]
        return self._file_values.get(name)

    def string(self, name: str, default: str) -> str:
        value = self.raw(name)
        return default if value is None or value == "" else value

    def integer(self, name: str, default: int, *, minimum: int = 0) -> int:
        value = self.raw(name)
        if value is None or value == "":
            return default
        try:
            number = int(value)
        except ValueError:
            raise ConfigError(f"{name} must be a whole number, got {value!r}") from None
        if number < minimum:
            raise ConfigError(f"{name} must be at least {minimum}, got {number}")
        return number

    def seconds(self, name: str, default: float, *, minimum: float = 0.1) -> float:
        value = self.raw(name)
        if value is None or value == "":
            return default
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"{name} must be a number of seconds, got {value!r}") from None
        if not minimum <= number < float("inf"):
            raise ConfigError(f"{name} must be at least {minimum} seconds, got {value!r}")
        return number

    def cron(self, name: str, default: str) -> str:
        value = self.string(name, default)
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(value)
        except ValueError as error:
            raise ConfigError(
                f"{name} must be a crontab line (minute hour day month weekday), "
                f"got {value!r}: {error}"
            ) from None
        return value

    def boolean(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is None or value == "":
            return default
        lowered = value.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name} must be true or false, got {value!r}")

    def decimal(self, name: str, default: Decimal, *, maximum: Decimal) -> Decimal:
        value = self.raw(name)
        if value is None or value == "":
            return default
        try:
            number = Decimal(value)
        except InvalidOperation:
            raise ConfigError(f"{name} must be a decimal number, got {value!r}") from None
        if not number.is_finite() or not 0 <= number <= maximum:
            raise ConfigError(f"{name} must be between 0 and {maximum}, got {value!r}")
        return number

    def secret(self, name: str, default: str, *, prefixes: tuple[str, ...]) -> Secret:
        value = self.string(name, default)
        if not value.startswith(prefixes):
            raise ConfigError(f"{name} must start with {' or '.join(prefixes)}")
        return Secret(value)

    def secrets(self, name: str, *, prefix: str) -> tuple[Secret, ...]:
        value = self.raw(name) or ""
        items = [item.strip() for item in value.split(",") if item.strip()]
        for index, item in enumerate(items, start=1):
            if not item.startswith(prefix):
                raise ConfigError(f"{name}: secret #{index} must start with {prefix!r}")
        return tuple(Secret(item) for item in items)


@dataclass(frozen=True)
class Settings:
    """Typed settings for every part of the service."""

    database_url: str = DEFAULT_DATABASE_URL
    stripe_api_key: Secret = field(default_factory=lambda: Secret(SANDBOX_API_KEY))
    # None means the real Stripe API; the sandbox and tests point this at a local server.
    stripe_api_base: str | None = None
    # Requests a second sent to Stripe, shared by everything in this process: None takes
    # Stripe's own limit for the key's mode (below), 0 switches limiting off.
    stripe_rate_limit: int | None = None
    # How many requests may leave at once after a quiet spell; below the limit.
    stripe_rate_burst: int = 1
    webhook_secrets: tuple[Secret, ...] = ()
    connect_webhook_secrets: tuple[Secret, ...] = ()
    webhook_tolerance_seconds: int = 300
    platform_fee_percent: Decimal = Decimal(0)
    platform_fee_fixed: int = 0
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "info"
    sandbox_port: int = 12111
    # ICPay's dashboard: Stripe's hosted onboarding sends the merchant back to its Settings
    # page (`?stripe=return`, or `?stripe=refresh` for a link that expired).
    dashboard_url: str = "http://127.0.0.1:3000"
    # The inbox worker: off makes an ingest-only instance (events are stored, not applied).
    inbox_worker_enabled: bool = True
    # Which applier the worker calls: `ledger` (the real one), `noop`, or `<module>:<factory>`
    # (benchmarks, tests: `factory(database, settings)` yields the applier).
    inbox_applier: str = "ledger"
    inbox_batch_size: int = 500
    inbox_max_attempts: int = 8
    inbox_backoff_base_seconds: int = 10
    inbox_backoff_cap_seconds: int = 3600
    inbox_lease_seconds: int = 300
    # The payout executor (makes the Connect transfer of each accepted payout) runs in
    # instances with the inbox worker, unless switched off here.
    payout_executor_enabled: bool = True
    # A payout or refund whose Stripe call got no answer is tried again (same key) after this.
    payout_retry_seconds: int = 30
    # Scheduled jobs: on in every instance by default (a single instance needs nothing more);
    # a lease in the database lets one instance run each tick. A web-only instance turns it
    # off and leaves the jobs to `reconciler worker`.
    scheduler_enabled: bool = True
    # How long a tick's lease lasts: a dead owner's jobs pass to another instance after this.
    job_lease_seconds: float = 60.0
    platform_balance_seconds: float = 300.0
    stale_sweep_seconds: float = 300.0
    # A payout or refund still pending or processing this long after it was made is re-read
    # from Stripe by the stale sweep.
    stale_after_seconds: float = 900.0
    inbox_retry_seconds: float = 60.0
    events_catch_up_seconds: float = 300.0
    # The nightly full reconcile, a crontab line in UTC.
    reconcile_cron: str = "0 3 * * *"
    # The events catch-up (`reconciler/inbox/catchup.py`): each run re-reads this many seconds
    # before the newest event it saw (events of one second, or shown late, are not skipped)...
    catchup_overlap_seconds: int = 300
    # ...warns and reports once what it has not read yet is this close to Stripe's 30 days...
    catchup_retention_margin_seconds: int = 3 * 86_400
    # ...reads this far back the first time (a new deployment, or a newly linked account)...
    catchup_first_lookback_seconds: int = 3 * 86_400
    # ...and asks Stripe for this many events a page (1 to 100).
    catchup_page_size: int = 100

    @property
    def uses_sandbox(self) -> bool:
        """No Stripe configured at all: `serve` brings up the local sandbox and uses it."""
        return (
            self.stripe_api_base is None
            and self.stripe_api_key.reveal() == SANDBOX_API_KEY
            and not self.webhook_secrets
            and not self.connect_webhook_secrets
        )

    @property
    def livemode(self) -> bool:
        """A service holding a live key is a live-mode service; test events are foreign to it."""
        return self.stripe_api_key.reveal().startswith(("sk_live_", "rk_live_"))

    @property
    def stripe_requests_per_second(self) -> int:
        """The rate limit in force: Stripe's global limit is 100 requests a second in live mode
        and 25 in test mode (docs.stripe.com/rate-limits), unless set; 0 means none."""
        if self.stripe_rate_limit is not None:
            return self.stripe_rate_limit
        return 100 if self.livemode else 25

    @classmethod
    def from_environ(
        cls, environ: Mapping[str, str] | None = None, env_file: Path | None = Path(".env")
    ) -> Settings:
        """Build settings from `environ` (default: the process environment) and `env_file`."""
        file_values = read_env_file(env_file) if env_file is not None else {}
        read = _Reader(os.environ if environ is None else environ, file_values)
        # The field defaults above are the only ones: every variable left unset takes its own.
        default = cls()
        database_url = database_url_with_driver(read.string("DATABASE_URL", default.database_url))
        api_base = read.string("STRIPE_API_BASE", default.stripe_api_base or "") or None
        if api_base is not None and not api_base.startswith(("http://", "https://")):
            raise ConfigError(f"STRIPE_API_BASE must be an http(s) URL, got {api_base!r}")
        rate_raw = read.raw("STRIPE_RATE_LIMIT")
        rate_limit = None if not rate_raw else read.integer("STRIPE_RATE_LIMIT", 0)
        rate_burst = read.integer("STRIPE_RATE_BURST", default.stripe_rate_burst, minimum=1)
        dashboard_url = read.string("DASHBOARD_URL", default.dashboard_url).rstrip("/")
        if not dashboard_url.startswith(("http://", "https://")):
            raise ConfigError(f"DASHBOARD_URL must be an http(s) URL, got {dashboard_url!r}")
        settings = cls(
            database_url=database_url,
            dashboard_url=dashboard_url,
            stripe_api_key=read.secret(
                "STRIPE_API_KEY",
                default.stripe_api_key.reveal(),
                prefixes=("sk_test_", "sk_live_", "rk_"),
            ),
            stripe_api_base=api_base,
            stripe_rate_limit=rate_limit,
            stripe_rate_burst=rate_burst,
            webhook_secrets=read.secrets("STRIPE_WEBHOOK_SECRETS", prefix="whsec_"),
            connect_webhook_secrets=read.secrets("STRIPE_CONNECT_WEBHOOK_SECRETS", prefix="whsec_"),
            webhook_tolerance_seconds=read.integer(
                "STRIPE_WEBHOOK_TOLERANCE_SECONDS", default.webhook_tolerance_seconds, minimum=1
            ),
            platform_fee_percent=read.decimal(
                "PLATFORM_FEE_PERCENT", default.platform_fee_percent, maximum=Decimal(100)
            ),
            platform_fee_fixed=read.integer("PLATFORM_FEE_FIXED", default.platform_fee_fixed),
            host=read.string("HOST", default.host),
            port=read.integer("PORT", default.port, minimum=0),
            log_level=read.string("LOG_LEVEL", default.log_level).lower(),
            sandbox_port=read.integer("SANDBOX_PORT", default.sandbox_port, minimum=1),
            inbox_worker_enabled=read.boolean("INBOX_WORKER_ENABLED", default.inbox_worker_enabled),
            inbox_applier=read.string("INBOX_APPLIER", default.inbox_applier),
            inbox_batch_size=read.integer("INBOX_BATCH_SIZE", default.inbox_batch_size, minimum=1),
            inbox_max_attempts=read.integer(
                "INBOX_MAX_ATTEMPTS", default.inbox_max_attempts, minimum=1
            ),
            inbox_backoff_base_seconds=read.integer(
                "INBOX_BACKOFF_BASE_SECONDS", default.inbox_backoff_base_seconds, minimum=1
            ),
            inbox_backoff_cap_seconds=read.integer(
                "INBOX_BACKOFF_CAP_SECONDS", default.inbox_backoff_cap_seconds, minimum=1
            ),
            inbox_lease_seconds=read.integer(
                "INBOX_LEASE_SECONDS", default.inbox_lease_seconds, minimum=1
            ),
            payout_executor_enabled=read.boolean(
                "PAYOUT_EXECUTOR_ENABLED", default.payout_executor_enabled
            ),
            payout_retry_seconds=read.integer(
                "PAYOUT_RETRY_SECONDS", default.payout_retry_seconds, minimum=1
            ),
            scheduler_enabled=read.boolean("SCHEDULER_ENABLED", default.scheduler_enabled),
            job_lease_seconds=read.seconds("JOB_LEASE_SECONDS", default.job_lease_seconds),
            platform_balance_seconds=read.seconds(
                "PLATFORM_BALANCE_SECONDS", default.platform_balance_seconds
            ),
            stale_sweep_seconds=read.seconds("STALE_SWEEP_SECONDS", default.stale_sweep_seconds),
            stale_after_seconds=read.seconds(
                "STALE_AFTER_SECONDS", default.stale_after_seconds, minimum=1
            ),
            inbox_retry_seconds=read.seconds("INBOX_RETRY_SECONDS", default.inbox_retry_seconds),
            events_catch_up_seconds=read.seconds(
                "EVENTS_CATCH_UP_SECONDS", default.events_catch_up_seconds
            ),
            reconcile_cron=read.cron("RECONCILE_CRON", default.reconcile_cron),
            catchup_overlap_seconds=read.integer(
                "CATCHUP_OVERLAP_SECONDS", default.catchup_overlap_seconds, minimum=0
            ),
            catchup_retention_margin_seconds=read.integer(
                "CATCHUP_RETENTION_MARGIN_SECONDS", default.catchup_retention_margin_seconds
            ),
            catchup_first_lookback_seconds=read.integer(
                "CATCHUP_FIRST_LOOKBACK_SECONDS", default.catchup_first_lookback_seconds
            ),
            catchup_page_size=_page_size(
                read.integer("CATCHUP_PAGE_SIZE", default.catchup_page_size, minimum=1)
            ),
        )
        limit = settings.stripe_requests_per_second
        if limit and rate_burst >= limit:
            raise ConfigError(
                f"STRIPE_RATE_BURST must be below the rate limit ({limit} a second), "
                f"got {rate_burst}"
            )
        return settings


# The scheme a user (or Heroku, or `psql`) writes, and the async driver this service uses for it.
_URL_DRIVERS = {
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
}


def database_url_with_driver(url: str) -> str:
    """`url` with the driver the service uses: `postgres://` and `postgresql://` (what libpq
    and most hosting providers hand out) mean asyncpg, `sqlite:///` means aiosqlite."""
    scheme, sep, rest = url.partition("://")
    driver = _URL_DRIVERS.get(scheme.lower()) if sep else None
    if driver is None:
        raise ConfigError(
            "DATABASE_URL must be a postgres://, postgresql:// (postgresql+asyncpg://) or "
            "sqlite:/// (sqlite+aiosqlite:///) URL"
        )
    return f"{driver}://{rest}"


def _page_size(value: int) -> int:
    if value > 100:
        raise ConfigError(f"CATCHUP_PAGE_SIZE must be at most 100 (Stripe's limit), got {value}")
    return value
