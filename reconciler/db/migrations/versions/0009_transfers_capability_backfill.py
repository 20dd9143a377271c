"""Merchants enabled before capabilities were kept can still be paid.

Migration 0005 started keeping each capability's status, and payouts now need `transfers`
active; merchants it found enabled (charges and payouts on: their account could take
transfers) got no capabilities at all, so none of them could be paid until an
`account.updated` arrived. They are given `transfers: active`, which the next account
snapshot confirms or corrects.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

merchants = sa.table(
    "merchants",
    sa.column("id", sa.BigInteger()),
    sa.column("connect_status", sa.String()),
    sa.column("payouts_enabled", sa.Boolean()),
    sa.column("capabilities", sa.JSON()),
)


def upgrade() -> None:
    connection = op.get_bind()
    enabled = connection.execute(
        sa.select(merchants.c.id, merchants.c.capabilities).where(
            merchants.c.connect_status == "enabled", merchants.c.payouts_enabled.is_(True)
        )
    )
    for merchant_id, capabilities in enabled.all():
        if not capabilities:
            connection.execute(
                merchants.update()
                .where(merchants.c.id == merchant_id)
                .values(capabilities={"transfers": "active"})
            )


def downgrade() -> None:
    """Nothing to undo: the capability is what Stripe would have said."""
