"""Hash-linked, append-only audit log (metadata and digests only, never content).

Entry encoding (format 1)
-------------------------
``entry_bytes`` is the UTF-8 encoding of a JSON object holding every field except
``entry_hash``: ``seq, at, event, actor, peer, item_id, item_version, envelope_id,
allowed, reason, rule, detail, prev_hash``. Keys sorted, separators ``,`` and ``:`` (no
whitespace), ``ensure_ascii=False``, absent values as ``null``, ``detail`` as a nested
object, ``at`` as RFC 3339 UTC with microseconds and ``Z``
(``2026-05-09T12:00:00.000000Z``), hashes as lowercase hex.

``entry_hash = SHA-256(0x00 || entry_bytes)``: the RFC 9162 §2.1.1 leaf hash, so the
entries can later be the leaves of a Merkle tree with signed checkpoints without a format
change. ``prev_hash`` of entry 1 is 64 zeros; every other ``prev_hash`` is the previous
entry's ``entry_hash``. The single ``AuditHead`` row records the last ``seq`` and
``entry_hash`` and is updated in the same transaction as the append.

Limits: a hash chain detects edits, removals, reordering and truncation relative to the
head row, but someone with write access who rewrites a suffix *and* the head consistently
is only caught by comparing against an externally kept checkpoint (``merkle_root``).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal, TextIO, TypeAlias

from sqlalchemy import Table, bindparam, select
from sqlalchemy.orm import Session, SessionTransaction

from node.storage import AuditEntryRow, AuditHead, HotWrite, driver_time
from protocol.merkle import leaf_hash, node_hash, tree_hash

__all__ = [
    "FIELDS",
    "GENESIS_HASH",
    "AuditEvent",
    "AuditProblem",
    "AuditReport",
    "AuditWriter",
    "DetailValue",
    "Entry",
    "ProblemKind",
    "append",
    "append_many",
    "entry_bytes",
    "export_csv",
    "export_jsonl",
    "format_time",
    "leaf_hash",
    "list_entries",
    "merkle_root",
    "node_hash",
    "verify",
]

GENESIS_HASH = "0" * 64

#: Exported column order (JSONL keys and CSV header).
FIELDS: tuple[str, ...] = (
    "seq",
    "at",
    "event",
    "actor",
    "peer",
    "item_id",
    "item_version",
    "envelope_id",
    "allowed",
    "reason",
    "rule",
    "detail",
    "prev_hash",
    "entry_hash",
)

# A guard, not a filter: detail must carry metadata, so an obviously content-bearing key
# is a programming error and fails loudly.
_FORBIDDEN_DETAIL_KEYS = frozenset({"content", "plaintext", "body", "sealed_content"})
_STREAM_BATCH = 1000
_WRITER_KEY = "intelshare.audit.writer"
_MOVE_SEARCH_DEPTH = 4
_AUDIT_TABLE: Table = AuditEntryRow.__table__  # type: ignore[assignment]
_HEAD_TABLE: Table = AuditHead.__table__  # type: ignore[assignment]
_HEAD_FOR_UPDATE = select(_HEAD_TABLE.c.seq, _HEAD_TABLE.c.entry_hash).where(_HEAD_TABLE.c.id == 1).with_for_update()
# Built once: SQLAlchemy memoises a statement's cache key, so hot paths do not rebuild it.
_HEAD_ADVANCE = (
    _HEAD_TABLE.update().where(_HEAD_TABLE.c.id == 1).values(seq=bindparam("new_seq"), entry_hash=bindparam("new_hash"))
)
_AUDIT_INSERT = HotWrite(_AUDIT_TABLE.insert())


@dataclass(slots=True)
class _Head:
    """The newest entry's number and hash, as this transaction has advanced them."""

    seq: int
    entry_hash: str


Scalar: TypeAlias = str | int | float | bool | None
DetailValue: TypeAlias = Scalar | list[str] | list[Scalar]
ProblemKind: TypeAlias = Literal["edited", "removed", "reordered", "truncated", "head_mismatch"]


