"""The retention pump: destroys the content of copies whose retention ended (SPEC §11.13)."""

from __future__ import annotations

import asyncio
import logging

from node.config import RetentionSettings
from node.runtime.clock import Clock
from node.runtime.commit import GroupCommit
from node.services.retention import purge_due

__all__ = ["RetentionPump"]

log = logging.getLogger("intelshare.node")

#: Copies of each kind purged per job; a full page is followed at once by the next.
_PAGE = 256


class RetentionPump:
    """Every ``interval_seconds``, one job of the group commit purges what is due by the node's clock."""

    def __init__(self, commit: GroupCommit, clock: Clock, settings: RetentionSettings) -> None:
        self.commit = commit
        self.clock = clock
        self.settings = settings

    async def run(self) -> None:
        """Purge until cancelled."""
        while True:
            purged = await self.commit.run(purge_due, now=self.clock(), limit=_PAGE)
            if purged:
                log.info("purged %d copies whose retention ended", len(purged))
            if len(purged) < _PAGE:
                await asyncio.sleep(self.settings.interval_seconds)
