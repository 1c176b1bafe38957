"""Refused requests in the node log: once per peer and interval, with a count (SPEC §11.3).

Every refusal is audited where the SPEC says so; the node log is for operators, and a
member sending junk must not fill it: the first refusal from a peer is logged at once,
the ones after it in the same interval only as one line with their count.
"""

from __future__ import annotations

import asyncio
import collections
import logging

__all__ = ["RefusalLog"]

log = logging.getLogger("intelshare.node")


class RefusalLog:
    """Counts refusals per peer; one line when a peer's interval opens, one with the count when it closes."""

    def __init__(self, interval_seconds: float, logger: logging.Logger = log) -> None:
        self.interval = interval_seconds
        self._log = logger
        self._open: dict[str, collections.Counter[str]] = {}

    def note(self, peer: str, what: str) -> None:
        """A request from ``peer`` was refused (``what``: a short description, e.g. "an undecodable Deliver")."""
        counts = self._open.get(peer)
        if counts is not None:
            counts[what] += 1
            return
        self._open[peer] = collections.Counter()
        self._log.warning(
            "refused %s from %s; further refusals from %s are counted for %g s", what, peer, peer, self.interval
        )
        asyncio.get_running_loop().call_later(self.interval, self.flush, peer)

    def flush(self, peer: str) -> None:
        """Close ``peer``'s interval: one line with what was refused since its first line, if anything."""
        counts = self._open.pop(peer, None)
        if counts:
            kinds = "; ".join(f"{what} ×{n}" for what, n in counts.most_common())
            self._log.warning(
                "refused %d more requests from %s in %g s: %s", sum(counts.values()), peer, self.interval, kinds
            )
