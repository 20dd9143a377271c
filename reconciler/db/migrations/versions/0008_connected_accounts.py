"""Every Stripe account ever linked to a merchant, and the account each payout is for.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "connected_accounts",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("merchant_id", Id, nullable=False),
        sa.Column("stripe_account_id", sa.String(64), nullable=False),
        sa.Column("country", sa.String(2), nullable=True),
        sa.Column("linked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("unlinked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
            name=op.f("fk_connected_accounts_merchant_id_merchants"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_connected_accounts")),
        sa.UniqueConstraint(
            "stripe_account_id", name=op.f("uq_connected_accounts_stripe_account_id")
        ),
    )
    op.create_index(
        op.f("ix_connected_accounts_merchant_id"), "connected_accounts", ["merchant_id"]
    )
    # The accounts linked so far are the first of their history.
    op.execute(
        "INSERT INTO connected_accounts (merchant_id, stripe_account_id, linked_at) "
        "SELECT id, stripe_account_id, created_at FROM merchants "
        "WHERE stripe_account_id IS NOT NULL"
    )
    with op.batch_alter_table("payouts") as batch_op:
        batch_op.add_column(sa.Column("destination", sa.String(64), nullable=True))
    op.execute(
        "UPDATE payouts SET destination = (SELECT stripe_account_id FROM merchants "
        "WHERE merchants.id = payouts.merchant_id)"
    )


def downgrade() -> None:
    with op.batch_alter_table("payouts") as batch_op:
        batch_op.drop_column("destination")
    op.drop_index(op.f("ix_connected_accounts_merchant_id"), table_name="connected_accounts")
    op.drop_table("connected_accounts")
