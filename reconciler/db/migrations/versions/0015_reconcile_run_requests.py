"""Reconcile runs remember the API request that queued them (caller, Idempotency-Key,
digest), so a retried POST does not queue a second run.

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("reconcile_runs") as batch_op:
        batch_op.add_column(sa.Column("request_scope", sa.String(64), nullable=True))
        batch_op.add_column(sa.Column("request_key", sa.String(255), nullable=True))
        batch_op.add_column(sa.Column("request_digest", sa.String(64), nullable=True))
        batch_op.create_index(
            "uq_reconcile_runs_request", ["request_scope", "request_key"], unique=True
        )


def downgrade() -> None:
    with op.batch_alter_table("reconcile_runs") as batch_op:
        batch_op.drop_index("uq_reconcile_runs_request")
        batch_op.drop_column("request_digest")
        batch_op.drop_column("request_key")
        batch_op.drop_column("request_scope")
