"""Which database this is, spelled one way, and the few statements whose spelling differs
between SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect


class Connected(Protocol):
    """A database, a connection, or anything running statements on one (a ledger session)."""

    @property
    def dialect(self) -> Dialect: ...


def is_postgres(target: Connected | Dialect) -> bool:
    """PostgreSQL (row locks, SKIP LOCKED, sequences), as opposed to SQLite (one writer at a
    time under BEGIN IMMEDIATE). The service runs on these two only (config refuses others)."""
    dialect = target if isinstance(target, Dialect) else target.dialect
    return dialect.name == "postgresql"


def insert_for(conn: Connected, table: Table) -> Any:
    """An INSERT that understands ON CONFLICT on the connection's database."""
    if is_postgres(conn):
        return postgresql.insert(table)
    return sqlite.insert(table)
