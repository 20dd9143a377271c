"""API tokens: shown once, stored only as a hash, refused once revoked."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import select

from reconciler.db.engine import Database
from reconciler.db.tables import api_tokens
from reconciler.errors import NotFound
from reconciler.ledger.merchants import create_merchant
from reconciler.ledger.session import ledger_session
from reconciler.tokens import (
    PREFIX,
    InvalidToken,
    Principal,
    authenticate,
    create_token,
    list_tokens,
    revoke_token,
    token_hash,
)


async def test_a_token_opens_as_its_role_and_is_stored_only_hashed(
    db: Database, now: datetime
) -> None:
    async with ledger_session(db) as conn:
        merchant_id = await create_merchant(conn, name="Acme", now=now)
    async with db.write() as conn:
        record, token = await create_token(conn, role="merchant", merchant_id=merchant_id, now=now)
    assert token.startswith(PREFIX) and len(token) > 40
    async with db.read() as conn:
        stored = [tuple(row) for row in await conn.execute(select(api_tokens))]
        principal = await authenticate(conn, token)
        assert await authenticate(conn, token + "x") is None
        assert await authenticate(conn, "Bearer " + token) is None
    assert all(token not in str(value) for value in stored[0])
    assert token_hash(token) in stored[0]
    assert principal == Principal(record.id, f"merchant {merchant_id}", "merchant", merchant_id)
    assert principal.may_see(merchant_id) and not principal.may_see(merchant_id + 1)


async def test_a_revoked_token_is_refused_at_once(db: Database, now: datetime) -> None:
    async with db.write() as conn:
        record, token = await create_token(conn, role="operator", name="ops", now=now)
        first = await revoke_token(conn, record.id, now=now)
        again = await revoke_token(conn, record.id, now=now.replace(year=now.year + 1))
    assert first.revoked_at == again.revoked_at == now
    async with db.read() as conn:
        assert await authenticate(conn, token) is None
        [listed] = await list_tokens(conn)
    assert (listed.name, listed.role, listed.revoked_at) == ("ops", "operator", now)
    assert listed.display.startswith(token[:8]) and token not in listed.display


@pytest.mark.parametrize(
    ("role", "account", "message"),
    [
        ("merchant", None, "needs --account"),
        ("operator", 1, "only a merchant token"),
        ("merchant", 999, "no merchant account 999"),
        ("root", None, "role must be one of"),
    ],
)
async def test_tokens_that_cannot_be_made_are_refused_clearly(
    db: Database, now: datetime, role: str, account: int | None, message: str
) -> None:
    async with db.write() as conn:
        with pytest.raises(InvalidToken, match=message):
            await create_token(conn, role=role, merchant_id=account, now=now)
        assert await list_tokens(conn) == []


async def test_revoking_an_unknown_token_is_not_found(db: Database, now: datetime) -> None:
    async with db.write() as conn:
        with pytest.raises(NotFound):
            await revoke_token(conn, 42, now=now)
