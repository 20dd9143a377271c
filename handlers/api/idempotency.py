"""`Idempotency-Key`: required on every request that moves money, scoped to the caller."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable

from handlers.api.endpoints import Call
from handlers.api.errors import ApiError
from reconciler.ledger.requests import RequestKey

MAX_KEY = 255
logger = logging.getLogger("reconciler.api")


def idempotency_key(call: Call, digest_of: str, *, merchant_id: int) -> RequestKey:
    """The caller's `Idempotency-Key`, required on requests that move money. Keys belong to
    the merchant whose money it is (not the token: a client that rotates its token, or fails
    over to another, and retries must still get the first answer)."""
    return _key(call, digest_of, scope=f"merchant:{merchant_id}")


def optional_token_key(call: Call, digest_of: str) -> RequestKey | None:
    """The caller's `Idempotency-Key` on a staff route that moves no merchant's money (a
    reconcile run): welcome, not required, and scoped to the token, so two operators who
    both pick "nightly" do not get each other's run."""
    if call.request.headers.get("idempotency-key") is None:
        return None
    return _key(call, digest_of, scope=f"token:{call.principal.token_id}")


def _key(call: Call, digest_of: str, *, scope: str) -> RequestKey:
    key = call.request.headers.get("idempotency-key", "").strip()
    if not key or len(key) > MAX_KEY:
        raise ApiError(
            "invalid_request",
            f"send an Idempotency-Key header of 1 to {MAX_KEY} characters (one per request; "
            "the same one to retry it)",
            param="Idempotency-Key",
        )
    digest = hashlib.sha256(digest_of.encode()).hexdigest()
    return RequestKey(scope=scope, key=key, digest=digest)


def optional_idempotency_key(call: Call, digest_of: str, *, merchant_id: int) -> RequestKey | None:
    """The caller's `Idempotency-Key` where one is welcome but not required."""
    if call.request.headers.get("idempotency-key") is None:
        return None
    return idempotency_key(call, digest_of, merchant_id=merchant_id)


async def execute_accepted(execute: Callable[[int], Awaitable[None]], row_id: int) -> None:
    """Carry out what was just accepted. It is durable already: if carrying it out fails
    here (the database for a moment, say), the answer is its state, and the executor
    finishes it, rather than an error that would make the caller think it was refused."""
    try:
        await execute(row_id)
    except Exception:
        logger.exception(
            "executing %s %d after accepting it failed: left to the executor",
            getattr(execute, "__name__", "work"),
            row_id,
        )
