"""Ledger foundation: merchants, payments, refunds, payouts, balances, the journal.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


IMMUTABLE_TABLES = ("journal_entries", "journal_legs")

# PostgreSQL checks each entry's balance at commit (a deferred constraint trigger), after all
# of its legs are in. SQLite has no deferred triggers: there the check is the code's alone
# (reconciler.ledger.journal.post), and the reconciler's invariant check catches any slip.
PG_BALANCE_CHECK = (
    """
    CREATE FUNCTION journal_entry_must_balance() RETURNS trigger AS $$
    BEGIN
        IF (SELECT count(*) FROM journal_legs WHERE entry_id = NEW.entry_id) < 2 THEN
            RAISE EXCEPTION 'journal entry % has fewer than two legs', NEW.entry_id;
        END IF;
        IF EXISTS (
            SELECT 1 FROM journal_legs WHERE entry_id = NEW.entry_id
            GROUP BY currency HAVING sum(debit) <> sum(credit)
        ) THEN
            RAISE EXCEPTION 'journal entry % does not balance', NEW.entry_id;
        END IF;
        RETURN NULL;
    END $$ LANGUAGE plpgsql
    """,
    """
    CREATE CONSTRAINT TRIGGER journal_legs_balanced AFTER INSERT ON journal_legs
        DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION journal_entry_must_balance()
    """,
    """
    CREATE FUNCTION journal_is_immutable() RETURNS trigger AS $$
    BEGIN
        RAISE EXCEPTION 'the journal is append-only: post a correcting entry instead';
    END $$ LANGUAGE plpgsql
    """,
)


def _create_journal_guards() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in PG_BALANCE_CHECK:
            op.execute(statement)
        for table in IMMUTABLE_TABLES:
            op.execute(
                f"CREATE TRIGGER {table}_immutable BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION journal_is_immutable()"
            )
        return
    for table in IMMUTABLE_TABLES:
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                "BEGIN SELECT RAISE(ABORT, "
                "'the journal is append-only: post a correcting entry instead'); END"
            )


def _drop_journal_guards() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS journal_legs_balanced ON journal_legs")
        for table in IMMUTABLE_TABLES:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_immutable ON {table}")
        op.execute("DROP FUNCTION IF EXISTS journal_entry_must_balance()")
        op.execute("DROP FUNCTION IF EXISTS journal_is_immutable()")
        return
    for table in IMMUTABLE_TABLES:
        for action in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{action}")


def upgrade() -> None:
    op.create_table(
        "account_balances",
        sa.Column("account", sa.String(length=100), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("debits", sa.BigInteger(), nullable=False),
        sa.Column("credits", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "debits >= 0 AND credits >= 0", name=op.f("ck_account_balances_totals_non_negative")
        ),
        sa.PrimaryKeyConstraint("account", "currency", name=op.f("pk_account_balances")),
    )
    op.create_table(
        "merchants",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("stripe_account_id", sa.String(length=64), nullable=True),
        sa.Column("connect_status", sa.String(length=20), nullable=False),
        sa.Column("charges_enabled", sa.Boolean(), nullable=False),
        sa.Column("payouts_enabled", sa.Boolean(), nullable=False),
        sa.Column("details_submitted", sa.Boolean(), nullable=False),
        sa.Column("requirements_due", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_merchants")),
        sa.UniqueConstraint("stripe_account_id", name=op.f("uq_merchants_stripe_account_id")),
    )
    op.create_table(
        "platform_balance_snapshots",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("available", sa.BigInteger(), nullable=False),
        sa.Column("pending", sa.BigInteger(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_platform_balance_snapshots")),
    )
    with op.batch_alter_table("platform_balance_snapshots", schema=None) as batch_op:
        batch_op.create_index(
            "ix_platform_balance_snapshots_currency_taken_at",
            ["currency", "taken_at"],
            unique=False,
        )

    op.create_table(
        "journal_entries",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=48), nullable=False),
        sa.Column(
            "merchant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_journal_entries_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_journal_entries")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_journal_entries_idempotency_key")),
    )
    with op.batch_alter_table("journal_entries", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_journal_entries_merchant_id"), ["merchant_id"], unique=False
        )

    op.create_table(
        "payments",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "merchant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("payment_intent_id", sa.String(length=64), nullable=True),
        sa.Column("charge_id", sa.String(length=64), nullable=True),
        sa.Column("ledger", sa.String(length=32), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("platform_fee", sa.BigInteger(), nullable=False),
        sa.Column("stripe_fee", sa.BigInteger(), nullable=True),
        sa.Column("amount_refunded", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("funds_available", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("amount > 0", name=op.f("ck_payments_amount_positive")),
        sa.CheckConstraint(
            "amount_refunded >= 0 AND amount_refunded <= amount",
            name=op.f("ck_payments_refunded_range"),
        ),
        sa.CheckConstraint(
            "platform_fee >= 0 AND platform_fee <= amount",
            name=op.f("ck_payments_platform_fee_range"),
        ),
        sa.CheckConstraint(
            "stripe_fee IS NULL OR stripe_fee >= 0",
            name=op.f("ck_payments_stripe_fee_non_negative"),
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_payments_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments")),
        sa.UniqueConstraint("charge_id", name=op.f("uq_payments_charge_id")),
        sa.UniqueConstraint("payment_intent_id", name=op.f("uq_payments_payment_intent_id")),
    )
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_payments_merchant_id"), ["merchant_id"], unique=False)

    op.create_table(
        "payouts",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "merchant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("stripe_transfer_id", sa.String(length=64), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("amount_reversed", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("failure_message", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("amount > 0", name=op.f("ck_payouts_amount_positive")),
        sa.CheckConstraint(
            "amount_reversed >= 0 AND amount_reversed <= amount",
            name=op.f("ck_payouts_reversed_range"),
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_payouts_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payouts")),
        sa.UniqueConstraint("stripe_transfer_id", name=op.f("uq_payouts_stripe_transfer_id")),
    )
    with op.batch_alter_table("payouts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_payouts_merchant_id"), ["merchant_id"], unique=False)

    op.create_table(
        "journal_legs",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("entry_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("account", sa.String(length=100), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("debit", sa.BigInteger(), nullable=False),
        sa.Column("credit", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "(debit > 0 AND credit = 0) OR (debit = 0 AND credit > 0)",
            name=op.f("ck_journal_legs_one_side_positive"),
        ),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["journal_entries.id"],
            name=op.f("fk_journal_legs_entry_id_journal_entries"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_journal_legs")),
    )
    with op.batch_alter_table("journal_legs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_journal_legs_account_currency", ["account", "currency"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_journal_legs_entry_id"), ["entry_id"], unique=False)

    op.create_table(
        "refunds",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "payment_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "merchant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("stripe_refund_id", sa.String(length=64), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("failure_reason", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("source IN ('api', 'dashboard')", name=op.f("ck_refunds_source_known")),
        sa.CheckConstraint("amount > 0", name=op.f("ck_refunds_amount_positive")),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_refunds_merchant_id_merchants")
        ),
        sa.ForeignKeyConstraint(
            ["payment_id"], ["payments.id"], name=op.f("fk_refunds_payment_id_payments")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refunds")),
        sa.UniqueConstraint("stripe_refund_id", name=op.f("uq_refunds_stripe_refund_id")),
    )
    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_refunds_merchant_id"), ["merchant_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_refunds_payment_id"), ["payment_id"], unique=False)

    _create_journal_guards()


def downgrade() -> None:
    _drop_journal_guards()
    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_refunds_payment_id"))
        batch_op.drop_index(batch_op.f("ix_refunds_merchant_id"))

    op.drop_table("refunds")
    with op.batch_alter_table("journal_legs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_journal_legs_entry_id"))
        batch_op.drop_index("ix_journal_legs_account_currency")

    op.drop_table("journal_legs")
    with op.batch_alter_table("payouts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payouts_merchant_id"))

    op.drop_table("payouts")
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payments_merchant_id"))

    op.drop_table("payments")
    with op.batch_alter_table("journal_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_journal_entries_merchant_id"))

    op.drop_table("journal_entries")
    with op.batch_alter_table("platform_balance_snapshots", schema=None) as batch_op:
        batch_op.drop_index("ix_platform_balance_snapshots_currency_taken_at")

    op.drop_table("platform_balance_snapshots")
    op.drop_table("merchants")
    op.drop_table("account_balances")