class AuditEvent(StrEnum):
    """Stable event names; the string values are part of the log format."""

    EGRESS = "EGRESS"
    INGRESS = "INGRESS"
    CONSENT_REQUEST_SENT = "CONSENT_REQUEST_SENT"
    CONSENT_REQUEST_RECEIVED = "CONSENT_REQUEST_RECEIVED"
    CONSENT_DECISION_SENT = "CONSENT_DECISION_SENT"
    CONSENT_DECISION_RECEIVED = "CONSENT_DECISION_RECEIVED"
    CONSENT_REVOKED = "CONSENT_REVOKED"
    RESHARE = "RESHARE"
    RECALL_SENT = "RECALL_SENT"
    RECALL_RECEIVED = "RECALL_RECEIVED"
    CORRECTION_SENT = "CORRECTION_SENT"
    CORRECTION_RECEIVED = "CORRECTION_RECEIVED"
    OFFICER_READ = "OFFICER_READ"
    CONNECTION_REFUSED = "CONNECTION_REFUSED"
    DELIVERY_CONFIRMED = "DELIVERY_CONFIRMED"
    NODE_STARTED = "NODE_STARTED"
    AGREEMENT_UPDATED = "AGREEMENT_UPDATED"


# --- encoding and hashing ---------------------------------------------------------------


