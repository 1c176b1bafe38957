"""Evidence and proofs over the wire (SPEC §11.10.9).

A member may ask a node for what it holds that commits to the member's own log: the
checkpoints of it the node co-signed as a witness, and the receipts and notice
acknowledgements the member signed naming its entries (``held_about``). The member's
auditor checks its log against them without reading the node's database. A node tells a
member only about that member's log.

Any member may ask a node for an inclusion proof of one of its entries, or a consistency
proof between two sizes of its log, up to its latest signed checkpoint (``prove``): a
holder of the node's receipt checks that the entry the receipt names is in the tree it
co-signed.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from node.audit.checkpoints import checkpoint_at, latest_checkpoint
from node.audit.tree import node_hashes
from node.errors import FailedPreconditionError, InvalidRequestError
from node.services.state import NodeState
from node.store import AuditEntryRow, NoticeAckRow, OutboxEntry, WitnessedCheckpoint
from protocol.merkle import consistency_proof, inclusion_proof
from protocol.statements import Signed

__all__ = ["MAX_EVIDENCE", "Held", "Proof", "held_about", "prove"]

#: At most this many items of each kind in one answer.
MAX_EVIDENCE = 100_000


@dataclass(frozen=True)
class Held:
    """What this node holds about one member's log, newest first."""

    witnessed: list[bytes]
    statements: list[Signed]


@dataclass(frozen=True)
class Proof:
    """An inclusion proof (with the leaf) or a consistency proof of this node's log."""

    hashes: list[bytes]
    leaf: bytes
    #: This node's signed checkpoint of the proof's size, if it signed one.
    checkpoint: bytes


def held_about(session: Session, state: NodeState, *, member: str, limit: int) -> Held:
    """Checkpoints of ``member``'s log this node co-signed, and statements ``member`` signed naming its entries."""
    if not 1 <= limit <= MAX_EVIDENCE:
        raise InvalidRequestError(f"limit must be 1 to {MAX_EVIDENCE}")
    witnessed = session.scalars(
        select(WitnessedCheckpoint.note)
        .where(WitnessedCheckpoint.member == member)
        .order_by(WitnessedCheckpoint.size.desc())
        .limit(limit)
    )
    receipts = session.scalars(
        select(OutboxEntry.receipt)
        .where(OutboxEntry.recipient == member, OutboxEntry.receipt.is_not(None))
        .order_by(OutboxEntry.updated_at.desc())
        .limit(limit)
    )
    acks = session.scalars(
        select(NoticeAckRow.statement)
        .where(NoticeAckRow.holder == member)
        .order_by(NoticeAckRow.received_at.desc())
        .limit(limit)
    )
    statements = [Signed.model_validate_json(blob) for blob in [*receipts, *acks] if blob]
    return Held([bytes(note) for note in witnessed], statements)


def prove(session: Session, state: NodeState, *, size: int, index: int, consistency: bool) -> Proof:
    """A proof of this node's log at ``size`` (at most its latest signed checkpoint's)."""
    newest = latest_checkpoint(session)
    latest = 0 if newest is None else newest.size
    if not 1 <= size <= latest:
        raise FailedPreconditionError(f"{state.me} signed no checkpoint as large as {size} (its latest: {latest})")
    nodes = node_hashes(session)
    kept = checkpoint_at(session, size)
    checkpoint = b"" if kept is None else kept.note
    if consistency:
        if not 1 <= index <= size:
            raise InvalidRequestError(f"a consistency proof runs from a size of 1 to {size}")
        return Proof(consistency_proof(index, size, nodes), b"", checkpoint)
    if not 0 <= index < size:
        raise InvalidRequestError(f"leaf {index} is not in a tree of {size}")
    leaf = session.scalar(select(AuditEntryRow.entry_hash).where(AuditEntryRow.seq == index + 1))
    return Proof(inclusion_proof(index, size, nodes), bytes.fromhex(leaf or "00" * 32), checkpoint)
