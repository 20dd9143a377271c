"""Stripe-looking ids, deterministic when the sandbox is given a seed."""

from __future__ import annotations

import random
import string

_ALPHABET = string.ascii_letters + string.digits


class IdGenerator:
    """Makes ids like `pi_3QmZ...` from one seeded random stream."""

    def __init__(self, seed: int | None = None) -> None:
        self._random = random.Random(seed)

    def token(self, length: int = 24) -> str:
        return "".join(self._random.choice(_ALPHABET) for _ in range(length))

    def new(self, prefix: str, length: int = 24) -> str:
        return f"{prefix}_{self.token(length)}"

    def random(self) -> float:
        return self._random.random()

    def randint(self, low: int, high: int) -> int:
        return self._random.randint(low, high)
