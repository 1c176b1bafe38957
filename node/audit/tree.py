"""The audit log as a Merkle tree: stored subtrees, the frontier, checkpoints (SPEC §11.10).

The leaves are the entries' ``entry_hash`` values (RFC 9162 leaf hashes, SPEC §11.4), in
``seq`` order: entry ``seq`` is leaf ``seq - 1``. Level 0 is the ``audit_log`` table
itself; the roots of the perfect subtrees at levels 8, 16, 24, … are stored in
``audit_subtrees`` as the writer completes them, so any proof or root costs a bounded
read (``node_hashes``). A node keeps its log's frontier between transactions
(``LogTree``) and signs a checkpoint in every commit that grew the log (``seal``, kept
as ``node.audit.checkpoints`` says): an entry no checkpoint of the node covers was not
written by the node.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from node.audit.checkpoints import latest_checkpoint
from node.audit.entries import GENESIS_HASH, STREAM_BATCH
from node.audit.scan import disagreeing, scan
from node.errors import LogTamperedError
from node.store import AuditEntryRow, AuditHead, AuditSubtree
from protocol.checkpoint import sign_checkpoint, verify_own_checkpoint
from protocol.errors import RemoteProtocolError
from protocol.keys import PublicSigningKey, SigningKey
from protocol.merkle import Frontier, NodeHash, nodes_from_levels

__all__ = [
    "STORED_EVERY",
    "CheckpointSigner",
    "LogTree",
    "completed_rows",
    "node_hashes",
    "open_log",
]

#: Subtree roots are stored at every level that is a multiple of this (level 0: the entries).
STORED_EVERY = 8


def node_hashes(session: Session) -> NodeHash:
    """Subtree roots of the log as stored: entries for level 0, ``audit_subtrees`` above."""

    def fetch(level: int, first: int, count: int) -> list[bytes]:
        if level == 0:  # leaf i is entry i + 1
            rows = session.execute(
                select(AuditEntryRow.entry_hash)
                .where(AuditEntryRow.seq > first, AuditEntryRow.seq <= first + count)
                .order_by(AuditEntryRow.seq)
            ).scalars()
            return [bytes.fromhex(h) for h in rows]
        return list(
            session.execute(
                select(AuditSubtree.hash)
                .where(AuditSubtree.level == level, AuditSubtree.idx >= first, AuditSubtree.idx < first + count)
                .order_by(AuditSubtree.idx)
            ).scalars()
        )

    return nodes_from_levels(fetch, STORED_EVERY)


def completed_rows(completed: tuple[tuple[int, int, bytes], ...]) -> list[dict[str, object]]:
    """The subtrees a leaf completed that are kept (levels that are multiples of ``STORED_EVERY``)."""
    return [
        {"level": level, "idx": index, "hash": root} for level, index, root in completed if level % STORED_EVERY == 0
    ]


@dataclass(frozen=True)
class CheckpointSigner:
    """Who signs this log's checkpoints: the node's key, its federation and member id."""

    key: SigningKey
    federation: str
    member_id: str

    def sign(self, frontier: Frontier, now: datetime) -> bytes:
        """The signed checkpoint note of the tree ``frontier`` describes."""
        return sign_checkpoint(
            self.key,
            federation=self.federation,
            member_id=self.member_id,
            size=frontier.size,
            root=frontier.root(),
            now=now,
        )


class LogTree:
    """The node's own log between transactions: the frontier at the committed size and the last hash.

    The audit writer starts each transaction from a copy (``working``) and the runtime
    keeps it only once the transaction committed (``committed``), so a rolled-back job
    leaves no trace. Before appending, the writer checks that the database's head is the
    one this tree ended at: anything else means someone else wrote to the log.
    """

    def __init__(self, frontier: Frontier, last_hash: str, signer: CheckpointSigner | None) -> None:
        self._frontier = frontier
        self.last_hash = last_hash
        self.signer = signer
        #: Checkpoints signed and committed but not yet in the history (``node.audit.checkpoints``).
        self.unkept: tuple[dict[str, object], ...] = ()

    @classmethod
    def load(cls, session: Session, signer: CheckpointSigner | None = None) -> LogTree:
        """The tree of the log as stored (the head row's size), from stored subtrees and entries."""
        head = session.execute(select(AuditHead.seq, AuditHead.entry_hash).where(AuditHead.id == 1)).one()
        return cls(Frontier.from_nodes(int(head.seq), node_hashes(session)), str(head.entry_hash), signer)

    @property
    def size(self) -> int:
        """Entries in the committed log."""
        return self._frontier.size

    def working(self) -> Frontier:
        """A copy for one transaction to extend."""
        return self._frontier.copy()

    def committed(self, frontier: Frontier, last_hash: str, unkept: tuple[dict[str, object], ...]) -> None:
        """The transaction that extended ``frontier`` (leaving ``unkept`` for the history) committed."""
        self._frontier, self.last_hash, self.unkept = frontier, last_hash, unkept


def open_log(session: Session, signer: CheckpointSigner, keys: Sequence[PublicSigningKey]) -> LogTree:
    """The node's own log at start, checked before anything is appended (SPEC §11.10.6).

    From the first entry: entries numbered without gaps, each linked to the one before,
    and the Merkle root at the size of the node's latest signed checkpoint equal to that
    checkpoint's; no entry after that checkpoint (every commit that appends signs one,
    so a later entry was written by something else); the head row on the last entry.
    The entries appended since the node last started are also re-hashed from their
    contents. A log with no checkpoint yet (a new node, or one from before checkpoints)
    is taken as it is; its first commit signs one. Raises ``LogTamperedError`` naming the
    first entry that is not as the node left it. ``keys`` are every signing key the node
    held: its checkpoints verify with the one that signed them, whatever the roster says
    of it now (a rotation, a revocation, SPEC §5.4.3).
    """
    member = signer.member_id
    latest = _latest_signed_checkpoint(session, signer.federation, member, keys)
    restarted = session.scalar(
        select(AuditEntryRow.seq).where(AuditEntryRow.event == "NODE_STARTED").order_by(AuditEntryRow.seq.desc())
    )
    frontier, expected, prev = Frontier(), 1, GENESIS_HASH
    for seq, prev_hash, entry_hash in session.execute(
        select(AuditEntryRow.seq, AuditEntryRow.prev_hash, AuditEntryRow.entry_hash)
        .order_by(AuditEntryRow.seq)
        .execution_options(yield_per=STREAM_BATCH)
    ):
        if seq != expected:
            raise LogTamperedError(f"audit log: entry {expected} is missing (the next entry is {seq})")
        if prev_hash != prev:
            raise LogTamperedError(f"audit log: entry {seq} does not link to entry {seq - 1}")
        frontier.append(bytes.fromhex(entry_hash))
        if latest is not None and frontier.size == latest[0] and frontier.root() != latest[1]:
            raise LogTamperedError(
                f"audit log: the first {latest[0]} entries no longer match the checkpoint the node signed"
            )
        expected, prev = seq + 1, entry_hash
    size = expected - 1
    if latest is not None and size > latest[0]:
        raise LogTamperedError(
            f"audit log: entries {latest[0] + 1}..{size} are covered by no checkpoint this node signed"
        )
    if latest is not None and size < latest[0]:
        raise LogTamperedError(f"audit log: entries {size + 1}..{latest[0]} are missing (truncated)")
    head = session.execute(select(AuditHead.seq, AuditHead.entry_hash).where(AuditHead.id == 1)).one()
    if (int(head.seq), str(head.entry_hash)) != (size, prev):
        raise LogTamperedError(f"audit log: the head row does not name entry {size}")
    # What the last run appended, from its contents; closed at once on the first bad entry,
    # so the scan's reader (node.audit.scan) gives the connection back before anything else.
    with closing(scan(session, after_seq=restarted or 0)) as appended:
        for entry in appended:
            if not entry.intact:
                raise LogTamperedError(f"audit log: entry {entry.seq} does not match its hash (contents edited)")
    edited = disagreeing(session.connection(), after_seq=restarted or 0)
    if edited:
        raise LogTamperedError(f"audit log: entry {edited[0]}'s fields no longer say what its hashed bytes say")
    return LogTree(frontier, prev, signer)


def _latest_signed_checkpoint(
    session: Session, federation: str, member: str, keys: Sequence[PublicSigningKey]
) -> tuple[int, bytes] | None:
    row = latest_checkpoint(session)
    if row is None:
        return None
    try:
        verified = verify_own_checkpoint(row.note, federation=federation, member_id=member, keys=keys)
    except RemoteProtocolError as exc:
        raise LogTamperedError(f"audit log: the latest checkpoint is not signed by {member}: {exc}") from exc
    if (verified.checkpoint.size, verified.checkpoint.root) != (row.size, row.root):
        raise LogTamperedError(f"audit log: the latest checkpoint (size {row.size}) is not the one {member} signed")
    return verified.checkpoint.size, verified.checkpoint.root
