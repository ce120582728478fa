"""Exponential backoff with full jitter and a cap, for reconnects and redelivery."""

from __future__ import annotations

import random


class Backoff:
    """Delays of ``initial * 2**n``, capped, each drawn uniformly in [d/2, d].

    Jitter spreads a fleet's reconnects after a shared outage (a broker restart)
    instead of having every gateway knock at the same second.
    """

    def __init__(self, initial: float = 1.0, cap: float = 60.0) -> None:
        self.initial = initial
        self.cap = cap
        self.attempts = 0

    def next_delay(self) -> float:
        """The delay before the next attempt; each call counts one failure."""
        ceiling = min(self.cap, self.initial * 2 ** min(self.attempts, 30))
        self.attempts += 1
        return random.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        """After a success: start again from ``initial``."""
        self.attempts = 0
