"""The wall clock, read only at the edges of the node and passed inward as ``now``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

__all__ = ["Clock", "utcnow"]

#: What the runtime reads the time from; tests may pass their own.
Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """The current time in UTC, timezone-aware."""
    return datetime.now(UTC)
