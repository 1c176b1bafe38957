"""One node directory, one running node: a lock taken before anything is written (SPEC §11.7).

A second ``intelshare node run`` on the same directory, on the same port or another,
would otherwise upgrade and append to the live node's database (a ``NODE_STARTED`` in
its log) and take over its desk socket, deleting it on exit. The lock is an advisory
``flock`` on the node's directory itself (no lock file: a refused start writes nothing),
held for the life of the process and released by the kernel however the process ends,
kill -9 included, so a crash never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from protocol.errors import ConfigurationError

__all__ = ["NodeLock", "NodeRunningError"]


class NodeRunningError(ConfigurationError):
    """Another process already runs the node of this directory."""


class NodeLock:
    """The exclusive lock of a node directory; ``acquire`` raises ``NodeRunningError`` if it is held."""

    def __init__(self, node_dir: Path) -> None:
        self.node_dir = node_dir
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock without waiting."""
        fd = os.open(self.node_dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise NodeRunningError(
                f"the node in {self.node_dir} is already running: one process per node directory"
            ) from None
        self._fd = fd

    def release(self) -> None:
        """Let go of the lock (the kernel does it too when the process ends)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
