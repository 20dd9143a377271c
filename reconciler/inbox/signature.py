"""Verifying Stripe's `Stripe-Signature` header, with our own HMAC code.

The header is `t=<unix>,v1=<hex>[,v1=<hex>...]`; each `v1` is the hex HMAC-SHA256 of
`"{t}.{raw body}"` under one endpoint secret. Any one `v1` matching any one of the endpoint's
secrets passes (several secrets are valid during a rotation; Stripe sends one `v1` per secret).
`v0` and unknown schemes are ignored: only `v1` counts.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from reconciler.config import Secret

SIGNATURE_HEADER = "Stripe-Signature"


class SignatureError(ValueError):
    """The delivery is not provably Stripe's. The message is a short reason, safe to log and
    return: it never contains a secret, a signature or the body."""


def compute_signature(secret: str, timestamp: int, body: bytes) -> str:
    """The hex `v1` signature of `body` sent at `timestamp` under `secret`."""
    signed = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def _parse(header: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    signatures: list[str] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            raise SignatureError("malformed signature header")
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise SignatureError("malformed timestamp in signature header") from None
        elif key == "v1":
            signatures.append(value)
    if timestamp is None:
        raise SignatureError("no timestamp in signature header")
    if not signatures:
        raise SignatureError("no v1 signature in signature header")
    return timestamp, signatures


def verify_signature(
    body: bytes,
    header: str | None,
    secrets: Iterable[Secret],
    *,
    now: float,
    tolerance_seconds: int,
) -> int:
    """Check `header` against `body` and each of `secrets`; return the signed timestamp.

    The timestamp must lie within `tolerance_seconds` of `now` on *both* sides. stripe-python
    only refuses old timestamps; we also refuse ones too far in the future, since a signature
    dated ahead would stay replayable for longer than the tolerance promises.

    Raises `SignatureError` with a short reason when the header is missing or malformed, the
    timestamp is out of tolerance, or no `v1` matches any secret.
    """
    if not header:
        raise SignatureError("missing Stripe-Signature header")
    timestamp, candidates = _parse(header)
    if timestamp < now - tolerance_seconds:
        raise SignatureError("timestamp outside the tolerance (too old)")
    if timestamp > now + tolerance_seconds:
        raise SignatureError("timestamp outside the tolerance (in the future)")
    secret_list = list(secrets)
    if not secret_list:
        raise SignatureError("no signing secret configured for this endpoint")
    matched = False
    for secret in secret_list:
        expected = compute_signature(secret.reveal(), timestamp, body)
        for candidate in candidates:
            # Check every pair without returning early: the time taken says nothing useful.
            matched |= hmac.compare_digest(expected.encode(), candidate.encode(errors="replace"))
    if not matched:
        raise SignatureError("no signature matches")
    return timestamp
