"""Merchants keep each Connect capability and every requirement Stripe reports.

A transfer needs the destination's `transfers` capability active, and operators need to see
exactly what Stripe still asks for, so the account's state is kept whole: `capabilities`
(name -> active | inactive | pending) and `requirements` (currently_due, eventually_due,
past_due, pending_verification, disabled_reason, current_deadline), which takes over from
`requirements_due` (its `currently_due`).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_merchants = sa.table(
    "merchants",
    sa.column("id", sa.BigInteger()),
    sa.column("requirements_due", sa.JSON()),
    sa.column("requirements", sa.JSON()),
)


def upgrade() -> None:
    with op.batch_alter_table("merchants") as batch_op:
        batch_op.add_column(
            sa.Column("capabilities", sa.JSON(), nullable=False, server_default=sa.text("'{}'"))
        )
        batch_op.add_column(
            sa.Column("requirements", sa.JSON(), nullable=False, server_default=sa.text("'{}'"))
        )
    bind = op.get_bind()
    for row_id, due in bind.execute(sa.select(_merchants.c.id, _merchants.c.requirements_due)):
        due = json.loads(due) if isinstance(due, str) else due
        bind.execute(
            _merchants.update()
            .where(_merchants.c.id == row_id)
            .values(requirements={"currently_due": list(due or [])})
        )
    with op.batch_alter_table("merchants") as batch_op:
        batch_op.drop_column("requirements_due")
        batch_op.alter_column("capabilities", server_default=None)
        batch_op.alter_column("requirements", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("merchants") as batch_op:
        batch_op.add_column(
            sa.Column("requirements_due", sa.JSON(), nullable=False, server_default=sa.text("'[]'"))
        )
    bind = op.get_bind()
    rows = bind.execute(sa.select(_merchants.c.id, _merchants.c.requirements)).all()
    for row_id, requirements in rows:
        requirements = json.loads(requirements) if isinstance(requirements, str) else requirements
        bind.execute(
            _merchants.update()
            .where(_merchants.c.id == row_id)
            .values(requirements_due=list((requirements or {}).get("currently_due") or []))
        )
    with op.batch_alter_table("merchants") as batch_op:
        batch_op.drop_column("capabilities")
        batch_op.drop_column("requirements")
        batch_op.alter_column("requirements_due", server_default=None)
