"""API tokens: who is calling, and on whose behalf.

A token is 32 random bytes, shown once as `icpay_<base64url>`; only its SHA-256 is stored, so
a leaked database or log holds nothing that opens the API. A merchant token acts for one
merchant; operators act on every merchant; admins also manage tokens.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update

from reconciler.db.tables import api_tokens, merchants
from reconciler.errors import NotFound, ReconcilerError
from reconciler.types import Queryable

ROLES = ("admin", "operator", "merchant")
PREFIX = "icpay_"
_DISPLAY = len(PREFIX) + 6


class InvalidToken(ReconcilerError):
    """A token command that cannot be carried out as asked (a bad role or account)."""

    code = "invalid_request"


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller a valid token stands for."""

    token_id: int
    name: str
    role: str
    merchant_id: int | None

    @property
    def is_staff(self) -> bool:
        return self.role in ("admin", "operator")

    @property
    def label(self) -> str:
        """How records name this caller (who started a run, who resolved a discrepancy)."""
        return f"{self.role}:{self.name}"[:100]

    def may_see(self, merchant_id: int) -> bool:
        """Whether this caller may read or act on the merchant's account."""
        return self.is_staff or self.merchant_id == merchant_id


@dataclass(frozen=True, slots=True)
class TokenRecord:
    id: int
    name: str
    role: str
    merchant_id: int | None
    display: str
    created_at: datetime
    revoked_at: datetime | None


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create_token(
    conn: Queryable, *, role: str, now: datetime, merchant_id: int | None = None, name: str = ""
) -> tuple[TokenRecord, str]:
    """Store a new token and return it with its one and only plain-text copy."""
    if role not in ROLES:
        raise InvalidToken(f"role must be one of {', '.join(ROLES)}")
    if (role == "merchant") != (merchant_id is not None):
        raise InvalidToken("a merchant token needs --account, and only a merchant token takes one")
    if merchant_id is not None:
        known = await conn.execute(select(merchants.c.id).where(merchants.c.id == merchant_id))
        if known.first() is None:
            raise InvalidToken(f"no merchant account {merchant_id}")
    token = PREFIX + secrets.token_urlsafe(32)
    name = name.strip() or (f"merchant {merchant_id}" if merchant_id is not None else role)
    if len(name) > 100:
        raise InvalidToken("a token's name is at most 100 characters")
    display = token[:_DISPLAY] + "…"
    result = await conn.execute(
        api_tokens.insert()
        .values(
            name=name,
            role=role,
            merchant_id=merchant_id,
            token_hash=token_hash(token),
            display=display,
            created_at=now,
        )
        .returning(api_tokens.c.id)
    )
    record = TokenRecord(int(result.scalar_one()), name, role, merchant_id, display, now, None)
    return record, token


async def authenticate(conn: Queryable, token: str) -> Principal | None:
    """The caller `token` stands for; None for an unknown or revoked token."""
    if not token.startswith(PREFIX) or len(token) > 100:
        return None
    row = (
        await conn.execute(
            select(api_tokens.c.id, api_tokens.c.name, api_tokens.c.role, api_tokens.c.merchant_id)
            .where(api_tokens.c.token_hash == token_hash(token))
            .where(api_tokens.c.revoked_at.is_(None))
        )
    ).first()
    if row is None:
        return None
    return Principal(token_id=row.id, name=row.name, role=row.role, merchant_id=row.merchant_id)


_RECORD_COLUMNS = [api_tokens.c[name] for name in TokenRecord.__slots__]


async def list_tokens(conn: Queryable) -> list[TokenRecord]:
    query = select(*_RECORD_COLUMNS).order_by(api_tokens.c.id)
    return [TokenRecord(*row) for row in await conn.execute(query)]


async def revoke_token(conn: Queryable, token_id: int, *, now: datetime) -> TokenRecord:
    """Revoke a token (at once: the next request with it is refused). Revoking twice keeps
    the first time."""
    await conn.execute(
        update(api_tokens)
        .where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    row = (await conn.execute(select(*_RECORD_COLUMNS).where(api_tokens.c.id == token_id))).first()
    if row is None:
        raise NotFound(f"no token {token_id}")
    return TokenRecord(*row)
