"""Verifying the audit log: its hash chain, its Merkle tree, its checkpoints and what others hold (SPEC §11.4, §11.10).

One streamed pass (``node.audit.scan``) checks every entry against its hash and its
link to the one before, and grows the log's Merkle tree from the stored leaf hashes. At
each size where something outside the log's rows commits to it, the pass compares:

- the node's own signed checkpoints (one per commit that appended, SPEC §11.10.2): every
  entry after the last one was written by something other than the node;
- ``Pin``s: checkpoints of this log that peers witnessed, and receipts in which this
  node's signed word names the leaf hash of its INGRESS entry (SPEC §11.3).

A rewrite that re-chains the entries after it passes the chain check but not these: the
first altered entry lies after the last size that still agrees and at or before the
first that does not, and is named when those are neighbours.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from sqlalchemy import Connection, Engine, select
from sqlalchemy.orm import Session

from node.audit.entries import GENESIS_HASH, STREAM_BATCH, hash_hex, hash_matches
from node.audit.evidence import OWN, Comparisons, Outcome, own_checkpoints, signature_checker
from node.audit.scan import CHUNK, Chunk, disagreeing, mismatched, scan_chunks
from node.store import AuditEntryRow, AuditHead
from protocol.merkle import Frontier
from protocol.roster import Roster

__all__ = ["AuditProblem", "AuditReport", "Pin", "ProblemKind", "verify"]

_MOVE_SEARCH_DEPTH = 4
ProblemKind: TypeAlias = Literal[
    "edited",
    "removed",
    "reordered",
    "truncated",
    "head_mismatch",
    "not_checkpointed",
    "checkpoint_mismatch",
    "witness_mismatch",
]


@dataclass(frozen=True, slots=True)
class AuditProblem:
    """One defect found by :func:`verify`, naming the entry it concerns."""

    seq: int
    kind: ProblemKind
    message: str


@dataclass(frozen=True, slots=True)
class Pin:
    """Something outside the log's rows that commits to its first ``size`` entries.

    Either the Merkle ``root`` of those entries (a checkpoint a peer witnessed) or the
    ``leaf`` hash of entry ``size`` (a receipt naming its INGRESS entry), which through
    the hash chain commits to every entry before it too. ``source`` says who holds it.
    """

    size: int
    source: str
    root: bytes | None = None
    leaf: str | None = None


@dataclass(frozen=True, slots=True)
class AuditReport:
    """Outcome of :func:`verify`; ``ok`` only when there are no problems."""

    ok: bool
    entries: int
    head_seq: int | None
    problems: tuple[AuditProblem, ...]
    #: The latest checkpoint the node signed whose signature verified (None: none, or not checked).
    checkpoint: int | None = None
    #: How many of the node's own checkpoints and outside pins the log was compared with.
    compared: int = 0
    #: The first entry that is not as the node wrote it, as far as the evidence says.
    first_altered: int | None = None
    #: The roots of the log's Merkle tree at its size (hex), as recomputed.
    root: str = field(default="")


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


def _row(session: Session, seq: int) -> AuditEntryRow:
    row = session.get(AuditEntryRow, seq, populate_existing=True)
    assert row is not None  # just read by the scan, in the same transaction
    return row


def _leaf(entry_hash: str) -> bytes:
    try:
        leaf = bytes.fromhex(entry_hash)
    except ValueError:
        leaf = b""
    return leaf if len(leaf) == 32 else bytes(32)  # a mangled hash still takes its place in the tree


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


class _Tree:
    """The log's Merkle tree as the pass grows it, compared wherever something commits to it."""

    def __init__(self, comparisons: Comparisons) -> None:
        self.frontier = Frontier()
        self._comparisons = comparisons
        self._stops = comparisons.sizes()
        self._next = 0  # index of the next size to compare at
        while self._pending(0):
            comparisons.at(self.frontier, None)
            self._next += 1

    def _pending(self, upto: int) -> bool:
        """Whether the next size to compare at is at most ``upto``."""
        return self._next < len(self._stops) and self._stops[self._next] <= upto

    def grow(self, chunk: Chunk) -> None:
        """Add a chunk's leaves; an aligned chunk of ``CHUNK`` is hashed a level at a time."""
        leaves, base, compare = chunk.leaves, self.frontier.size, self._comparisons.at
        if len(leaves) == CHUNK and base % CHUNK == 0:
            before = self.frontier.copy()
            levels = self.frontier.extend_aligned(leaves)
            while self._pending(base + CHUNK - 1):
                offset = self._stops[self._next] - base
                compare(Frontier.inside(before, levels, offset), chunk.hashes[offset - 1])
                self._next += 1
            if self._pending(base + CHUNK):
                compare(self.frontier, chunk.hashes[-1])
                self._next += 1
            return
        done = 0
        while self._pending(base + len(leaves)):
            upto = self._stops[self._next] - base
            self.frontier.extend(leaves[done:upto])
            done = upto
            compare(self.frontier, chunk.hashes[upto - 1])
            self._next += 1
        self.frontier.extend(leaves[done:])


