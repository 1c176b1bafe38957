"""Verifying the audit log's hash chain and head (SPEC §11.4)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, TypeAlias

from sqlalchemy import select
from sqlalchemy.orm import Session

from node.audit.entries import GENESIS_HASH, STREAM_BATCH, hash_hex, hash_matches, stream_rows
from node.store import AuditEntryRow, AuditHead

__all__ = ["AuditProblem", "AuditReport", "ProblemKind", "verify"]

_MOVE_SEARCH_DEPTH = 4
ProblemKind: TypeAlias = Literal["edited", "removed", "reordered", "truncated", "head_mismatch"]


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
            wanted = {before.prev_hash for before in map(self._row, found.values()) if not hash_matches(before)}

    def get(self, entry_hash: str) -> AuditEntryRow | None:
        """The entry whose hash is ``entry_hash``, if any."""
        if entry_hash not in self._seq:
            self._seq[entry_hash] = self._scan({entry_hash}).get(entry_hash)
        seq = self._seq[entry_hash]
        return None if seq is None else self._row(seq)

    def _scan(self, wanted: set[str]) -> dict[str, int]:
        stmt = select(AuditEntryRow.seq, AuditEntryRow.entry_hash).execution_options(yield_per=STREAM_BATCH)
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
    if hash_matches(row):
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
    if origin is not None and hash_matches(row, seq=origin):
        return origin
    return None


def _unreadable(row: AuditEntryRow) -> AuditProblem | None:
    """A problem if ``row`` cannot even be hashed; None if it can (intact or not)."""
    try:
        hash_hex(row)
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
    for row in stream_rows(session):
        count += 1
        gap = row.seq > expected
        if gap:
            span = _span(expected, row.seq - 1)
            problems.append(AuditProblem(expected, "removed", f"{span} removed"))
        flagged = not hash_matches(row)
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
