"""A TCP proxy a test controls, that can black-hole the connections through it (no root needed).

``BlackHoleProxy(listen_port, target_port)`` forwards loopback TCP connections. ``cut()``
makes every connection open at that moment, and every one accepted until ``heal()``,
silently dead for good: bytes are read and thrown away, nothing is forwarded, nothing is
closed or reset, exactly what a sender sees when packets are dropped on the way or a
firewall loses its state. Connections made after ``heal()`` forward normally.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType

__all__ = ["BlackHoleProxy"]


class _Link:
    def __init__(self, client: socket.socket, upstream: socket.socket, alive: bool) -> None:
        self.client = client
        self.upstream = upstream
        self.alive = alive


class BlackHoleProxy:
    """Forwards 127.0.0.1:listen_port to 127.0.0.1:target_port until told otherwise."""

    def __init__(self, listen_port: int, target_port: int) -> None:
        self.target_port = target_port
        self._lock = threading.Lock()
        self._cut = False
        self._links: list[_Link] = []
        self._server = socket.socket()
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", listen_port))
        self._server.listen(64)
        self._closed = False
        self._accepting = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> BlackHoleProxy:
        self._accepting.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._closed = True
        self._server.close()
        with self._lock:
            for link in self._links:
                for s in (link.client, link.upstream):
                    s.close()

    def cut(self) -> None:
        """Every connection open now, and every one accepted until ``heal``, goes silent for good."""
        with self._lock:
            self._cut = True
            for link in self._links:
                link.alive = False

    def heal(self) -> None:
        """New connections forward again (the silent ones stay silent)."""
        with self._lock:
            self._cut = False

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                link = _Link(client, upstream, alive=not self._cut)
                self._links.append(link)
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(link, source, sink), daemon=True).start()

    @staticmethod
    def _pump(link: _Link, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                if link.alive:  # a dead link reads and drops: no forwarding, no reset
                    sink.sendall(data)
        except OSError:
            pass
        if link.alive:  # a clean end travels on; a dead link never tells the other side
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
