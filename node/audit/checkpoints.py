"""Where the node keeps its own signed checkpoints (SPEC §11.10.8).

Every commit that appends signs a checkpoint of the log at its new size. The latest is
kept in the head row (``audit_head.checkpoint``), which that commit rewrites anyway: a row
of its own per commit wrote two more pages to the write-ahead log (the table's and its
key's), most of what checkpoints cost the exchange (``tests/perf/bench_exchange.py
--checkpoints-ab``). The history, ``audit_checkpoints``, is written ``KEEP_EVERY``
checkpoints at a time (``keep_rows``, by a later commit, and when the node stops), and at
once for a checkpoint a witness is asked to co-sign. The history is what lets ``verify``
name the first entry an insider altered rather than a range; the head's checkpoint is
what the node's start check relies on, and it is never late. A node killed loses at most
the history since its last batch. A log written before the head carried a checkpoint has
every checkpoint in the table; readers take whichever is larger.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.orm import Session

from node.store import AuditCheckpoint, AuditHead, HotWrite, driver_time
from protocol.checkpoint import parse_checkpoint
from protocol.errors import RemoteProtocolError
from protocol.merkle import Frontier

__all__ = [
    "KEEP_EVERY",
    "OwnCheckpoint",
    "checkpoint_at",
    "keep_checkpoint",
    "keep_rows",
    "latest_checkpoint",
    "own_checkpoint_roots",
    "record_checkpoint",
    "unkept_row",
]

#: Checkpoints written to the history in one insert.
KEEP_EVERY = 32
_INSERT = HotWrite(cast(Table, AuditCheckpoint.__table__).insert())

#: Written with every checkpoint; a head row edited to lack it still reads.
_UNKNOWN_TIME = datetime(1970, 1, 1, tzinfo=UTC)
_HEAD_CHECKPOINT = (
    update(AuditHead).where(AuditHead.id == 1).values(checkpoint=bindparam("note"), checkpoint_at=bindparam("at"))
)


@dataclass(frozen=True)
class OwnCheckpoint:
    """One of the node's checkpoints as stored; nothing here says its signature verifies."""

    size: int
    root: bytes
    note: bytes
    signed_at: datetime


def record_checkpoint(session: Session, note: bytes, now: datetime) -> None:
    """Keep the checkpoint of what this transaction appended in the head row, in the transaction."""
    session.connection().execute(_HEAD_CHECKPOINT, {"note": note, "at": now})


def unkept_row(session: Session, note: bytes, frontier: Frontier, now: datetime) -> dict[str, object]:
    """The history row of a checkpoint just signed, in driver form, for ``keep_rows`` later."""
    at = driver_time(session.connection().dialect, now)
    return {"size": frontier.size, "root": frontier.root(), "signed_at": at, "note": note}


def keep_rows(session: Session, rows: Sequence[dict[str, object]]) -> None:
    """Write ``unkept_row`` rows to the history, in one insert, less those a witness had it keep already."""
    if not rows:
        return
    sizes = [int(str(row["size"])) for row in rows]
    kept = set(session.scalars(select(AuditCheckpoint.size).where(AuditCheckpoint.size.in_(sizes))))
    _INSERT.execute(session.connection(), [row for row, size in zip(rows, sizes, strict=True) if size not in kept])


def _head(session: Session) -> OwnCheckpoint | None:
    row = session.execute(
        select(AuditHead.seq, AuditHead.checkpoint, AuditHead.checkpoint_at).where(AuditHead.id == 1)
    ).first()
    if row is None or row.checkpoint is None:
        return None
    note = bytes(row.checkpoint)
    try:
        parsed = parse_checkpoint(note).checkpoint
    except RemoteProtocolError:  # kept as found: whoever relies on it verifies the signature, and fails
        return OwnCheckpoint(int(row.seq), b"", note, row.checkpoint_at or _UNKNOWN_TIME)
    return OwnCheckpoint(parsed.size, parsed.root, note, row.checkpoint_at or _UNKNOWN_TIME)


def _row(row: AuditCheckpoint | None) -> OwnCheckpoint | None:
    return None if row is None else OwnCheckpoint(row.size, bytes(row.root), bytes(row.note), row.signed_at)


def latest_checkpoint(session: Session) -> OwnCheckpoint | None:
    """The node's latest checkpoint: the head's, or the table's largest for a log from before."""
    head = _head(session)
    kept = _row(session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.size.desc()).limit(1)).first())
    candidates = [c for c in (head, kept) if c is not None]
    return max(candidates, key=lambda c: c.size, default=None)


def checkpoint_at(session: Session, size: int) -> OwnCheckpoint | None:
    """The node's checkpoint of the log at ``size``, if it kept one."""
    head = _head(session)
    if head is not None and head.size == size:
        return head
    return _row(session.get(AuditCheckpoint, size))


def own_checkpoint_roots(session: Session) -> list[tuple[int, bytes]]:
    """(size, root) of every checkpoint the node kept, oldest first."""
    rows = session.execute(select(AuditCheckpoint.size, AuditCheckpoint.root).order_by(AuditCheckpoint.size))
    roots = {int(size): bytes(root) for size, root in rows}
    head = _head(session)
    if head is not None:
        roots.setdefault(head.size, head.root)
    return sorted(roots.items())


def keep_checkpoint(session: Session, checkpoint: OwnCheckpoint) -> None:
    """Keep ``checkpoint`` in the table (it is about to be shown to a witness), once."""
    if session.get(AuditCheckpoint, checkpoint.size) is None:
        session.add(
            AuditCheckpoint(
                size=checkpoint.size, root=checkpoint.root, note=checkpoint.note, signed_at=checkpoint.signed_at
            )
        )
