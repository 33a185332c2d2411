"""Exponential backoff: the one delay schedule every reconnecting part uses.

The capture thread reopening a camera, the serial sink and ``edge-listen`` reopening a port,
and the MQTT sink reconnecting to its broker all wait ``initial_s``, then twice that after
each further failure, at most ``max_s``, and start over after a success.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass


@dataclass
class Backoff:
    """Exponential backoff delays: ``initial_s``, multiplied by ``factor`` per failure, capped.

    Attributes:
        initial_s: the first delay.
        max_s: the longest delay.
        factor: growth per failure.
        failures: failures since the last :meth:`reset`.
    """

    initial_s: float = 0.1
    max_s: float = 5.0
    factor: float = 2.0
    failures: int = 0

    def next_delay(self) -> float:
        """The delay before the next attempt; counts one more failure."""
        delay = min(self.initial_s * self.factor ** self.failures, self.max_s)
        self.failures += 1
        return delay

    def reset(self) -> None:
        """An attempt worked: the next failure waits ``initial_s`` again."""
        self.failures = 0

    def delays(self) -> Iterator[float]:
        """An endless schedule from ``initial_s`` on (resets first)."""
        self.reset()
        while True:
            yield self.next_delay()
