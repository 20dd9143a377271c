from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

from reconciler.config import DEFAULT_DATABASE_URL, ConfigError, Settings


def test_defaults_need_no_environment_at_all() -> None:
    settings = Settings.from_environ({}, env_file=None)
    assert settings.database_url == DEFAULT_DATABASE_URL
    assert settings.stripe_api_key.reveal().startswith("sk_test_")
    assert settings.webhook_secrets == ()
    assert not settings.livemode


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("postgres://u@db:5432/app", "postgresql+asyncpg://u@db:5432/app"),
        ("postgresql://u:pw@db/app", "postgresql+asyncpg://u:pw@db/app"),
        ("postgresql+asyncpg://u@db/app", "postgresql+asyncpg://u@db/app"),
        ("sqlite:///var/x.db", "sqlite+aiosqlite:///var/x.db"),
        ("sqlite+aiosqlite:////tmp/x.db", "sqlite+aiosqlite:////tmp/x.db"),
    ],
)
def test_database_url_as_users_write_it_gets_the_async_driver(given: str, used: str) -> None:
    settings = Settings.from_environ({"DATABASE_URL": given}, env_file=None)
    assert settings.database_url == used


def test_values_are_typed_and_secrets_never_print() -> None:
    settings = Settings.from_environ(
        {
            "STRIPE_API_KEY": "sk_live_abc123",
            "STRIPE_WEBHOOK_SECRETS": "whsec_old, whsec_new",
            "PLATFORM_FEE_PERCENT": "2.5",
            "PLATFORM_FEE_FIXED": "30",
            "PORT": "9000",
            "CATCHUP_OVERLAP_SECONDS": "60",
        },
        env_file=None,
    )
    assert [secret.reveal() for secret in settings.webhook_secrets] == ["whsec_old", "whsec_new"]
    assert settings.platform_fee_percent == Decimal("2.5")
    assert (settings.platform_fee_fixed, settings.port, settings.livemode) == (30, 9000, True)
    assert settings.catchup_overlap_seconds == 60
    shown = repr(settings) + str(settings.stripe_api_key)
    assert "sk_live_abc123" not in shown
    assert "whsec_old" not in shown


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"PORT": "eighty"}, "PORT must be a whole number"),
        ({"PLATFORM_FEE_PERCENT": "ten"}, "PLATFORM_FEE_PERCENT must be a decimal"),
        ({"PLATFORM_FEE_PERCENT": "150"}, "PLATFORM_FEE_PERCENT must be between 0 and 100"),
        ({"STRIPE_API_KEY": "pk_test_123"}, "STRIPE_API_KEY must start with"),
        ({"STRIPE_WEBHOOK_SECRETS": "whsec_a,oops"}, "STRIPE_WEBHOOK_SECRETS: secret #2"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL must be"),
        ({"DATABASE_URL": "postgresql+psycopg://x/y"}, "DATABASE_URL must be"),
        ({"DATABASE_URL": "var/x.db"}, "DATABASE_URL must be"),
        ({"STRIPE_API_BASE": "localhost:12111"}, "STRIPE_API_BASE must be an http"),
        ({"JOB_LEASE_SECONDS": "soon"}, "JOB_LEASE_SECONDS must be a number of seconds"),
        ({"STALE_SWEEP_SECONDS": "0"}, "STALE_SWEEP_SECONDS must be at least 0.1 seconds"),
        ({"PLATFORM_BALANCE_SECONDS": "inf"}, "PLATFORM_BALANCE_SECONDS must be at least"),
        ({"RECONCILE_CRON": "nightly"}, "RECONCILE_CRON must be a crontab line"),
        ({"SCHEDULER_ENABLED": "maybe"}, "SCHEDULER_ENABLED must be true or false"),
        ({"STRIPE_RATE_LIMIT": "fast"}, "STRIPE_RATE_LIMIT must be a whole number"),
        ({"STRIPE_RATE_LIMIT": "-1"}, "STRIPE_RATE_LIMIT must be at least 0"),
        ({"STRIPE_RATE_BURST": "0"}, "STRIPE_RATE_BURST must be at least 1"),
        ({"STRIPE_RATE_BURST": "25"}, r"STRIPE_RATE_BURST must be below the rate limit \(25"),
        ({"CATCHUP_PAGE_SIZE": "500"}, "CATCHUP_PAGE_SIZE must be at most 100"),
        ({"CATCHUP_PAGE_SIZE": "0"}, "CATCHUP_PAGE_SIZE must be at least 1"),
        ({"CATCHUP_OVERLAP_SECONDS": "-5"}, "CATCHUP_OVERLAP_SECONDS must be at least 0"),
    ],
)
def test_malformed_values_name_the_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_environ(environ, env_file=None)


def test_scheduler_settings_are_read() -> None:
    settings = Settings.from_environ(
        {
            "SCHEDULER_ENABLED": "false",
            "JOB_LEASE_SECONDS": "2.5",
            "STALE_AFTER_SECONDS": "600",
            "INBOX_RETRY_SECONDS": "0.5",
            "RECONCILE_CRON": "30 2 * * 1-5",
        },
        env_file=None,
    )
    assert settings.scheduler_enabled is False
    assert (settings.job_lease_seconds, settings.stale_after_seconds) == (2.5, 600.0)
    assert (settings.inbox_retry_seconds, settings.reconcile_cron) == (0.5, "30 2 * * 1-5")


def test_env_file_is_read_and_the_environment_wins(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("# local\nPORT=9100\nLOG_LEVEL='DEBUG'\n")
    settings = Settings.from_environ({"PORT": "9200"}, env_file=env_file)
    assert (settings.port, settings.log_level) == (9200, "debug")


def test_the_sandbox_is_used_only_when_nothing_about_stripe_is_configured() -> None:
    assert Settings.from_environ({}, env_file=None).uses_sandbox
    for configured in (
        {"STRIPE_API_KEY": "sk_test_real"},
        {"STRIPE_API_BASE": "http://127.0.0.1:12111"},
        {"STRIPE_WEBHOOK_SECRETS": "whsec_x"},
        {"STRIPE_CONNECT_WEBHOOK_SECRETS": "whsec_y"},
    ):
        assert not Settings.from_environ(configured, env_file=None).uses_sandbox, configured


def test_unset_variables_take_the_field_defaults_written_once() -> None:
    assert Settings.from_environ({}, env_file=None) == Settings()

    @dataclass(frozen=True)
    class Retuned(Settings):
        port: int = 9999
        inbox_batch_size: int = 7

    # from_environ reads its defaults from the fields: change one there, it changes here.
    retuned = Retuned.from_environ({}, env_file=None)
    assert (retuned.port, retuned.inbox_batch_size) == (9999, 7)


def test_the_rate_limit_follows_the_keys_mode_unless_set() -> None:
    def limit(environ: dict[str, str]) -> int:
        return Settings.from_environ(environ, env_file=None).stripe_requests_per_second

    assert limit({}) == 25
    assert limit({"STRIPE_API_KEY": "rk_test_abc"}) == 25
    assert limit({"STRIPE_API_KEY": "sk_live_abc"}) == 100
    assert limit({"STRIPE_API_KEY": "sk_live_abc", "STRIPE_RATE_LIMIT": "40"}) == 40
    assert limit({"STRIPE_RATE_LIMIT": "0"}) == 0  # off
    off = Settings.from_environ({"STRIPE_RATE_LIMIT": "0", "STRIPE_RATE_BURST": "9"}, env_file=None)
    assert off.stripe_rate_burst == 9  # no limit, so no burst to stay below
