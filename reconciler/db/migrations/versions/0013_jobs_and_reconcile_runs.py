"""Scheduled jobs (leases, run history), the events catch-up cursors, and reconcile runs;
discrepancies remember which runs saw them and how they ended.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "job_leases",
        sa.Column("job", sa.String(64), nullable=False),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("job", name=op.f("pk_job_leases")),
    )
    op.create_table(
        "job_runs",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("job", sa.String(64), nullable=False),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("duration_ms", sa.Integer()),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text()),
        sa.CheckConstraint(
            "outcome IN ('running', 'succeeded', 'failed')", name=op.f("ck_job_runs_outcome_known")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_runs")),
    )
    op.create_index("ix_job_runs_job_started_at", "job_runs", ["job", "started_at"])
    op.create_table(
        "event_cursors",
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.String(255)),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source", name=op.f("pk_event_cursors")),
    )
    op.create_table(
        "reconcile_runs",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("scope", sa.JSON(), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("started_by", sa.String(100), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("examined", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("healed", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("found", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("resume_from", sa.JSON()),
        sa.Column("error", sa.Text()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("duration_ms", sa.Integer()),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed', 'interrupted')",
            name=op.f("ck_reconcile_runs_status_known"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconcile_runs")),
    )
    op.create_index("ix_reconcile_runs_status", "reconcile_runs", ["status"])
    with op.batch_alter_table("discrepancies") as batch_op:
        batch_op.add_column(sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("first_run_id", Id, nullable=True))
        batch_op.add_column(sa.Column("last_run_id", Id, nullable=True))
        batch_op.add_column(sa.Column("resolved_how", sa.String(16), nullable=True))
        batch_op.add_column(sa.Column("resolved_run_id", Id, nullable=True))
        batch_op.create_check_constraint(
            "resolved_how_known",
            "resolved_how IS NULL OR resolved_how IN ('healed', 'operator', 'cleared', 'ended')",
        )
        batch_op.create_index("ix_discrepancies_status_kind", ["status", "kind"])
    op.execute("UPDATE discrepancies SET last_seen_at = updated_at")
    op.execute("UPDATE discrepancies SET resolved_how = 'ended' WHERE status <> 'open'")


def downgrade() -> None:
    with op.batch_alter_table("discrepancies") as batch_op:
        batch_op.drop_index("ix_discrepancies_status_kind")
        batch_op.drop_constraint(op.f("ck_discrepancies_resolved_how_known"), type_="check")
        batch_op.drop_column("resolved_run_id")
        batch_op.drop_column("resolved_how")
        batch_op.drop_column("last_run_id")
        batch_op.drop_column("first_run_id")
        batch_op.drop_column("last_seen_at")
    op.drop_index("ix_reconcile_runs_status", table_name="reconcile_runs")
    op.drop_table("reconcile_runs")
    op.drop_table("event_cursors")
    op.drop_index("ix_job_runs_job_started_at", table_name="job_runs")
    op.drop_table("job_runs")
    op.drop_table("job_leases")
