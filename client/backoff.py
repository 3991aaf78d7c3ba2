"""Exponential backoff with optional jitter, for reconnecting to the server and reopening sources."""

from __future__ import annotations

import random


class Backoff:
    def __init__(
        self,
        initial: float,
        maximum: float,
        factor: float = 2.0,
        jitter: float = 0.1,
        rng: random.Random | None = None,
    ) -> None:
        if initial <= 0 or maximum < initial or factor < 1:
            raise ValueError("backoff needs 0 < initial <= maximum and factor >= 1")
        self.initial = initial
        self.maximum = maximum
        self.factor = factor
        self.jitter = jitter
        self._rng = rng or random.Random()
        self._current = initial
        self.attempts = 0

    def next_delay(self) -> float:
        """The delay before the next attempt; each call grows the following one up to the maximum."""
        delay = self._current
        self._current = min(self._current * self.factor, self.maximum)
        self.attempts += 1
        if self.jitter:
            delay *= 1.0 + self._rng.uniform(-self.jitter, self.jitter)
        return min(delay, self.maximum)

    def reset(self) -> None:
        self._current = self.initial
        self.attempts = 0
