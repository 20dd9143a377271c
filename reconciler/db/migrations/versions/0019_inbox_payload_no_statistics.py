"""PostgreSQL keeps no statistics on an inbox event's payload. No query filters or sorts by
it, yet each ANALYZE of `inbox_events` (autovacuum runs one every so many thousand webhooks)
read and decompressed the payloads of its 30,000-row sample to build them: under a steady
load of webhooks that was the work behind the slowest acknowledgements (p99 at half the peak
rate, PostgreSQL on the service's core: 107 ms with it, 24 ms without, in one harness run).
The other columns keep theirs; nothing changes on SQLite.

Revision ID: 0019
Revises: 0018
"""

from __future__ import annotations

from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE inbox_events ALTER COLUMN payload SET STATISTICS 0")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # -1: back to the server's default_statistics_target.
        op.execute("ALTER TABLE inbox_events ALTER COLUMN payload SET STATISTICS -1")
