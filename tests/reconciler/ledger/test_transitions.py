from __future__ import annotations

import pytest

from reconciler.errors import IllegalTransition
from reconciler.ledger.transitions import PAYMENT, PAYOUT, REFUND, Decision, Lifecycle


@pytest.mark.parametrize("lifecycle", [PAYMENT, REFUND, PAYOUT])
def test_every_move_goes_forward_or_sideways_never_back(lifecycle: Lifecycle) -> None:
    for current, targets in lifecycle.moves.items():
        for target in targets:
            assert lifecycle.ranks[target] >= lifecycle.ranks[current], (current, target)


@pytest.mark.parametrize(
    ("lifecycle", "current", "target", "decision"),
    [
        (PAYOUT, "pending", "processing", Decision.MOVE),
        (PAYOUT, "completed", "processing", Decision.STALE),
        (PAYOUT, "completed", "completed", Decision.SAME),
        (REFUND, "succeeded", "failed", Decision.MOVE),
        (REFUND, "succeeded", "canceled", Decision.MOVE),  # canceled in the Dashboard
        (REFUND, "succeeded", "pending", Decision.STALE),
        (PAYMENT, "failed", "succeeded", Decision.MOVE),
        (PAYMENT, "succeeded", "processing", Decision.STALE),
        # A processing snapshot after a decline is older news, not a retry we can confirm.
        (PAYMENT, "failed", "processing", Decision.STALE),
    ],
)
def test_decisions(lifecycle: Lifecycle, current: str, target: str, decision: Decision) -> None:
    assert lifecycle.decide(current, target) is decision


@pytest.mark.parametrize(
    ("lifecycle", "current", "target"),
    [
        (PAYOUT, "failed", "completed"),
        (PAYOUT, "cancelled", "processing"),
        (REFUND, "canceled", "succeeded"),
        (PAYMENT, "canceled", "succeeded"),
        (PAYOUT, "completed", "pending"),
    ],
)
def test_terminal_states_refuse_to_move(lifecycle: Lifecycle, current: str, target: str) -> None:
    with pytest.raises(IllegalTransition, match=f"cannot move from {current} to {target}"):
        lifecycle.require(current, target)
