"""The few statements whose spelling differs between SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect


class Connected(Protocol):
    """A connection, or anything running statements on one (a ledger session)."""

    @property
    def dialect(self) -> Dialect: ...


def insert_for(conn: Connected, table: Table) -> Any:
    """An INSERT that understands ON CONFLICT on the connection's database."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)
