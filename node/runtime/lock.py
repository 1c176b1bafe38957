"""One node directory, one running node: a lock taken before anything is written (SPEC §11.7).

A second ``intelshare node run`` on the same directory, on the same port or another,
would otherwise upgrade and append to the live node's database (a ``NODE_STARTED`` in
its log) and take over its desk socket, deleting it on exit. The lock is an advisory
``flock`` on ``node.lock`` in the node's directory, held for the life of the process and
released by the kernel however the process ends (kill -9 included), so a crash never
leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from protocol.errors import ConfigurationError

__all__ = ["LOCK_FILE", "NodeLock", "NodeRunningError"]

LOCK_FILE = "node.lock"


class NodeRunningError(ConfigurationError):
    """Another process already runs the node of this directory."""


class NodeLock:
    """The exclusive lock of a node directory; ``acquire`` raises ``NodeRunningError`` if it is held."""

    def __init__(self, node_dir: Path) -> None:
        self.path = node_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock without waiting, and write this process's id into the file."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise NodeRunningError(
                f"the node in {self.path.parent} is already running (process {holder}); one process per node directory"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        """Let go of the lock (the kernel does it too when the process ends)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
