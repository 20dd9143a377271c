"""The retry policy."""

from __future__ import annotations

from dataclasses import replace

from tests.reconciler.inbox.rows import POLICY


def test_backoff_is_capped() -> None:
    policy = replace(POLICY, backoff_base_seconds=10, backoff_cap_seconds=3600)
    assert [policy.backoff(n).total_seconds() for n in (1, 2, 3, 9, 500)] == [
        10,
        20,
        40,
        2560,
        3600,
    ]
