"""Witnessing: peers co-sign each other's audit-log checkpoints (SPEC §11.10.5, §11.10.6).

As a log owner, a node asks each peer to witness its latest checkpoint with a
consistency proof from the last one that peer co-signed (``request_witnessing``) and keeps
the cosignature it gets back (``record_cosignature``). As a witness, it checks that the
checkpoint extends what it saw of that peer's log (``witness_checkpoint``): a fork or a
rollback is refused and kept as evidence. Both sides audit every exchange.

Witnessing is itself audited, so each exchange adds entries on both sides; those
entries alone do not start a new exchange (``request_witnessing`` returns None), they are
witnessed with the next checkpoint that covers other entries.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from node import audit
from node.audit import AuditEvent
from node.audit.checkpoints import keep_checkpoint, latest_checkpoint
from node.audit.tree import node_hashes
from node.services.state import NodeState, record_with_peer
from node.store import AuditCosignature, AuditEntryRow, WitnessedCheckpoint
from protocol.checkpoint import (
    Witnessed,
    WitnessReason,
    accept_cosignature,
    parse_checkpoint,
    witness,
)
from protocol.checkpoint import witness_request as build_witness_request
from protocol.errors import RemoteProtocolError
from protocol.merkle import consistency_proof

__all__ = [
    "WITNESS_EVENTS",
    "WitnessAnswer",
    "record_cosignature",
    "request_witnessing",
    "witness_checkpoint",
]

#: Entries the witnessing itself appends: alone, they start no new exchange.
WITNESS_EVENTS = (AuditEvent.CHECKPOINT_WITNESSED, AuditEvent.COSIGNATURE_RECEIVED)


@dataclass(frozen=True)
class WitnessAnswer:
    """A witness's answer: its cosignature lines, or why it did not co-sign."""

    cosigned: bool
    reason: str
    detail: str
    cosignature: bytes = b""
    #: The size of the caller's log the witness holds, when it knows one.
    witnessed_size: int | None = None


# --- as the witness -------------------------------------------------------------------------


def _held(session: Session, member: str, origin: str) -> Witnessed | None:
    row = session.scalars(
        select(WitnessedCheckpoint)
        .where(WitnessedCheckpoint.member == member)
        .order_by(WitnessedCheckpoint.size.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    return Witnessed(origin, row.size, bytes(row.root), row.log_time, bytes(row.note))


def witness_checkpoint(
    session: Session, state: NodeState, *, request: bytes, peer: str, now: datetime
) -> WitnessAnswer:
    """Decide on ``peer``'s checkpoint and co-sign it if it extends what this node saw (SPEC §11.10.5).

    The held state is read and the new one stored in the same job of the group commit,
    so two requests for one log cannot race. Only the log's own node may ask.
    """
    decision = witness(
        request,
        roster=state.roster,
        witness_id=state.me,
        key=state.signing_key,
        last=lambda origin: _held(session, peer, origin),
        now=now,
        max_future=state.window.max_future_skew,
    )
    reason, detail, accepted = decision.reason.value, decision.detail, decision.accepted
    if decision.log_member is not None and decision.log_member != peer:  # another member's log: not its to ask
        reason, detail, accepted = (
            WitnessReason.CHECKPOINT_UNKNOWN_LOG.value,
            f"{peer} sent {decision.log_member}'s",
            False,
        )
    checkpoint = decision.checkpoint
    if accepted and decision.keep is not None:
        keep = decision.keep
        session.add(
            WitnessedCheckpoint(
                member=peer, size=keep.size, root=keep.root, log_time=keep.log_time, note=keep.note, witnessed_at=now
            )
        )
    fields: dict[str, audit.DetailValue] = {"detail": detail}
    if checkpoint is not None:
        fields |= {"size": checkpoint.size, "root": checkpoint.root.hex()}
    if decision.witnessed_size is not None:
        fields["witnessed_size"] = decision.witnessed_size
    if decision.evidence is not None:  # two notes the log signed that contradict each other
        held, received = decision.evidence
        fields |= {"held_note": held.decode(errors="replace"), "received_note": received.decode(errors="replace")}
    record_with_peer(
        session,
        state,
        event=AuditEvent.CHECKPOINT_WITNESSED,
        peer=peer,
        allowed=accepted,
        reason=reason,
        detail=fields,
        now=now,
    )
    cosignature = decision.cosignature if accepted and decision.cosignature else b""
    return WitnessAnswer(accepted, reason, detail, cosignature, decision.witnessed_size)


# --- as the log owner -------------------------------------------------------------------------


def request_witnessing(
    session: Session, state: NodeState, *, witness_id: str, old_size: int | None = None
) -> tuple[bytes, bytes] | None:
    """(request, checkpoint note) asking ``witness_id`` to co-sign the latest checkpoint; None if nothing new.

    The proof runs from the largest checkpoint ``witness_id`` co-signed (or ``old_size``,
    the size the witness says it holds). Nothing is asked when the witness already
    co-signed the latest checkpoint, or when only witnessing entries came since.
    """
    latest = latest_checkpoint(session)
    if latest is None:
        return None
    if old_size is None:
        old_size = int(
            session.scalar(
                select(func.coalesce(func.max(AuditCosignature.size), 0)).where(AuditCosignature.witness == witness_id)
            )
            or 0
        )
        news = exists().where(
            AuditEntryRow.seq > old_size,
            AuditEntryRow.seq <= latest.size,
            AuditEntryRow.event.not_in([event.value for event in WITNESS_EVENTS]),
        )
        if old_size >= latest.size or not session.scalar(select(news)):
            return None
    proof = consistency_proof(old_size, latest.size, node_hashes(session)) if 0 < old_size < latest.size else []
    keep_checkpoint(session, latest)  # the checkpoint a cosignature will be of stays beside it
    return build_witness_request(old_size, proof, latest.note), latest.note


def record_cosignature(
    session: Session, state: NodeState, *, witness_id: str, note: bytes, answer: WitnessAnswer, now: datetime
) -> None:
    """Keep a witness's cosignature on this node's checkpoint (after checking it), or audit its refusal."""
    size = parse_checkpoint(note).checkpoint.size
    fields: dict[str, audit.DetailValue] = {"size": size, "detail": answer.detail}
    accepted, reason = answer.cosigned, answer.reason
    if answer.cosigned:
        try:
            cosignature = accept_cosignature(
                note, answer.cosignature, roster=state.roster, member_id=state.me, witness_id=witness_id
            )
        except RemoteProtocolError as exc:
            accepted, reason, fields["detail"] = False, "COSIGNATURE_INVALID", str(exc)
        else:
            session.merge(
                AuditCosignature(size=size, witness=witness_id, cosigned_at=cosignature.time, lines=cosignature.lines)
            )
    record_with_peer(
        session,
        state,
        event=AuditEvent.COSIGNATURE_RECEIVED,
        peer=witness_id,
        allowed=accepted,
        reason=reason,
        detail=fields,
        now=now,
    )