class _DatabaseChecks:
    """What the database finds alone: beside the pass when the log is read-only (a connection
    and a thread each), else after it on the session's connection.

    Always ``scan.disagreeing`` (columns that no longer say what the bytes say). On
    PostgreSQL read-only, ``scan.mismatched`` too (bytes that do not hash to the entry's
    hash): the server's hashing then leaves the pass (``hashes``), which streams only the
    links, and the server's work runs on both cores while this process grows the tree. A
    read-only database has no uncommitted rows another connection could miss.
    """

    def __init__(self, session: Session) -> None:
        self._session = session
        self._threads: list[threading.Thread] = []
        self._found: dict[str, list[int]] = {}
        self._errors: list[BaseException] = []
        #: Whether these checks include the hashes, so the pass need not check them.
        self.hashes = False
        engine = session.get_bind()
        if isinstance(engine, Engine) and _read_only(session):
            self.hashes = engine.dialect.name == "postgresql"
            checks = {"disagreeing": disagreeing} | ({"mismatched": mismatched} if self.hashes else {})
            for name, check in checks.items():  # a connection each: the server runs them side by side
                thread = threading.Thread(target=self._run, args=(engine, name, check), daemon=True)
                thread.start()
                self._threads.append(thread)

    def _run(self, engine: Engine, name: str, check: Callable[[Connection], list[int]]) -> None:
        try:
            with engine.connect() as connection:
                self._found[name] = check(connection)
        except BaseException as exc:
            self._errors.append(exc)

    def result(self) -> tuple[list[int], list[int]]:
        """The seqs of entries whose columns disagree, and of those whose bytes do not hash (``hashes``)."""
        if not self._threads:
            return disagreeing(self._session.connection()), []
        for thread in self._threads:
            thread.join()
        if self._errors:
            raise self._errors[0]
        return self._found.get("disagreeing", []), self._found.get("mismatched", [])


def _read_only(session: Session) -> bool:
    """Whether the session's database refuses writes (``node.store.make_reader``)."""
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        return bool(connection.exec_driver_sql("PRAGMA query_only").scalar())
    return str(connection.exec_driver_sql("SHOW transaction_read_only").scalar()) == "on"


def verify(
    session: Session, *, roster: Roster | None = None, member: str | None = None, pins: Sequence[Pin] = ()
) -> AuditReport:
    """Check the whole log in one streamed pass; see the module doc.

    Reports each edited entry (hash mismatch), removed entries (gap in seq), reordered
    entries (an entry holding another position's contents), truncation (head ahead of
    the last entry), a head that disagrees with the last entry, and, given the roster
    and the node's member id, entries no signed checkpoint of the node covers and sizes
    at which the log no longer agrees with a checkpoint or a pin. A broken link whose
    cause was already reported (gap, edited or moved predecessor) is not reported twice.
    """
    head = session.get(AuditHead, 1, populate_existing=True)
    head_seq = None if head is None else head.seq
    head_hash = None if head is None else head.entry_hash
    signed = signature_checker(session, roster, member) if roster is not None and member is not None else None
    own = own_checkpoints(session) if signed is not None else []
    comparisons = Comparisons(own, [(p.size, p.root, p.leaf, p.source) for p in pins])
    # Columns that no longer say what their entry's bytes say (and, on PostgreSQL, bytes
    # that do not hash): found by the database, beside the pass when the log is opened
    # read-only (a second connection sees the same log).
    checks = _DatabaseChecks(session)
    # An entry that does not match its hash is classified (moved or edited) after the
    # pass, when every such entry is known and their predecessors are found together.
    problems: list[AuditProblem | int] = []
    mismatched: list[int] = []
    #: Broken links, by the entry whose link broke (reported as its predecessor rewritten).
    links: dict[int, AuditProblem] = {}
    expected, prev_hash, prev_flagged, count = 1, GENESIS_HASH, False, 0
    tree = _Tree(comparisons)
    for chunk in scan_chunks(session, hashed=not checks.hashes):
        n = len(chunk.seqs)
        if (
            not chunk.bad
            and chunk.seqs == tuple(range(expected, expected + n))
            and chunk.prevs[0] == prev_hash
            and chunk.prevs[1:] == chunk.hashes[:-1]
        ):  # the common case, checked a chunk at a time
            expected, prev_hash, prev_flagged = expected + n, chunk.hashes[-1], False
        else:
            bad = set(chunk.bad)
            for i, seq in enumerate(chunk.seqs):
                gap = seq > expected
                if gap:
                    span = _span(expected, seq - 1)
                    problems.append(AuditProblem(expected, "removed", f"{span} removed"))
                flagged = i in bad
                if flagged:
                    problems.append(seq)
                    mismatched.append(seq)
                elif chunk.prevs[i] != prev_hash and not gap and not prev_flagged:
                    # Both entries hash correctly but do not link: the predecessor was
                    # replaced and re-hashed.
                    message = f"entry {seq - 1} was rewritten: entry {seq} does not link to it"
                    links[seq] = AuditProblem(seq - 1, "edited", message)
                expected, prev_hash, prev_flagged = seq + 1, chunk.hashes[i], flagged
        tree.grow(chunk)
        count += n
    # Entries whose columns were changed while their bytes were not (edited in place, or
    # moved with them), and those the database found not to match their hash: a link that
    # broke next to one is explained by it, not reported apart (as in the pass).
    disagree, unhashed = checks.result()
    for seq in sorted(set(disagree) | set(unhashed)):
        links.pop(seq, None)
        links.pop(seq + 1, None)
        if seq not in mismatched:
            problems.append(seq)
            mismatched.append(seq)
    problems += links.values()
    by_hash = _EntriesByHash(session)
    by_hash.prefetch([_row(session, seq) for seq in mismatched])
    found = [p if isinstance(p, AuditProblem) else _classify(by_hash, _row(session, p)) for p in problems]
    last_flagged = prev_flagged or (expected - 1) in mismatched
    head_problem = _check_head(head_seq, head_hash, expected - 1, prev_hash, last_flagged)
    if head_problem is not None:
        found.append(head_problem)
    latest = _latest_signed([size for size, _ in own], signed)
    found += _judge(comparisons.outcomes + comparisons.beyond(count), count, latest, signed)
    first = min((p.seq for p in found), default=None)
    return AuditReport(
        ok=not found,
        entries=count,
        head_seq=head_seq,
        problems=tuple(found),
        checkpoint=latest,
        compared=len(comparisons.outcomes),
        first_altered=first,
        root=tree.frontier.root().hex(),
    )


