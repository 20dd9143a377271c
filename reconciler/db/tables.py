"""The schema, as SQLAlchemy Core tables. Alembic migrations are the source of truth for the
database itself; `tests/reconciler/db/test_migrations.py` proves the two agree."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    text,
)

# Integer on SQLite so the id is the rowid (autoincrementing); BIGINT identity elsewhere.
Id = BigInteger().with_variant(Integer(), "sqlite")
Amount = BigInteger


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every database (SQLite would otherwise hand back naive ones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; pass an aware UTC datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _timestamps() -> list[Column[datetime]]:
    return [
        Column("created_at", UTCDateTime(), nullable=False),
        Column("updated_at", UTCDateTime(), nullable=False),
    ]


merchants = Table(
    "merchants",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("email", String(254)),
    Column("stripe_account_id", String(64), unique=True),
    Column("connect_status", String(20), nullable=False),
    Column("charges_enabled", Boolean, nullable=False),
    Column("payouts_enabled", Boolean, nullable=False),
    Column("details_submitted", Boolean, nullable=False),
    # Stripe's account state, kept whole: capability -> active | inactive | pending, and
    # what Stripe still needs (see ledger.merchants.Requirements).
    Column("capabilities", JSON, nullable=False),
    Column("requirements", JSON, nullable=False),
    *_timestamps(),
)

payments = Table(
    "payments",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("merchant_id", Id, ForeignKey("merchants.id"), nullable=False, index=True),
    Column("payment_intent_id", String(64), unique=True),
    Column("charge_id", String(64), unique=True),
    Column("ledger", String(32), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount", Amount, nullable=False),
    Column("platform_fee", Amount, nullable=False),
    Column("stripe_fee", Amount),
    Column("amount_refunded", Amount, nullable=False),
    Column("status", String(24), nullable=False),
    Column("funds_available", Boolean, nullable=False),
    # When Stripe makes the net available (unix time, from the charge's balance transaction).
    Column("available_on", BigInteger),
    # What the customer was charged, when Stripe converted it into `currency` (else NULL).
    Column("presentment_amount", Amount),
    Column("presentment_currency", String(3)),
    *_timestamps(),
    # The API request that made it (its caller and Idempotency-Key, and a digest of what was
    # asked), so a repeated checkout answers with this payment's PaymentIntent.
    Column("request_scope", String(64)),
    Column("request_key", String(255)),
    Column("request_digest", String(64)),
    CheckConstraint("amount > 0", "amount_positive"),
    CheckConstraint("platform_fee >= 0 AND platform_fee <= amount", "platform_fee_range"),
    CheckConstraint("stripe_fee IS NULL OR stripe_fee >= 0", "stripe_fee_non_negative"),
    CheckConstraint("amount_refunded >= 0 AND amount_refunded <= amount", "refunded_range"),
    Index("uq_payments_request", "request_scope", "request_key", unique=True),
)

refunds = Table(
    "refunds",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("payment_id", Id, ForeignKey("payments.id"), nullable=False, index=True),
    Column("merchant_id", Id, ForeignKey("merchants.id"), nullable=False, index=True),
    Column("stripe_refund_id", String(64), unique=True),
    Column("currency", String(3), nullable=False),
    Column("amount", Amount, nullable=False),
    Column("status", String(24), nullable=False),
    Column("source", String(16), nullable=False),
    Column("reason", String(64)),
    Column("failure_reason", String(64)),
    # What Stripe said when it refused to make it (ICPay's refunds only).
    Column("failure_message", Text),
    *_timestamps(),
    # As for payouts: the API request that made it.
    Column("request_scope", String(64)),
    Column("request_key", String(255)),
    Column("request_digest", String(64)),
    CheckConstraint("amount > 0", "amount_positive"),
    CheckConstraint("source IN ('api', 'dashboard')", "source_known"),
    Index("uq_refunds_request", "request_scope", "request_key", unique=True),
)

payouts = Table(
    "payouts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("merchant_id", Id, ForeignKey("merchants.id"), nullable=False, index=True),
    Column("stripe_transfer_id", String(64), unique=True),
    # The connected account the payout is for, fixed when it is accepted: a merchant who
    # reconnects later does not redirect money already on its way.
    Column("destination", String(64)),
    Column("currency", String(3), nullable=False),
    Column("amount", Amount, nullable=False),
    Column("amount_reversed", Amount, nullable=False),
    Column("status", String(24), nullable=False),
    Column("failure_message", Text),
    *_timestamps(),
    # The API request that made it (its caller and Idempotency-Key, and a digest of what was
    # asked), so a repeated request answers with this payout and never makes another.
    Column("request_scope", String(64)),
    Column("request_key", String(255)),
    Column("request_digest", String(64)),
    CheckConstraint("amount > 0", "amount_positive"),
    CheckConstraint("amount_reversed >= 0 AND amount_reversed <= amount", "reversed_range"),
    Index("uq_payouts_request", "request_scope", "request_key", unique=True),
)

platform_balance_snapshots = Table(
    "platform_balance_snapshots",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("currency", String(3), nullable=False),
    # Stripe balances can be negative (refunds and disputes beyond what is held).
    Column("available", Amount, nullable=False),
    Column("pending", Amount, nullable=False),
    Column("source", String(32), nullable=False),
    Column("taken_at", UTCDateTime(), nullable=False),
    Index("ix_platform_balance_snapshots_currency_taken_at", "currency", "taken_at"),
)

journal_entries = Table(
    "journal_entries",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    # One entry per business fact (e.g. "payout:7:released"): posting twice is impossible.
    Column("idempotency_key", String(200), nullable=False, unique=True),
    Column("kind", String(48), nullable=False),
    Column("merchant_id", Id, ForeignKey("merchants.id"), index=True),
    Column("created_at", UTCDateTime(), nullable=False),
)

journal_legs = Table(
    "journal_legs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("entry_id", Id, ForeignKey("journal_entries.id"), nullable=False, index=True),
    Column("account", String(100), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("debit", Amount, nullable=False),
    Column("credit", Amount, nullable=False),
    CheckConstraint(
        "(debit > 0 AND credit = 0) OR (debit = 0 AND credit > 0)", "one_side_positive"
    ),
    Index("ix_journal_legs_account_currency", "account", "currency"),
)

# Running totals per account, updated in the same transaction as each leg, so reading a
# balance is one row however long the history (the journal stays the proof).
account_balances = Table(
    "account_balances",
    metadata,
    Column("account", String(100), primary_key=True),
    Column("currency", String(3), primary_key=True),
    Column("debits", Amount, nullable=False),
    Column("credits", Amount, nullable=False),
    CheckConstraint("debits >= 0 AND credits >= 0", "totals_non_negative"),
)

# Every webhook, stored before it is acknowledged. The Stripe event id is unique, so a
# duplicate delivery inserts nothing. Life: received -> processing -> done | failed -> dead;
# `ignored` for events that are not ours to apply (other mode, foreign).
inbox_events = Table(
    "inbox_events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("stripe_event_id", String(255), nullable=False, unique=True),
    Column("endpoint", String(16), nullable=False),
    Column("event_type", String(100), nullable=False),
    Column("livemode", Boolean, nullable=False),
    Column("account", String(64)),
    Column("stripe_created", BigInteger, nullable=False),
    Column("payload", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime(), nullable=False),
    Column("locked_until", UTCDateTime()),
    Column("last_error", Text),
    Column("received_at", UTCDateTime(), nullable=False),
    Column("processed_at", UTCDateTime()),
    CheckConstraint("endpoint IN ('platform', 'connect')", "endpoint_known"),
    CheckConstraint(
        "status IN ('received', 'processing', 'done', 'failed', 'dead', 'ignored')",
        "status_known",
    ),
    Index("ix_inbox_events_status_next_attempt_at", "status", "next_attempt_at"),
)

# Differences between the ledger and Stripe that a person may need to look at.
discrepancies = Table(
    "discrepancies",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("kind", String(48), nullable=False),
    Column("object_type", String(32), nullable=False),
    Column("object_id", String(255), nullable=False),
    Column("merchant_id", Id, ForeignKey("merchants.id")),
    Column("ledger_value", JSON),
    Column("stripe_value", JSON),
    Column("detail", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("detected_by", String(64), nullable=False),
    Column("resolved_by", String(100)),
    Column("resolution", Text),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("resolved_at", UTCDateTime()),
    # `created_at` is when it was first seen; `last_seen_at` the latest run or path to see it.
    Column("last_seen_at", UTCDateTime()),
    Column("first_run_id", Id),
    Column("last_run_id", Id),
    # healed (a run applied Stripe's truth), operator (resolved by a person, with a note),
    # cleared (a run no longer saw it), ended (the path that opened it saw it end).
    Column("resolved_how", String(16)),
    Column("resolved_run_id", Id),
    CheckConstraint("status IN ('open', 'resolved', 'dismissed')", "status_known"),
    CheckConstraint(
        "resolved_how IS NULL OR resolved_how IN ('healed', 'operator', 'cleared', 'ended')",
        "resolved_how_known",
    ),
    Index("ix_discrepancies_status_kind", "status", "kind"),
    # At most one open discrepancy per kind and object: seeing it again is not news.
    Index(
        "uq_discrepancies_open_object",
        "kind",
        "object_type",
        "object_id",
        unique=True,
        sqlite_where=text("status = 'open'"),
        postgresql_where=text("status = 'open'"),
    ),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False),
    Column("role", String(16), nullable=False),
    # A merchant token acts for this merchant only; admin and operator tokens for none.
    Column("merchant_id", Id, ForeignKey("merchants.id")),
    # SHA-256 of the token: the token itself is shown once and never stored.
    Column("token_hash", String(64), nullable=False, unique=True),
    # The first characters, so a person can tell tokens apart in a list.
    Column("display", String(24), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("revoked_at", UTCDateTime()),
    CheckConstraint("role IN ('admin', 'operator', 'merchant')", "role_known"),
    CheckConstraint(
        "(role = 'merchant') = (merchant_id IS NOT NULL)", "merchant_tokens_name_a_merchant"
    ),
)

# Every Stripe account ever linked to a merchant. `merchants.stripe_account_id` is the current
# one; an account unlinked (disconnected, or replaced before onboarding) keeps its row, so its
# late events are known for what they are and never link it again.
connected_accounts = Table(
    "connected_accounts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("merchant_id", Id, ForeignKey("merchants.id"), nullable=False, index=True),
    Column("stripe_account_id", String(64), nullable=False, unique=True),
    Column("country", String(2)),
    Column("linked_at", UTCDateTime(), nullable=False),
    Column("unlinked_at", UTCDateTime()),
)

# Who runs each scheduled job now: taken by an atomic upsert that only succeeds when the
# lease is free or expired, so with several instances each tick runs once.
job_leases = Table(
    "job_leases",
    metadata,
    Column("job", String(64), primary_key=True),
    Column("owner", String(128), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
)

# Every run of a scheduled job: when, how long, and how it ended.
job_runs = Table(
    "job_runs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("job", String(64), nullable=False),
    Column("owner", String(128), nullable=False),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime()),
    Column("duration_ms", Integer),
    Column("outcome", String(16), nullable=False),
    Column("detail", Text),
    CheckConstraint("outcome IN ('running', 'succeeded', 'failed')", "outcome_known"),
    Index("ix_job_runs_job_started_at", "job", "started_at"),
)

# How far the events catch-up has read, per source ('platform' or a connected account id):
# the `created` second of the newest event seen, read again with an overlap next time.
event_cursors = Table(
    "event_cursors",
    metadata,
    Column("source", String(64), primary_key=True),
    Column("created", BigInteger, nullable=False),
    Column("event_id", String(255)),
    Column("updated_at", UTCDateTime(), nullable=False),
)

# Reconcile runs: what was compared, who asked, what was found, and where to resume.
reconcile_runs = Table(
    "reconcile_runs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("scope", JSON, nullable=False),
    Column("dry_run", Boolean, nullable=False),
    Column("started_by", String(100), nullable=False),
    Column("status", String(16), nullable=False),
    Column("examined", Integer, nullable=False, server_default="0"),
    Column("healed", Integer, nullable=False, server_default="0"),
    Column("found", Integer, nullable=False, server_default="0"),
    # The last page finished (per kind of object), so an interrupted run goes on from there.
    Column("resume_from", JSON),
    Column("error", Text),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("started_at", UTCDateTime()),
    Column("finished_at", UTCDateTime()),
    Column("duration_ms", Integer),
    # The API request that queued it (caller, Idempotency-Key, digest): a retry queues no other.
    Column("request_scope", String(64)),
    Column("request_key", String(255)),
    Column("request_digest", String(64)),
    CheckConstraint(
        "status IN ('queued', 'running', 'succeeded', 'failed', 'interrupted')", "status_known"
    ),
    Index("ix_reconcile_runs_status", "status"),
    Index("uq_reconcile_runs_request", "request_scope", "request_key", unique=True),
)

# The Stripe ids a reconcile run has seen so far (deleted when it ends): what the ledger holds
# and no page showed is missing at Stripe. A table, not a set in memory, so a run's memory does
# not grow with the objects it reads, and a resumed run still knows what it saw.
reconcile_seen = Table(
    "reconcile_seen",
    metadata,
    Column("run_id", Id, primary_key=True),
    Column("object_id", String(255), primary_key=True),
)
