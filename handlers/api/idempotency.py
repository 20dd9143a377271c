"""`Idempotency-Key`: required on every request that moves money, scoped to the caller."""

from __future__ import annotations

import hashlib

from handlers.api.endpoints import Call
from handlers.api.errors import ApiError
from reconciler.ledger.requests import RequestKey

MAX_KEY = 255


def idempotency_key(call: Call, digest_of: str) -> RequestKey:
    """The caller's `Idempotency-Key`, required on requests that move money."""
    key = call.request.headers.get("idempotency-key", "").strip()
    if not key or len(key) > MAX_KEY:
        raise ApiError(
            "invalid_request",
            f"send an Idempotency-Key header of 1 to {MAX_KEY} characters (one per request; "
            "the same one to retry it)",
            param="Idempotency-Key",
        )
    digest = hashlib.sha256(digest_of.encode()).hexdigest()
    return RequestKey(scope=f"token:{call.principal.token_id}", key=key, digest=digest)


def optional_idempotency_key(call: Call, digest_of: str) -> RequestKey | None:
    """The caller's `Idempotency-Key` where one is welcome but not required."""
    if call.request.headers.get("idempotency-key") is None:
        return None
    return idempotency_key(call, digest_of)
