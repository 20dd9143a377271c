"""What each reconcile run has seen at Stripe: a scratch list of ids per run, so the ledger
rows Stripe never showed are found by a query rather than by a set held in memory.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "reconcile_seen",
        sa.Column("run_id", Id, nullable=False),
        sa.Column("object_id", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "object_id", name=op.f("pk_reconcile_seen")),
    )


def downgrade() -> None:
    op.drop_table("reconcile_seen")