#: How many checkpoint signatures one question may try before giving up (rows an insider added).
_SIGNATURE_TRIES = 16


def _latest_signed(sizes: Sequence[int], signed: Callable[[int], bool] | None) -> int | None:
    """The largest size whose checkpoint row carries the node's valid signature."""
    if signed is None:
        return None
    return next((size for size in reversed(sizes[-_SIGNATURE_TRIES:]) if signed(size)), None)


def _judge(
    outcomes: Sequence[Outcome], count: int, latest: int | None, signed: Callable[[int], bool] | None
) -> list[AuditProblem]:
    """Problems from the comparisons: the first disagreement, bounded by the last agreement before it."""
    problems: list[AuditProblem] = []
    if latest is not None and count > latest:
        problems.append(
            AuditProblem(
                latest + 1,
                "not_checkpointed",
                f"{_span(latest + 1, count)} covered by no checkpoint the node signed (written by something else)",
            )
        )

    def counts(outcome: Outcome) -> bool:  # a checkpoint row is evidence only with the node's signature
        return not outcome.own or (signed is not None and signed(outcome.size))

    failures = sorted((o for o in outcomes if not o.agrees), key=lambda o: o.size)
    forged = [o for o in failures if o.own and not counts(o)][:_SIGNATURE_TRIES]
    for outcome in forged:
        problems.append(
            AuditProblem(
                outcome.size,
                "checkpoint_mismatch",
                f"the checkpoint row at size {outcome.size} is not signed by the node (written by something else)",
            )
        )
    failure = next((o for o in failures if o not in forged and (not o.own or counts(o))), None)
    if failure is None:
        return problems
    agreeing = sorted((o.size for o in outcomes if o.agrees and o.size < failure.size and not o.own), reverse=True)
    own_agreeing = [o.size for o in outcomes if o.agrees and o.size < failure.size and o.own]
    trusted_own = next(
        (size for size in sorted(own_agreeing, reverse=True)[:_SIGNATURE_TRIES] if signed and signed(size)), 0
    )
    after = max([trusted_own, *agreeing[:1]])
    if failure.size > count:
        first, what = count + 1, f"{_span(count + 1, failure.size)} removed: {failure.source} covers {failure.size}"
        problems.append(AuditProblem(first, "truncated", what))
        return problems
    first = after + 1
    where = f"entry {first}" if first == failure.size else f"one of entries {first}..{failure.size}"
    kind: ProblemKind = "checkpoint_mismatch" if failure.source == OWN else "witness_mismatch"
    problems.append(
        AuditProblem(
            first,
            kind,
            f"the log no longer agrees with {failure.source} at size {failure.size}: "
            f"the first altered entry is {where}",
        )
    )
    return problems
