"""Agreement files that change on disk take effect at once (SPEC §6.2).

A newer version supersedes the held one (a tightening applies to the next decision, on
both sides, as each party's node picks it up); an older or altered one is refused as a
rollback. Every outcome is audited (``node.services.federation.record_agreement_update``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from node.runtime.clock import Clock
from node.runtime.commit import GroupCommit
from node.services.agreements import supersede_stale
from node.services.federation import record_agreement_update
from node.services.state import NodeState
from protocol.errors import IntelshareError
from protocol.statements import Signed

__all__ = ["watch_agreements"]


async def watch_agreements(
    directory: Path, state: NodeState, commit: GroupCommit, clock: Clock, *, interval: float = 1.0
) -> None:
    """Poll ``directory`` every ``interval`` seconds until cancelled."""
    seen = {path: path.stat().st_mtime_ns for path in directory.glob("*.json")}
    while True:
        await asyncio.sleep(interval)
        for path in sorted(directory.glob("*.json")):
            try:
                mtime = path.stat().st_mtime_ns
            except OSError:
                continue
            if seen.get(path) == mtime:
                continue
            seen[path] = mtime
            try:
                statement = Signed.from_bytes(path.read_bytes())
                agreement = state.agreements.accept(statement, state.roster)
                ok, detail = True, f"{agreement.agreement_id} v{agreement.version} held"
            except (IntelshareError, OSError) as exc:
                ok, detail = False, str(exc)
            await commit.run(record_agreement_update, file=path.name, ok=ok, detail=detail, now=clock())
            if ok:  # pending proposals it overtook, copies a shorter maximum retention makes due (SPEC §6.4)
                await commit.run(supersede_stale, now=clock())
