"""PostgreSQL compresses an inbox event's payload with lz4, not pglz: a Stripe event of about
2.1 KB is just over the 2 KB at which PostgreSQL compresses a row, and pglz cost a third of
the database's time per stored webhook. lz4 takes about half the backend's CPU per row of
pglz and stores nearly as small (storing it uncompressed was as cheap in CPU and twice the
disk). Only payloads stored from now on use it. Needs PostgreSQL 14 or newer built with lz4
(Debian's and the official images are); elsewhere, and on SQLite, nothing changes.

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

LZ4_BUILT_IN = sa.text(
    "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'"
)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql" and bind.execute(LZ4_BUILT_IN).scalar():
        op.execute("ALTER TABLE inbox_events ALTER COLUMN payload SET COMPRESSION lz4")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql" and bind.execute(LZ4_BUILT_IN).scalar():
        op.execute("ALTER TABLE inbox_events ALTER COLUMN payload SET COMPRESSION pglz")
