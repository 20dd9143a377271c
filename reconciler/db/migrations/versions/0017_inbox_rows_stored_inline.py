"""PostgreSQL keeps an inbox row whole, uncompressed, up to a page: a Stripe event is about
2 KB, just over the 2 KB at which PostgreSQL starts compressing a row (pglz), which cost a
third of the database's time per stored webhook. The rows are read once or twice and dropped
after the retention window, so the disk saved was not worth the CPU. SQLite: nothing to do.

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

# The most PostgreSQL allows: a row is compressed (or moved out of line) only past this.
WHOLE_PAGE = 8160


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE inbox_events SET (toast_tuple_target = {WHOLE_PAGE})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE inbox_events RESET (toast_tuple_target)")
