"""Group commit: every node write is a job in one transaction, one commit per group (SPEC §11.7).

Jobs queue up from the event loop; one database thread runs as many as are waiting (up
to ``batch_max``) in one transaction, commits once, then answers every caller. No
caller, so no receipt, hears back before its job is committed. A job that raises is
dropped from the group and the rest re-run from a clean transaction, which keeps the
audit writer's cached chain head exact.

``GroupCommit.run`` is typed with ``ParamSpec``: a call ``run(fn, x=1)`` is checked
against ``fn(session, state, *, x)`` by ``mypy --strict``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy.orm import Session, sessionmaker

from node import audit
from node.audit.tree import LogTree
from node.audit.writer import TREE_KEY
from node.runtime.clock import Clock
from node.services.control import CONTROL_QUEUED
from node.services.state import NodeState

__all__ = ["UNSAFE_CRASH_ENV", "GroupCommit"]

log = logging.getLogger("intelshare.node")
P = ParamSpec("P")
T = TypeVar("T")

#: The log size at which the statistics are first taken again after start (then at each doubling).
_FIRST_ANALYSE = 1000

#: Test hook: crash (like kill -9) right after the N-th ingress commit, before replying.
UNSAFE_CRASH_ENV = "INTELSHARE_UNSAFE_CRASH_AFTER_COMMITS"


@dataclass
class _Job:
    """One unit of work for the commit loop; ``ingress`` counts the envelopes it commits."""

    run: Callable[[Session], Any]
    future: asyncio.Future[Any]
    ingress: int = 0


class GroupCommit:
    """The node's single writer: a queue of jobs and the thread that commits them."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        state: NodeState,
        *,
        batch_max: int,
        on_control_queued: Callable[[], None],
        clock: Clock,
        analyse: Callable[[], None] | None = None,
    ) -> None:
        self._sessions = sessions
        self._state = state
        self._batch_max = batch_max
        self._on_control_queued = on_control_queued
        self._clock = clock
        #: The node's own log between commits (set once checked at start, SPEC §11.10.6).
        self.tree: LogTree | None = None
        # One writer thread: the database sees a single writer, commits stay ordered. It
        # also verifies, signs and seals, in the jobs that commit the results (SPEC §11.7).
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="db")
        self._jobs: asyncio.Queue[_Job] = asyncio.Queue()
        self._crash_after = int(os.environ.get(UNSAFE_CRASH_ENV, "0") or 0)
        if self._crash_after:
            warnings.warn(f"{UNSAFE_CRASH_ENV} is set: this node will crash on purpose", stacklevel=2)
        self._ingress_commits = 0
        #: Refreshes the planner's statistics (PostgreSQL), off the database thread; see ``_grown``.
        self._analyse = analyse
        self._next_analyse: int | None = None
        self._analysing: asyncio.Future[None] | None = None

    async def run(self, fn: Callable[Concatenate[Session, NodeState, P], T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(session, state, *args, **kwargs)`` in the next group commit; its result once committed.

        The result is read after the session has closed: return values, or rows with
        every attribute loaded.
        """
        state = self._state
        return await self.submit(lambda session: fn(session, state, *args, **kwargs))

    async def submit(self, job: Callable[[Session], T], *, ingress: int = 0) -> T:
        """Queue ``job``; ``ingress`` counts the envelopes it commits (for the crash hook)."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        await self._jobs.put(_Job(job, future, ingress))
        return await future

    async def loop(self) -> None:
        """Commit groups until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._jobs.get()]
            while len(batch) < self._batch_max and not self._jobs.empty():
                batch.append(self._jobs.get_nowait())
            control_queued = False
            try:
                outcomes, control_queued = await loop.run_in_executor(self._pool, self._run_group, batch)
            except Exception as exc:  # the commit itself failed: nothing was stored
                log.exception("group commit failed")
                outcomes = [(False, exc)] * len(batch)
            self._ingress_commits += sum(job.ingress for job in batch)
            if self._crash_after and self._ingress_commits >= self._crash_after:
                os._exit(137)  # Unsafe test hook: committed, receipts never sent.
            if control_queued:
                self._on_control_queued()
            for job, (ok, value) in zip(batch, outcomes, strict=True):
                if job.future.done():
                    continue
                if ok:
                    job.future.set_result(value)
                else:
                    job.future.set_exception(value)
            self._grown(loop)

    def _grown(self, loop: asyncio.AbstractEventLoop) -> None:
        """Each time the log has doubled since the statistics were taken, take them again (SPEC §11.7).

        On PostgreSQL a hot query planned with statistics from a much smaller table reads
        far more than it needs (the replay check read every delivery of a sender per
        batch); autovacuum refreshes them only when it comes round. ``analyse`` runs on a
        connection of its own in another thread: the single writer never waits for it.
        """
        if self._analyse is None or self.tree is None or self._analysing is not None:
            return
        size = self.tree.size
        if self._next_analyse is None:  # the tables were analysed at start (``node.store.upgrade``)
            self._next_analyse = max(_FIRST_ANALYSE, 2 * size)
        if size < self._next_analyse:
            return
        self._next_analyse = 2 * size
        self._analysing = loop.run_in_executor(None, self._analyse)
        self._analysing.add_done_callback(self._analysed)

    def _analysed(self, done: asyncio.Future[None]) -> None:
        self._analysing = None
        if not done.cancelled() and done.exception() is not None:
            log.warning("could not refresh the planner's statistics: %s", done.exception())

    def _run_group(self, batch: list[_Job]) -> tuple[list[tuple[bool, Any]], bool]:
        """Run jobs in one transaction; the outcomes, and whether a control message was queued."""
        remaining = list(range(len(batch)))
        outcomes: dict[int, tuple[bool, Any]] = {}
        control_queued = False
        while remaining:
            with self._sessions() as session:
                if self.tree is not None:
                    session.info[TREE_KEY] = self.tree
                failed = None
                for index in remaining:
                    try:
                        outcomes[index] = (True, batch[index].run(session))
                    except Exception as exc:
                        outcomes[index] = (False, exc)
                        failed = index
                        break
                if failed is None:
                    # Every commit that appends to the audit log carries the node's signed checkpoint.
                    sealed = audit.seal(session, now=self._clock())
                    session.commit()
                    if sealed is not None and self.tree is not None:
                        self.tree.committed(*sealed)
                    control_queued = bool(session.info.pop(CONTROL_QUEUED, False))
                    break
                session.rollback()
                remaining.remove(failed)
        return [outcomes[index] for index in range(len(batch))], control_queued

    def close(self) -> None:
        """Wait for the job in progress, then stop the database thread."""
        self._pool.shutdown(wait=True)
