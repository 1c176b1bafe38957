"""Reading the whole audit log fast: raw rows, each checked against its hash (SPEC §11.4).

``audit verify`` of a million entries must take seconds, not minutes: building ORM
objects and re-encoding a dict per entry cost about 90 µs an entry. Here rows come
straight from the driver in chunks, and an entry's canonical bytes are assembled from
its stored fields with one format string: the keys in their canonical (sorted) order,
strings escaped by the C encoder the ``json`` module itself uses (remembered for the
values that repeat: events, members, reasons), and ``detail`` as the stored text, which
the writer stored canonical. An entry whose bytes do not hash to ``entry_hash`` on this
fast path is checked again the slow way (``entries.hash_matches``), so only what the
writer could not have written is reported.
"""

from __future__ import annotations

import hashlib
import json.encoder
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy.orm import Session

from node.audit.entries import STREAM_BATCH, hash_matches
from node.store import AuditEntryRow

__all__ = ["Scanned", "scan", "scan_chunks"]

_ENCODE: Callable[[str], str] = getattr(json.encoder, "c_encode_basestring", None) or json.encoder.encode_basestring
_SELECT = (
    "SELECT seq, at, event, actor, peer, item_id, item_version, envelope_id, allowed, reason, rule, detail,"
    " prev_hash, entry_hash FROM audit_log WHERE seq > {after} ORDER BY seq"
)
# The entry bytes of SPEC §11.4 with the leaf prefix: keys sorted, no whitespace.
_TEMPLATE = (
    '\x00{"actor":%s,"allowed":%s,"at":%s,"detail":%s,"envelope_id":%s,"event":%s,"item_id":%s,'
    '"item_version":%s,"peer":%s,"prev_hash":%s,"reason":%s,"rule":%s,"seq":%d}'
)
_FLAG = {None: "null", False: "false", True: "true"}
_REMEMBERED = 4096


class Scanned(NamedTuple):
    """One entry as the scan saw it."""

    seq: int
    entry_hash: str
    prev_hash: str
    #: Whether the entry's fields hash to ``entry_hash``.
    intact: bool


class _Encoded(dict[Any, str]):
    """JSON string literals, remembered for values that repeat."""

    def __missing__(self, value: Any) -> str:
        text = "null" if value is None else _ENCODE(value)
        if len(self) < _REMEMBERED:
            self[value] = text
        return text


def _time(at: Any) -> str:
    """``at`` as the entry bytes write it: RFC 3339 UTC with microseconds and ``Z``."""
    if isinstance(at, str):  # SQLite: "YYYY-MM-DD HH:MM:SS.ffffff", naive UTC (node.store.UTCDateTime)
        if len(at) == 26 and at[10] == " ":
            return f'"{at[:10]}T{at[11:]}Z"'
        at = datetime.fromisoformat(at).replace(tzinfo=UTC)
    return f'"{at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")}"'


def _check(rows: list[Any], encoded: _Encoded) -> list[Scanned]:
    out = []
    sha256, template, flag = hashlib.sha256, _TEMPLATE, _FLAG
    for seq, at, event, actor, peer, item_id, version, envelope_id, allowed, reason, rule, detail, prev, h in rows:
        try:
            text = template % (
                encoded[actor],
                flag[None if allowed is None else bool(allowed)],
                _time(at),
                detail,
                "null" if envelope_id is None else _ENCODE(envelope_id),
                encoded[event],
                "null" if item_id is None else _ENCODE(item_id),
                "null" if version is None else int(version),
                encoded[peer],
                _ENCODE(prev),
                encoded[reason],
                encoded[rule],
                seq,
            )
            intact = sha256(text.encode()).hexdigest() == h
        except (TypeError, ValueError):  # a field of the wrong type: the slow path says why
            intact = False
        out.append(Scanned(int(seq), str(h), str(prev), intact))
    return out


def scan_chunks(session: Session, after_seq: int = 0) -> Iterator[list[Scanned]]:
    """The entries after ``after_seq`` in seq order, a chunk at a time, each checked against its hash."""
    connection = session.connection().execution_options(stream_results=True, yield_per=STREAM_BATCH)
    result = connection.exec_driver_sql(_SELECT.format(after=int(after_seq)))
    # SQLite's cursor hands rows over as they are; a server-side cursor's result may hold
    # rows it already fetched, so elsewhere rows come through the result.
    cursor = result.cursor if connection.dialect.name == "sqlite" else None
    fetch = cursor.fetchmany if cursor is not None else result.fetchmany
    encoded = _Encoded()
    while rows := fetch(STREAM_BATCH):
        chunk = _check(list(rows), encoded)
        yield [entry if entry.intact else entry._replace(intact=_slow_intact(session, entry.seq)) for entry in chunk]


def scan(session: Session, after_seq: int = 0) -> Iterator[Scanned]:
    """The entries after ``after_seq`` in seq order, each with whether it matches its hash."""
    for chunk in scan_chunks(session, after_seq):
        yield from chunk


def _slow_intact(session: Session, seq: int) -> bool:
    row = session.get(AuditEntryRow, seq, populate_existing=True)
    return row is not None and hash_matches(row)
