from __future__ import annotations

import pytest

from reconciler.config import Secret
from reconciler.inbox.signature import SignatureError, compute_signature, verify_signature
from tests.webhook_events import sign

NOW = 1_790_000_000
BODY = b'{"id":"evt_1","object":"event"}'
CURRENT, PREVIOUS = "whsec_current", "whsec_previous"
ROTATION = (Secret(CURRENT), Secret(PREVIOUS))


def verify(header: str | None, body: bytes = BODY, *, now: int = NOW, tolerance: int = 300) -> int:
    return verify_signature(body, header, ROTATION, now=now, tolerance_seconds=tolerance)


def refused(header: str | None, body: bytes = BODY, *, now: int = NOW) -> str:
    with pytest.raises(SignatureError) as caught:
        verify(header, body, now=now)
    return str(caught.value)


@pytest.mark.parametrize("secret", [CURRENT, PREVIOUS])
def test_signature_each_secret_of_a_rotation_is_accepted(secret: str) -> None:
    assert verify(sign(BODY, secret, NOW)) == NOW


def test_signature_our_hmac_agrees_with_stripe_python() -> None:
    assert sign(BODY, CURRENT, NOW) == f"t={NOW},v1={compute_signature(CURRENT, NOW, BODY)}"


def test_signature_wrong_secret_is_refused() -> None:
    assert refused(sign(BODY, "whsec_someone_else", NOW)) == "no signature matches"


def test_signature_tampered_body_is_refused() -> None:
    header = sign(BODY, CURRENT, NOW)
    assert refused(header, BODY.replace(b"evt_1", b"evt_2")) == "no signature matches"


def test_signature_at_the_tolerance_edges() -> None:
    assert verify(sign(BODY, CURRENT, NOW - 300)) == NOW - 300
    assert verify(sign(BODY, CURRENT, NOW + 300)) == NOW + 300


def test_signature_stale_timestamp_is_refused() -> None:
    assert "too old" in refused(sign(BODY, CURRENT, NOW - 301))


def test_signature_far_future_timestamp_is_refused() -> None:
    assert "future" in refused(sign(BODY, CURRENT, NOW + 301))


def test_signature_tolerance_is_configurable() -> None:
    header = sign(BODY, CURRENT, NOW - 1000)
    assert verify(header, tolerance=1200) == NOW - 1000


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "missing Stripe-Signature header"),
        ("", "missing Stripe-Signature header"),
        ("garbage", "malformed signature header"),
        ("t=abc,v1=00", "malformed timestamp in signature header"),
        ("v1=00", "no timestamp in signature header"),
        (f"t={NOW}", "no v1 signature in signature header"),
        (f"t={NOW},v1=zz\u00e9", "no signature matches"),
    ],
)
def test_signature_missing_or_garbled_header_is_refused(header: str | None, reason: str) -> None:
    assert refused(header) == reason


def test_signature_one_good_v1_among_several_passes() -> None:
    good = compute_signature(CURRENT, NOW, BODY)
    header = f"t={NOW},v1={'0' * 64},v1={good},v1=deadbeef"
    assert verify(header) == NOW


def test_signature_v0_alone_is_not_enough() -> None:
    v0 = compute_signature(CURRENT, NOW, BODY)  # even a "correct" one: only v1 counts
    assert refused(f"t={NOW},v0={v0}") == "no v1 signature in signature header"


def test_signature_without_configured_secrets_refuses_everything() -> None:
    header = sign(BODY, CURRENT, NOW)
    with pytest.raises(SignatureError, match="no signing secret"):
        verify_signature(BODY, header, (), now=NOW, tolerance_seconds=300)


def test_signature_reasons_never_carry_the_secret_or_body() -> None:
    for header in (sign(BODY, "whsec_wrong", NOW), sign(BODY, CURRENT, NOW - 999), "x"):
        reason = refused(header)
        assert CURRENT not in reason and "evt_1" not in reason and "v1=" not in reason
