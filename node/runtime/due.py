"""Polling a durable queue for work that is due: the outbox and the control outbox (SPEC §11.6, §11.9).

Both queues are rows with a state and a next-attempt time. A poller reads the due ones
at start, whenever it is woken (new work committed, a backoff elapsed) and at least
every second, skipping the ones already being worked on, and hands each to its owner.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from node.config import DeliverySettings
from node.runtime.backoff import Backoff
from node.runtime.channels import Channels
from node.runtime.clock import Clock
from node.runtime.commit import GroupCommit
from node.runtime.tasks import Background

__all__ = ["DuePoller", "PumpContext"]

D = TypeVar("D")

#: The longest a poller sleeps without being woken.
_IDLE_SECONDS = 1.0


class DuePoller(Generic[D]):
    """Reads due work with ``fetch(exclude)`` and gives each item to ``start``.

    The owner claims an item's key while it works on it (``claim``) and releases it
    when the outcome is durable (``release``); claimed keys are excluded from the next
    fetch, so nothing is sent twice at once.
    """

    def __init__(
        self,
        fetch: Callable[[frozenset[str]], Awaitable[Sequence[D]]],
        start: Callable[[D], None],
        *,
        limit: int,
    ) -> None:
        self._fetch = fetch
        self._start = start
        self._limit = limit
        self._claimed: set[str] = set()
        self._wakeup = asyncio.Event()

    def claim(self, key: str) -> bool:
        """Mark ``key`` as being worked on; False if it already was."""
        if key in self._claimed:
            return False
        self._claimed.add(key)
        return True

    def release(self, key: str) -> None:
        """``key``'s outcome is durable: it may be fetched again when due."""
        self._claimed.discard(key)

    def wake(self) -> None:
        """Look for due work now."""
        self._wakeup.set()

    async def wake_after(self, seconds: float) -> None:
        """Look again once a backoff has elapsed (run it as a background task)."""
        await asyncio.sleep(seconds)
        self.wake()

    async def run(self) -> None:
        """Poll until cancelled."""
        while True:
            self._wakeup.clear()
            due = await self._fetch(frozenset(self._claimed))
            for item in due:
                self._start(item)
            if len(due) < self._limit:  # a full page: there may be more, look again at once
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), timeout=_IDLE_SECONDS)


@dataclass(frozen=True)
class PumpContext:
    """What a pump of a durable queue works with: the group commit, channels, settings, clock."""

    commit: GroupCommit
    channels: Channels
    settings: DeliverySettings
    clock: Clock
    background: Background

    @property
    def backoff(self) -> Backoff:
        """The retry policy both queues share."""
        return Backoff(self.settings.retry_base_seconds, self.settings.retry_max_seconds)
