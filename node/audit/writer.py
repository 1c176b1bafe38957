"""Appending to the audit log: one head read per transaction, hot-path bulk appends (SPEC §11.4)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, select
from sqlalchemy.orm import Session, SessionTransaction

from node.audit.checkpoints import KEEP_EVERY, keep_rows, record_checkpoint, unkept_row
from node.audit.entries import (
    AuditEvent,
    DetailValue,
    Entry,
    canonical_json,
    check_detail,
    entry_bytes,
    format_time,
    utc,
)
from node.audit.tree import LogTree, completed_rows, node_hashes
from node.errors import LogTamperedError
from node.store import AuditEntryRow, AuditHead, AuditSubtree, HotWrite, driver_time
from protocol.merkle import Frontier, leaf_hash

__all__ = ["TREE_KEY", "AuditWriter", "append", "append_many", "seal"]

_WRITER_KEY = "intelshare.audit.writer"
_AUDIT_TABLE: Table = AuditEntryRow.__table__  # type: ignore[assignment]
_HEAD_TABLE: Table = AuditHead.__table__  # type: ignore[assignment]
_HEAD_FOR_UPDATE = select(_HEAD_TABLE.c.seq, _HEAD_TABLE.c.entry_hash).where(_HEAD_TABLE.c.id == 1).with_for_update()
# Built once: SQLAlchemy memoises a statement's cache key, so hot paths do not rebuild it.
_HEAD_ADVANCE = (
    _HEAD_TABLE.update().where(_HEAD_TABLE.c.id == 1).values(seq=bindparam("new_seq"), entry_hash=bindparam("new_hash"))
)
_AUDIT_INSERT = HotWrite(_AUDIT_TABLE.insert())


_SUBTREE_INSERT = HotWrite(cast(Table, AuditSubtree.__table__).insert())
#: ``session.info`` key of the node's ``LogTree`` (set by the runtime for its sessions).
TREE_KEY = "intelshare.audit.tree"


@dataclass(slots=True)
class _Head:
    """The newest entry's number and hash, and the log's frontier, as this transaction has advanced them."""

    seq: int
    entry_hash: str
    frontier: Frontier
    appended: bool = False


class AuditWriter:
    """Appends entries to a session, reading and locking the head once per transaction.

    The head is cached for the life of the session's current transaction; a new
    transaction re-reads it. Appended rows are flushed and committed by the caller
    together with the change they record. Do not roll back a savepoint that contains
    appends while keeping the outer transaction: the cached head would run ahead.
    """

    def __init__(self, session: Session) -> None:
        self._session = session
        self._txn: SessionTransaction | None = None
        self._head: _Head | None = None

    def _current_head(self) -> _Head:
        # Re-read whenever the session is in a different transaction from the cached read.
        session = self._session
        txn = session.get_transaction()
        if txn is None or txn is not self._txn or self._head is None:
            # Core on the connection (an ORM read of the head cost more than the append).
            # PostgreSQL: the row lock serialises appenders. SQLite: BEGIN IMMEDIATE
            # already holds the database write lock and FOR UPDATE is not emitted.
            row = session.connection().execute(_HEAD_FOR_UPDATE).one_or_none()
            if row is None:
                raise RuntimeError("audit_head row missing: run node.store.upgrade()")
            seq, entry_hash = int(row.seq), str(row.entry_hash)
            tree = session.info.get(TREE_KEY)
            if isinstance(tree, LogTree):
                if (seq, entry_hash) != (tree.size, tree.last_hash):
                    # Someone other than this node wrote to (or cut) the log: append nothing (SPEC §11.10.6).
                    raise LogTamperedError(
                        f"the audit log's head is entry {seq}, but this node last wrote entry {tree.size}"
                    )
                frontier = tree.working()
            else:  # a tool or test writing without a running node: the tree as stored
                frontier = Frontier.from_nodes(seq, node_hashes(session))
            self._head = _Head(seq, entry_hash, frontier)
            self._txn = session.get_transaction()
        return self._head

    def _advance(self, head: _Head, hashes: Sequence[str]) -> None:
        """The entries with ``hashes`` were appended: move the head, grow the tree, keep its subtrees."""
        subtrees: list[dict[str, object]] = []
        for entry_hash in hashes:
            subtrees += completed_rows(head.frontier.append(bytes.fromhex(entry_hash)))
        head.seq, head.entry_hash, head.appended = head.seq + len(hashes), hashes[-1], True
        connection = self._session.connection()
        connection.execute(_HEAD_ADVANCE, {"new_seq": head.seq, "new_hash": head.entry_hash})
        _SUBTREE_INSERT.execute(connection, subtrees)

    def seal(self, now: datetime) -> tuple[Frontier, str, tuple[dict[str, object], ...]] | None:
        """Sign a checkpoint of what this transaction appended, in it (SPEC §11.10.2).

        Returns the frontier, last hash and checkpoints not yet in the history for the
        runtime's ``LogTree`` once the transaction commits (signed or, in the
        checkpoint-cost benchmark, not); None if nothing was appended or no running node
        keeps a tree.
        """
        head, tree = self._head, self._session.info.get(TREE_KEY)
        if head is None or not head.appended or self._session.get_transaction() is not self._txn:
            return None
        if not isinstance(tree, LogTree):
            return None
        unkept = tree.unkept
        if tree.signer is not None:  # None only in the checkpoint-cost benchmark (``UNSAFE_NO_CHECKPOINTS_ENV``)
            note = tree.signer.sign(head.frontier, now)
            record_checkpoint(self._session, note, now)
            unkept += (unkept_row(self._session, note, head.frontier, now),)
            if len(unkept) >= KEEP_EVERY:
                keep_rows(self._session, unkept)
                unkept = ()
        return head.frontier, head.entry_hash, unkept

    def append(self, *, now: datetime, entry: Entry) -> AuditEntryRow:
        """Add the next entry to the session (no commit) and advance the head."""
        head = self._current_head()
        row = AuditEntryRow(
            seq=head.seq + 1,
            at=utc(now),
            event=entry.event.value,
            actor=entry.actor,
            peer=entry.peer,
            item_id=entry.item_id,
            item_version=entry.item_version,
            envelope_id=entry.envelope_id,
            allowed=entry.allowed,
            reason=entry.reason,
            rule=entry.rule,
            detail=canonical_json(check_detail(entry.detail)),
            prev_hash=head.entry_hash,
        )
        row.entry = entry_bytes(row).decode("utf-8")
        row.entry_hash = leaf_hash(row.entry.encode("utf-8")).hex()
        self._session.add(row)
        self._advance(head, [row.entry_hash])
        return row

    def append_many(self, *, now: datetime, entries: Sequence[Entry]) -> list[tuple[int, str]]:
        """Append entries with one multi-row INSERT, executed at once (hot paths).

        Same encoding and chain as :meth:`append` (the canonical bytes are computed from
        the same values); the rows are not ORM objects in the session. Returns each
        entry's (seq, entry_hash), in order.
        """
        if not entries:
            return []
        head = self._current_head()
        connection = self._session.connection()
        at = driver_time(connection.dialect, utc(now))
        at_text = format_time(now)
        seq, prev_hash = head.seq, head.entry_hash
        rows: list[dict[str, Any]] = []
        for entry in entries:
            seq += 1
            detail = check_detail(entry.detail)
            values: dict[str, Any] = {
                "seq": seq,
                "at": at_text,
                "event": entry.event.value,
                "actor": entry.actor,
                "peer": entry.peer,
                "item_id": entry.item_id,
                "item_version": entry.item_version,
                "envelope_id": entry.envelope_id,
                "allowed": entry.allowed,
                "reason": entry.reason,
                "rule": entry.rule,
                "detail": detail,
                "prev_hash": prev_hash,
            }
            text = canonical_json(values)
            prev_hash = leaf_hash(text.encode("utf-8")).hex()
            values |= {"at": at, "detail": canonical_json(detail), "entry_hash": prev_hash, "entry": text}
            rows.append(values)
        # Straight to the driver on the session's connection: no ORM machinery, no autoflush.
        _AUDIT_INSERT.execute(connection, rows)
        self._advance(head, [row["entry_hash"] for row in rows])
        return [(row["seq"], row["entry_hash"]) for row in rows]


def _writer(session: Session) -> AuditWriter:
    writer = session.info.get(_WRITER_KEY)
    if not isinstance(writer, AuditWriter):
        writer = AuditWriter(session)
        session.info[_WRITER_KEY] = writer
    return writer


def append(
    session: Session,
    *,
    now: datetime,
    event: AuditEvent | str,
    actor: str,
    peer: str | None = None,
    item_id: str | None = None,
    item_version: int | None = None,
    envelope_id: str | None = None,
    allowed: bool | None = None,
    reason: str | None = None,
    rule: str | None = None,
    detail: Mapping[str, DetailValue] | None = None,
) -> AuditEntryRow:
    """Append one entry to ``session`` without committing (see :class:`AuditWriter`).

    Uses one writer per session, so many appends in one transaction read the head once.
    """
    entry = Entry(AuditEvent(event), actor, peer, item_id, item_version, envelope_id, allowed, reason, rule, detail)
    return _writer(session).append(now=now, entry=entry)


def append_many(session: Session, *, now: datetime, entries: Sequence[Entry]) -> list[tuple[int, str]]:
    """Append many entries to ``session`` at ``now`` without committing (one INSERT); their (seq, hash)."""
    return _writer(session).append_many(now=now, entries=entries)


def seal(session: Session, *, now: datetime) -> tuple[Frontier, str, tuple[dict[str, object], ...]] | None:
    """Sign a checkpoint of the entries appended in the session's transaction (``AuditWriter.seal``)."""
    writer = session.info.get(_WRITER_KEY)
    return writer.seal(now) if isinstance(writer, AuditWriter) else None
