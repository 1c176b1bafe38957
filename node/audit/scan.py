"""Reading the whole audit log fast: each entry's stored bytes against its hash (SPEC §11.4).

``audit verify`` of a million entries must take seconds. Each entry keeps the exact
bytes its ``entry_hash`` covers (the ``entry`` column), so checking it is one SHA-256
over stored bytes, done a chunk at a time; on PostgreSQL the server computes the hashes
(``sha256``), in the scan or, for a log opened read-only, beside it on a second
connection (``mismatched``), so that its work runs on the other core.

The columns an auditor's queries use (event, peer, reason, …) must say what the bytes
say. ``disagreeing`` finds the entries whose columns do not, in one SQL statement that
runs in the database's C code (SQLite's JSON functions; on PostgreSQL, the bytes the
columns would make, compared with the stored ones); a caller can run it beside the scan,
on a second connection, when the log is opened read-only.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import suppress
from typing import Any, NamedTuple

from sqlalchemy import Connection, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from node.audit.entries import hash_matches
from node.store import AuditEntryRow

__all__ = ["CHUNK", "Chunk", "Scanned", "disagreeing", "mismatched", "scan", "scan_chunks"]

#: Rows per chunk: a power of two, so the verifier can hash a chunk's tree a level at a time.
CHUNK = 4096
_SQLITE_ROWS = "SELECT seq, entry, prev_hash, entry_hash FROM audit_log WHERE seq > {after} ORDER BY seq"
# The server hashes the stored bytes (with the RFC 9162 leaf prefix), on a core of its own.
_POSTGRES_ROWS = (
    "SELECT seq, prev_hash, entry_hash,"
    " encode(sha256('\\x00'::bytea || convert_to(entry, 'UTF8')), 'hex') = entry_hash"
    " FROM audit_log WHERE seq > {after} ORDER BY seq"
)
_POSTGRES_DECLARE = "DECLARE intelshare_audit_scan NO SCROLL CURSOR FOR {query}"
_POSTGRES_FETCH = f"FETCH FORWARD {CHUNK} FROM intelshare_audit_scan"
_POSTGRES_CLOSE = "CLOSE intelshare_audit_scan"
# The links alone, when the hashes are checked apart (``mismatched``, on another connection).
_POSTGRES_LINKS = "SELECT seq, prev_hash, entry_hash, true FROM audit_log WHERE seq > {after} ORDER BY seq"
_POSTGRES_MISMATCHED = (
    "SELECT seq FROM audit_log WHERE seq > {after}"
    " AND encode(sha256('\\x00'::bytea || convert_to(entry, 'UTF8')), 'hex') IS DISTINCT FROM entry_hash"
    " ORDER BY seq"
)
# Columns that say something else than the entry's bytes (SQLite: json_extract of true is 1).
_SQLITE_DISAGREE = """SELECT seq FROM audit_log WHERE seq > {after} AND CASE WHEN json_valid(entry) THEN
 json_extract(entry, '$.seq') IS NOT seq
 OR json_extract(entry, '$.at') IS NOT substr(at, 1, 10) || 'T' || substr(at, 12) || 'Z'
 OR json_extract(entry, '$.event') IS NOT event OR json_extract(entry, '$.actor') IS NOT actor
 OR json_extract(entry, '$.peer') IS NOT peer OR json_extract(entry, '$.item_id') IS NOT item_id
 OR json_extract(entry, '$.item_version') IS NOT item_version
 OR json_extract(entry, '$.envelope_id') IS NOT envelope_id
 OR json_extract(entry, '$.allowed') IS NOT allowed OR json_extract(entry, '$.reason') IS NOT reason
 OR json_extract(entry, '$.rule') IS NOT rule OR json_extract(entry, '$.detail') IS NOT detail
 OR json_extract(entry, '$.prev_hash') IS NOT prev_hash
 ELSE 1 END ORDER BY seq"""
# PostgreSQL parses JSON slowly (about ten times the hashing); instead each entry's bytes are
# compared with the bytes its columns make when no value needs escaping. A string that does
# need escaping makes a candidate, which is then checked exactly (``hash_matches``).
_POSTGRES_CANDIDATES = """SELECT seq FROM audit_log WHERE seq > {after} AND entry IS DISTINCT FROM (
 '{{"actor":' || coalesce('"' || actor || '"', 'null') || ',"allowed":' || coalesce(allowed::text, 'null')
 || ',"at":"' || to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') || '","detail":' || detail
 || ',"envelope_id":' || coalesce('"' || envelope_id || '"', 'null')
 || ',"event":' || coalesce('"' || event || '"', 'null') || ',"item_id":' || coalesce('"' || item_id || '"', 'null')
 || ',"item_version":' || coalesce(item_version::text, 'null') || ',"peer":' || coalesce('"' || peer || '"', 'null')
 || ',"prev_hash":"' || prev_hash || '","reason":' || coalesce('"' || reason || '"', 'null')
 || ',"rule":' || coalesce('"' || rule || '"', 'null') || ',"seq":' || seq || '}}') ORDER BY seq"""


class Chunk(NamedTuple):
    """Consecutive entries as the scan read them, column by column."""

    seqs: tuple[int, ...]
    #: Each entry's link to the one before (its ``prev_hash``).
    prevs: tuple[str, ...]
    hashes: tuple[str, ...]
    #: The leaf hashes as bytes (32 zero bytes where ``entry_hash`` is not a hash).
    leaves: list[bytes]
    #: Indices of the entries whose stored bytes do not hash to ``entry_hash``.
    bad: list[int]


class Scanned(NamedTuple):
    """One entry as the scan saw it."""

    seq: int
    entry_hash: str
    prev_hash: str
    #: Whether the entry's stored bytes hash to ``entry_hash``.
    intact: bool


def _leaf(entry_hash: Any) -> bytes:
    try:
        leaf = bytes.fromhex(entry_hash)
    except (TypeError, ValueError):
        leaf = b""
    return leaf if len(leaf) == 32 else bytes(32)  # a mangled hash still takes its place in the tree


def _digest(entry: Any) -> bytes:
    try:
        return hashlib.sha256(b"\x00" + entry.encode()).digest()
    except AttributeError:  # not text: it hashes to nothing
        return b""


def _sqlite_chunk(rows: Sequence[Any]) -> Chunk:
    seqs, entries, prevs, hashes = zip(*rows, strict=True)
    sha256 = hashlib.sha256
    try:
        leaves = list(map(bytes.fromhex, hashes))
        digests = [sha256(b"\x00" + entry.encode()).digest() for entry in entries]
    except (AttributeError, TypeError, ValueError):  # a value of the wrong kind somewhere: row by row
        leaves, digests = [_leaf(h) for h in hashes], [_digest(e) for e in entries]
    bad = [] if digests == leaves else [i for i, (d, leaf) in enumerate(zip(digests, leaves, strict=True)) if d != leaf]
    for i in bad:
        leaves[i] = _leaf(hashes[i])
    return Chunk(seqs, prevs, hashes, leaves, bad)  # as the driver gave them: int, str, str


def _postgres_chunk(rows: Sequence[Any]) -> Chunk:
    seqs, prevs, hashes, intact = zip(*rows, strict=True)
    bad = [i for i, ok in enumerate(intact) if not ok]
    leaves = [_leaf(h) for h in hashes] if bad else list(map(bytes.fromhex, hashes))
    return Chunk(seqs, prevs, hashes, leaves, bad)


def scan_chunks(session: Session, after_seq: int = 0, *, hashed: bool = True) -> Iterator[Chunk]:
    """The entries after ``after_seq`` in seq order, ``CHUNK`` at a time, each checked against its hash.

    On PostgreSQL, ``hashed=False`` leaves the hashes to ``mismatched`` (run beside the
    scan on another connection): every chunk then says none is bad. SQLite hashes here.
    """
    connection = session.connection()
    streamed = {"stream_results": True, "yield_per": CHUNK}  # for this statement, not the connection
    if connection.dialect.name == "postgresql":
        query = _POSTGRES_ROWS if hashed else _POSTGRES_LINKS
        # A cursor declared in the connection's transaction and fetched through the driver:
        # plain tuples, no result object building a row for each (half the scan's Python).
        connection.exec_driver_sql(_POSTGRES_DECLARE.format(query=query.format(after=int(after_seq))))
        driver = connection.connection.driver_connection
        assert driver is not None  # a live connection: the statement above just ran on it
        fetcher = driver.cursor()

        def fetch() -> Sequence[Any]:
            fetcher.execute(_POSTGRES_FETCH)
            return fetcher.fetchall()  # type: ignore[no-any-return]

        try:
            yield from _read_ahead(fetch)
        finally:
            fetcher.close()
            with suppress(DBAPIError):  # a failed transaction has dropped its cursors already
                connection.exec_driver_sql(_POSTGRES_CLOSE)
        return
    # SQLite's cursor hands rows over as they are: no copy through the result.
    cursor = connection.exec_driver_sql(_SQLITE_ROWS.format(after=int(after_seq)), execution_options=streamed).cursor
    assert cursor is not None
    while rows := cursor.fetchmany(CHUNK):
        yield _sqlite_chunk(rows)


def _read_ahead(fetch: Callable[[], Sequence[Any]]) -> Iterator[Chunk]:
    """PostgreSQL's chunks, fetched by a thread of their own one chunk ahead of the caller.

    The server hashes a chunk only when it is fetched; fetched in turn, the server and
    the caller would each wait for the other. Fetched ahead, the server hashes the next
    chunk while the caller grows the tree over this one (the driver waits for the server
    without holding the GIL). The connection is the thread's until the generator ends,
    however it ends: a caller that stops early waits for at most the fetch in progress.
    """
    chunks: queue.Queue[Chunk | BaseException | None] = queue.Queue(maxsize=2)
    stop = threading.Event()

    def produce() -> None:
        try:
            while not stop.is_set() and (rows := fetch()):
                _offer(chunks, _postgres_chunk(rows), stop)
            _offer(chunks, None, stop)
        except BaseException as exc:  # the caller's to raise
            _offer(chunks, exc, stop)

    thread = threading.Thread(target=produce, name="audit-scan", daemon=True)
    thread.start()
    try:
        while (item := chunks.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


def _offer(
    chunks: queue.Queue[Chunk | BaseException | None], item: Chunk | BaseException | None, stop: threading.Event
) -> None:
    """Queue ``item`` unless the caller stopped reading."""
    while not stop.is_set():
        try:
            chunks.put(item, timeout=0.05)
        except queue.Full:
            continue
        return


def scan(session: Session, after_seq: int = 0) -> Generator[Scanned]:
    """The entries after ``after_seq`` in seq order, each with whether its bytes match its hash."""
    for chunk in scan_chunks(session, after_seq):
        bad = set(chunk.bad)
        for i, seq in enumerate(chunk.seqs):
            yield Scanned(seq, chunk.hashes[i], chunk.prevs[i], i not in bad)


def mismatched(connection: Connection, after_seq: int = 0) -> list[int]:
    """PostgreSQL: the entries after ``after_seq`` whose stored bytes do not hash to their ``entry_hash``."""
    query = _POSTGRES_MISMATCHED.format(after=int(after_seq))
    return [int(seq) for (seq,) in connection.exec_driver_sql(query)]


def disagreeing(connection: Connection, after_seq: int = 0) -> list[int]:
    """The entries after ``after_seq`` whose columns do not say what their stored bytes say."""
    if connection.dialect.name == "postgresql":
        candidates = [
            int(seq) for (seq,) in connection.exec_driver_sql(_POSTGRES_CANDIDATES.format(after=int(after_seq)))
        ]
        return _disagreeing_slowly(connection, candidates) if candidates else []
    return [int(seq) for (seq,) in connection.exec_driver_sql(_SQLITE_DISAGREE.format(after=int(after_seq)))]


def _disagreeing_slowly(connection: Connection, candidates: list[int]) -> list[int]:
    """Of ``candidates``, the entries whose columns do not hash as the writer encodes them (``hash_matches``)."""
    with Session(bind=connection) as session:
        rows = session.scalars(
            select(AuditEntryRow).where(AuditEntryRow.seq.in_(candidates)).order_by(AuditEntryRow.seq)
        )
        return [int(row.seq) for row in rows if not hash_matches(row)]
