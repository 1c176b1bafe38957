"""The one retry policy of the node's durable queues (SPEC §11.6, §11.9).

A few lines, not a library: the retry libraries (tenacity, backoff) wrap a call and
sleep in it, while here a failed attempt only writes its next due time into a durable
row, and the pollers pick it up when due, after a restart too.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Backoff"]

#: Doubling stops after this many failures (the cap binds long before).
_MAX_DOUBLINGS = 16


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff: ``base * 2**attempts`` seconds, at most ``maximum``."""

    base_seconds: float
    max_seconds: float

    def delay(self, attempts: int) -> float:
        """Seconds to wait before the next attempt, after ``attempts`` failed ones."""
        return min(self.max_seconds, self.base_seconds * float(2 ** min(attempts, _MAX_DOUBLINGS)))
