"""Status lifecycles: one per kind, each a rank per status and the moves it allows.

Two callers, two questions:
- a service acting on purpose (`require`): is this move legal? If not, `IllegalTransition`.
- an apply function holding a Stripe snapshot (`decide`): should this snapshot move us? A
  snapshot that ranks below what we hold is stale (delivery order is not guaranteed) and is
  ignored, so a late `processing` can never undo a `succeeded`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from reconciler.errors import IllegalTransition


class Decision(enum.Enum):
    MOVE = "move"
    SAME = "same"
    STALE = "stale"


@dataclass(frozen=True)
class Lifecycle:
    kind: str
    ranks: dict[str, int]
    moves: dict[str, frozenset[str]]

    def check_known(self, status: str) -> None:
        if status not in self.ranks:
            known = ", ".join(self.ranks)
            raise IllegalTransition(f"unknown {self.kind} status {status!r} (known: {known})")

    def decide(self, current: str, target: str) -> Decision:
        """What a snapshot saying `target` means for a row at `current`."""
        self.check_known(current)
        self.check_known(target)
        if current == target:
            return Decision.SAME
        if target in self.moves.get(current, frozenset()):
            return Decision.MOVE
        if self.ranks[target] < self.ranks[current]:
            return Decision.STALE
        raise IllegalTransition(f"{self.kind} cannot move from {current} to {target}")

    def require(self, current: str, target: str) -> None:
        """Refuse anything but a legal forward move."""
        if self.decide(current, target) is not Decision.MOVE:
            raise IllegalTransition(f"{self.kind} cannot move from {current} to {target}")

    def step(self, current: str, target: str, *, from_snapshot: bool) -> Decision:
        """The one rule every status move follows: what moving `current` to `target` means.
        A Stripe snapshot behind us (`from_snapshot`) is STALE and ignored; the service acting
        on purpose may only make a legal forward move (else `IllegalTransition`)."""
        decision = self.decide(current, target)
        if decision is Decision.STALE and not from_snapshot:
            raise IllegalTransition(f"{self.kind} cannot move from {current} to {target}")
        return decision


def _moves(**moves: tuple[str, ...]) -> dict[str, frozenset[str]]:
    return {status: frozenset(targets) for status, targets in moves.items()}


# Capture lifecycle of a payment. `partially_refunded` and `refunded` are not moves of it but
# a reading of amount_refunded on a succeeded payment (see payments.status_after_refunds): a
# refund that fails later gives the amount, and so the status, back.
PAYMENT = Lifecycle(
    "payment",
    ranks={
        "pending": 0,
        "processing": 1,
        "failed": 2,
        "succeeded": 3,
        "canceled": 3,
    },
    moves=_moves(
        pending=("processing", "failed", "succeeded", "canceled"),
        processing=("failed", "succeeded", "canceled"),
        # A declined PaymentIntent may be paid again: it moves on to succeeded (or canceled).
        # A `processing` seen after a decline ranks below it and is ignored: a retry in flight
        # shows as failed until it ends, which beats a stale snapshot undoing a decline.
        failed=("succeeded", "canceled"),
    ),
)

REFUND = Lifecycle(
    "refund",
    ranks={
        "pending": 0,
        "requires_action": 0,
        "succeeded": 1,
        "failed": 2,
        "canceled": 2,
    },
    moves=_moves(
        pending=("requires_action", "succeeded", "failed", "canceled"),
        requires_action=("pending", "succeeded", "failed", "canceled"),
        # Stripe can fail a refund after reporting it succeeded (e.g. the card was closed),
        # and a card refund can be canceled from the Dashboard for a short while after.
        succeeded=("failed", "canceled"),
    ),
)

PAYOUT = Lifecycle(
    "payout",
    ranks={
        "pending": 0,
        "processing": 1,
        "completed": 2,
        "failed": 2,
        "cancelled": 2,
        "amount_reversed": 3,
        "reversed": 4,
    },
    moves=_moves(
        pending=("processing", "failed", "cancelled"),
        processing=("completed", "failed"),
        completed=("amount_reversed", "reversed"),
        amount_reversed=("reversed",),
    ),
)

# Statuses after which a row no longer holds the merchant's money.
REFUND_RELEASED = frozenset({"failed", "canceled"})
PAYOUT_RELEASED = frozenset({"failed", "cancelled"})
PAYMENT_CAPTURED = frozenset({"succeeded", "partially_refunded", "refunded"})