def _utc(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("audit times must be timezone-aware")
    return at.astimezone(UTC)


def format_time(at: datetime) -> str:
    """RFC 3339 UTC with microseconds and ``Z``; rejects naive datetimes."""
    return _utc(at).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# One encoder for every entry: json.dumps with options builds a new encoder per call.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _canonical_json(value: object) -> str:
    return _CANONICAL.encode(value)


def _check_detail(detail: Mapping[str, DetailValue] | None) -> dict[str, DetailValue]:
    out: dict[str, DetailValue] = {}
    for key, value in (detail or {}).items():
        if not isinstance(key, str):
            raise TypeError(f"audit detail key {key!r} is not a string")
        if key.lower() in _FORBIDDEN_DETAIL_KEYS:
            raise ValueError(f"audit detail must not carry content (key {key!r})")
        items = value if isinstance(value, list) else [value]
        for item in items:
            if item is not None and not isinstance(item, str | int | float | bool):
                raise TypeError(f"audit detail {key!r} holds {type(item).__name__}")
        out[key] = list(value) if isinstance(value, list) else value
    return out


def _payload(row: AuditEntryRow, *, seq: int | None = None) -> dict[str, Any]:
    return {
        "seq": row.seq if seq is None else seq,
        "at": format_time(row.at),
        "event": row.event,
        "actor": row.actor,
        "peer": row.peer,
        "item_id": row.item_id,
        "item_version": row.item_version,
        "envelope_id": row.envelope_id,
        "allowed": row.allowed,
        "reason": row.reason,
        "rule": row.rule,
        "detail": json.loads(row.detail),
        "prev_hash": row.prev_hash,
    }


def entry_bytes(row: AuditEntryRow, *, seq: int | None = None) -> bytes:
    """The canonical bytes of ``row`` (all fields but ``entry_hash``); see module doc.

    ``seq`` overrides the row's own sequence number (used to recognise moved entries).
    """
    return _canonical_json(_payload(row, seq=seq)).encode("utf-8")


def merkle_root(leaf_hashes: Sequence[bytes]) -> bytes:
    """Merkle Tree Hash (RFC 9162 §2.1.1) over already-hashed leaves (``protocol.merkle``).

    The empty tree's root is ``SHA-256("")``.
    """
    return tree_hash(leaf_hashes)


def _hash_hex(row: AuditEntryRow, *, seq: int | None = None) -> str:
    return leaf_hash(entry_bytes(row, seq=seq)).hex()


# --- appending --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Entry:
    """One entry for :func:`append_many`: every field but the ones the writer assigns."""

    event: AuditEvent
    actor: str
    peer: str | None = None
    item_id: str | None = None
    item_version: int | None = None
    envelope_id: str | None = None
    allowed: bool | None = None
    reason: str | None = None
    rule: str | None = None
    detail: Mapping[str, DetailValue] | None = None


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
                raise RuntimeError("audit_head row missing: run node.storage.upgrade()")
            self._head = _Head(int(row.seq), str(row.entry_hash))
            self._txn = session.get_transaction()
        return self._head

    def _advance(self, head: _Head, seq: int, entry_hash: str) -> None:
        head.seq, head.entry_hash = seq, entry_hash
        self._session.connection().execute(_HEAD_ADVANCE, {"new_seq": seq, "new_hash": entry_hash})

    def append(
        self,
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
        """Add the next entry to the session (no commit) and advance the head."""
        head = self._current_head()
        row = AuditEntryRow(
            seq=head.seq + 1,
            at=_utc(now),
            event=str(AuditEvent(event)),
            actor=actor,
            peer=peer,
            item_id=item_id,
            item_version=item_version,
            envelope_id=envelope_id,
            allowed=allowed,
            reason=reason,
            rule=rule,
            detail=_canonical_json(_check_detail(detail)),
            prev_hash=head.entry_hash,
        )
        row.entry_hash = _hash_hex(row)
        self._session.add(row)
        self._advance(head, row.seq, row.entry_hash)
        return row

    def append_many(self, *, now: datetime, entries: Sequence[Entry]) -> None:
        """Append entries with one multi-row INSERT, executed at once (hot paths).

        Same encoding and chain as :meth:`append` (the canonical bytes are computed from
        the same values); the rows are not ORM objects in the session.
        """
        if not entries:
            return
        head = self._current_head()
        connection = self._session.connection()
        at = driver_time(connection.dialect, _utc(now))
        at_text = format_time(now)
        seq, prev_hash = head.seq, head.entry_hash
        rows: list[dict[str, Any]] = []
        for entry in entries:
            seq += 1
            detail = _check_detail(entry.detail)
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
            prev_hash = leaf_hash(_canonical_json(values).encode("utf-8")).hex()
            values["at"], values["detail"], values["entry_hash"] = at, _canonical_json(detail), prev_hash
            rows.append(values)
        # Straight to the driver on the session's connection: no ORM machinery, no autoflush.
        _AUDIT_INSERT.execute(connection, rows)
        self._advance(head, seq, prev_hash)


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
    return _writer(session).append(
        now=now,
        event=event,
        actor=actor,
        peer=peer,
        item_id=item_id,
        item_version=item_version,
        envelope_id=envelope_id,
        allowed=allowed,
        reason=reason,
        rule=rule,
        detail=detail,
    )


def append_many(session: Session, *, now: datetime, entries: Sequence[Entry]) -> None:
    """Append many entries to ``session`` at ``now`` without committing (one INSERT)."""
    _writer(session).append_many(now=now, entries=entries)


# --- verification -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuditProblem:
    """One defect found by :func:`verify`, naming the entry it concerns."""

    seq: int
    kind: ProblemKind
    message: str


@dataclass(frozen=True, slots=True)
class AuditReport:
    """Outcome of :func:`verify`; ``ok`` only when there are no problems."""

    ok: bool
    entries: int
    head_seq: int | None
    problems: tuple[AuditProblem, ...]


def _stream(session: Session, after_seq: int = 0) -> Iterator[AuditEntryRow]:
    stmt = (
        select(AuditEntryRow)
        .where(AuditEntryRow.seq > after_seq)
        .order_by(AuditEntryRow.seq)
        .execution_options(yield_per=_STREAM_BATCH)
    )
    # populate_existing: compare what is stored, not objects cached in this session. The
    # identity map holds rows weakly, so memory stays flat while we stream.
    yield from session.scalars(stmt.execution_options(populate_existing=True))


def _hash_matches(row: AuditEntryRow, *, seq: int | None = None) -> bool:
    try:
        return _hash_hex(row, seq=seq) == row.entry_hash
    except (ValueError, TypeError):  # e.g. detail no longer valid JSON
        return False


class _EntriesByHash:
    """Finds entries by ``entry_hash`` with streamed scans of two columns.

    There is deliberately no index on ``entry_hash``: it is random, so every append would
    dirty a page of it anywhere in the index, about half of what a commit wrote as the log
    grew (SPEC §11.4). Only a log that fails verification is searched, so an intact log
    costs no extra scan; a damaged one costs a scan per level of the move search.
    """

    def __init__(self, session: Session) -> None:
        self._session = session
        self._seq: dict[str, int | None] = {}

    def prefetch(self, rows: Sequence[AuditEntryRow]) -> None:
        """Locate the predecessors of ``rows``, and theirs while they moved too, level by level."""
        wanted = {row.prev_hash for row in rows}
        for _ in range(_MOVE_SEARCH_DEPTH + 1):  # the levels _original_seq looks up
            wanted -= {GENESIS_HASH, *self._seq}
            if not wanted:
                return
            found = self._scan(wanted)
            self._seq.update((entry_hash, found.get(entry_hash)) for entry_hash in wanted)
            wanted = {before.prev_hash for before in map(self._row, found.values()) if not _hash_matches(before)}

    def get(self, entry_hash: str) -> AuditEntryRow | None:
        """The entry whose hash is ``entry_hash``, if any."""
        if entry_hash not in self._seq:
            self._seq[entry_hash] = self._scan({entry_hash}).get(entry_hash)
        seq = self._seq[entry_hash]
        return None if seq is None else self._row(seq)

    def _scan(self, wanted: set[str]) -> dict[str, int]:
        stmt = select(AuditEntryRow.seq, AuditEntryRow.entry_hash).execution_options(yield_per=_STREAM_BATCH)
        found: dict[str, int] = {}
        for seq, entry_hash in self._session.execute(stmt):
            if entry_hash in wanted:
                found.setdefault(entry_hash, int(seq))
        return found

    def _row(self, seq: int) -> AuditEntryRow:
        row = self._session.get(AuditEntryRow, seq, populate_existing=True)
        assert row is not None  # just read by the scan, in the same transaction
        return row


def _original_seq(by_hash: _EntriesByHash, row: AuditEntryRow, depth: int = 0) -> int | None:
    """The seq at which ``row``'s contents were written, judged by its own hash.

    The predecessor is the entry whose ``entry_hash`` is ``row.prev_hash``; if that entry
    has moved too (adjacent swap) its own original seq is worked out the same way, a few
    levels deep.
    """
    if _hash_matches(row):
        return row.seq
    if depth > _MOVE_SEARCH_DEPTH:
        return None
    if row.prev_hash == GENESIS_HASH:
        origin: int | None = 1
    else:
        before = by_hash.get(row.prev_hash)
        if before is None:
            return None
        before_seq = _original_seq(by_hash, before, depth + 1)
        origin = None if before_seq is None else before_seq + 1
    if origin is not None and _hash_matches(row, seq=origin):
        return origin
    return None


def _unreadable(row: AuditEntryRow) -> AuditProblem | None:
    """A problem if ``row`` cannot even be hashed; None if it can (intact or not)."""
    try:
        _hash_hex(row)
    except (ValueError, TypeError) as exc:  # e.g. detail no longer valid JSON
        return AuditProblem(row.seq, "edited", f"entry {row.seq} is unreadable: {exc}")
    return None


def _classify(by_hash: _EntriesByHash, row: AuditEntryRow) -> AuditProblem:
    """A readable entry that does not match its hash: moved here, or edited."""
    origin = _original_seq(by_hash, row)
    if origin is not None and origin != row.seq:
        return AuditProblem(
            row.seq,
            "reordered",
            f"entry {row.seq} holds the contents of entry {origin} (rows reordered)",
        )
    return AuditProblem(row.seq, "edited", f"entry {row.seq} does not match its hash (contents edited)")


def _span(first: int, last: int) -> str:
    return f"entry {first}" if first == last else f"entries {first}..{last}"


def _check_head(
    head_seq: int | None, head_hash: str | None, last_seq: int, last_hash: str, last_flagged: bool
) -> AuditProblem | None:
    if head_seq is None:
        return AuditProblem(0, "head_mismatch", "audit_head row is missing")
    if head_seq > last_seq:
        span = _span(last_seq + 1, head_seq)
        return AuditProblem(last_seq + 1, "truncated", f"{span} missing at the end: head records seq {head_seq}")
    if head_seq < last_seq:
        return AuditProblem(
            head_seq + 1,
            "head_mismatch",
            f"entries after {head_seq} (up to {last_seq}) are not recorded in the head",
        )
    # A flagged last entry already explains a hash mismatch; do not report it twice.
    if head_hash != last_hash and not last_flagged:
        return AuditProblem(last_seq, "head_mismatch", f"head hash does not match entry {last_seq}")
    return None


def verify(session: Session) -> AuditReport:
    """Check the whole chain and the head; stream entries in seq order.

    Reports each edited entry (hash mismatch), removed entries (gap in seq), reordered
    entries (an entry holding another position's contents), truncation (head ahead of
    the last entry) and a head that disagrees with the last entry. A broken link whose
    cause was already reported (gap, edited or moved predecessor) is not reported twice.
    """
    head = session.get(AuditHead, 1, populate_existing=True)
    head_seq = None if head is None else head.seq
    head_hash = None if head is None else head.entry_hash
    # An entry that does not match its hash is classified (moved or edited) after the
    # pass, when every such entry is known and their predecessors are found together.
    problems: list[AuditProblem | AuditEntryRow] = []
    mismatched: list[AuditEntryRow] = []
    expected, prev_hash, prev_flagged, count = 1, GENESIS_HASH, False, 0
    for row in _stream(session):
        count += 1
        gap = row.seq > expected
        if gap:
            span = _span(expected, row.seq - 1)
            problems.append(AuditProblem(expected, "removed", f"{span} removed"))
        flagged = not _hash_matches(row)
        if flagged:
            unreadable = _unreadable(row)
            problems.append(unreadable or row)
            if unreadable is None:
                mismatched.append(row)
        elif row.prev_hash != prev_hash and not gap and not prev_flagged:
            # Both rows hash correctly but do not link: the predecessor was replaced and
            # re-hashed.
            problems.append(
                AuditProblem(
                    row.seq - 1,
                    "edited",
                    f"entry {row.seq - 1} was rewritten: entry {row.seq} does not link to it",
                )
            )
        expected, prev_hash, prev_flagged = row.seq + 1, row.entry_hash, flagged
    by_hash = _EntriesByHash(session)
    by_hash.prefetch(mismatched)
    found = [p if isinstance(p, AuditProblem) else _classify(by_hash, p) for p in problems]
    head_problem = _check_head(head_seq, head_hash, expected - 1, prev_hash, prev_flagged)
    if head_problem is not None:
        found.append(head_problem)
    return AuditReport(ok=not found, entries=count, head_seq=head_seq, problems=tuple(found))


# --- reading and export -----------------------------------------------------------------


def list_entries(
    session: Session,
    after_seq: int = 0,
    limit: int = 100,
    event: AuditEvent | str | None = None,
) -> list[AuditEntryRow]:
    """Up to ``limit`` entries with ``seq > after_seq`` in seq order (keyset paging)."""
    stmt = select(AuditEntryRow).where(AuditEntryRow.seq > after_seq)
    if event is not None:
        stmt = stmt.where(AuditEntryRow.event == str(AuditEvent(event)))
    return list(session.scalars(stmt.order_by(AuditEntryRow.seq).limit(limit)))


def _record(row: AuditEntryRow) -> dict[str, Any]:
    record = _payload(row)
    record["entry_hash"] = row.entry_hash
    return {name: record[name] for name in FIELDS}


def export_jsonl(session: Session, out: TextIO) -> int:
    """Write one canonical JSON object per entry (fields in :data:`FIELDS`); return count."""
    count = 0
    for row in _stream(session):
        out.write(_canonical_json(_record(row)))
        out.write("\n")
        count += 1
    return count


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return _canonical_json(value)
    return str(value)


def export_csv(session: Session, out: TextIO) -> int:
    """Write a header and one row per entry; ``detail`` as JSON text; return count."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(FIELDS)
    count = 0
    for row in _stream(session):
        record = _record(row)
        writer.writerow([_csv_cell(record[name]) for name in FIELDS])
        count += 1
    return count
