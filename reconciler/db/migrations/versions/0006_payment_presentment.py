"""Payments remember what the customer paid when Stripe converted it.

A charge in a currency the ledger does not hold (EUR, say) settles into the platform's USD
balance: the payment is booked at the settlement amount, and keeps the amount and currency
the customer was charged, so later snapshots of the charge are compared with what they say.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("payments") as batch_op:
        batch_op.add_column(sa.Column("presentment_amount", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("presentment_currency", sa.String(3), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("payments") as batch_op:
        batch_op.drop_column("presentment_currency")
        batch_op.drop_column("presentment_amount")
