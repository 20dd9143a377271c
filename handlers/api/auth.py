"""`Authorization: Bearer <token>`: the caller of every API route."""

from __future__ import annotations

from starlette.requests import Request

from handlers.api.errors import ApiError
from reconciler.db.engine import Database
from reconciler.tokens import Principal, authenticate


async def authenticate_request(request: Request, database: Database) -> Principal:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError("unauthenticated", "send Authorization: Bearer <token>")
    async with database.read() as conn:
        principal = await authenticate(conn, token.strip())
    if principal is None:
        raise ApiError("unauthenticated", "the token is not valid (unknown or revoked)")
    return principal
