"""Agreement amendments between the two parties' nodes (SPEC §6.4).

One party's officer proposes a new version (``propose_agreement``): the node signs the
proposed agreement and the proposal with its own key and queues the proposal for the
other party, whose node records it (``receive_amendment``) for its officer to
countersign or reject (``countersign_proposal``, ``reject_proposal``). A countersignature
puts the version in force on the countersigning node in the same transaction that queues
the statement both signed back to the proposer, whose node puts it in force as soon as it
arrives. Each node signs with its own key only. A proposal's state moves only through
``node.lifecycle.AGREEMENT_PROPOSAL``; both sides audit every step.

The agreements a node put in force this way are kept with their proposals and held again
at start-up (``hold_countersigned``), over the files of the agreements directory.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from node import audit
from node.audit import AuditEvent
from node.errors import FailedPreconditionError, InvalidRequestError, NotFoundError, PermissionDeniedError
from node.lifecycle import AGREEMENT_PROPOSAL, ControlRpc, Direction, ProposalEvent, ProposalState
from node.services.control import queue_control
from node.services.federation import held_agreement_versions
from node.services.notices import refuse_remote
from node.services.retention import apply_agreement_maximum
from node.services.state import NodeState, record_with_peer
from node.store import AgreementProposalRow
from protocol.ack import Ack, AckReason
from protocol.agreement import (
    Agreement,
    AgreementProposal,
    AgreementRejection,
    check_markings,
    countersign,
    verify_proposal,
    verify_rejection,
)
from protocol.errors import (
    ConfigurationError,
    IntelshareError,
    MalformedError,
    NoticeMismatchError,
    RemoteProtocolError,
    RollbackError,
)
from protocol.policy import Reason
from protocol.statements import PayloadType, Signed, parse_unverified, sign, verify

__all__ = [
    "HeldAgreement",
    "countersign_proposal",
    "hold_countersigned",
    "list_agreements",
    "propose_agreement",
    "receive_amendment",
    "reject_proposal",
    "supersede_stale",
]


def _json(statement: Signed) -> bytes:
    return statement.model_dump_json().encode()


def _proposal(row: AgreementProposalRow) -> AgreementProposal:
    """The stored proposal (verified when it was made or received)."""
    return AgreementProposal.from_bytes(Signed.model_validate_json(row.proposal).payload)


def _supersede(session: Session, agreement_id: str, up_to: int, now: datetime, *, why: str) -> None:
    """Pending proposals of ``agreement_id`` up to version ``up_to`` can no longer take effect."""
    for row in session.scalars(
        select(AgreementProposalRow).where(
            AgreementProposalRow.agreement_id == agreement_id,
            AgreementProposalRow.version <= up_to,
            AgreementProposalRow.state == ProposalState.PROPOSED,
        )
    ):
        row.state = AGREEMENT_PROPOSAL.next(row.state, ProposalEvent.SUPERSEDED)
        row.reason, row.decided_at = why, now


def supersede_stale(session: Session, state: NodeState, *, now: datetime) -> None:
    """An agreement version took effect: pending proposals no newer than it are overtaken, and
    copies held under a shorter maximum retention are due sooner (SPEC §6.4, §11.13)."""
    for agreement in state.agreements.agreements():
        why = f"v{agreement.version} took effect first"
        _supersede(session, agreement.agreement_id, agreement.version, now, why=why)
    apply_agreement_maximum(session, state, now=now)


def _audit(
    session: Session,
    state: NodeState,
    event: AuditEvent,
    *,
    peer: str,
    reason: AckReason,
    agreement: Agreement,
    detail: dict[str, audit.DetailValue],
    now: datetime,
    allowed: bool = True,
) -> None:
    detail = {"agreement": f"{agreement.agreement_id}:{agreement.version}", **detail}
    record_with_peer(
        session, state, event=event, peer=peer, allowed=allowed, reason=reason.value, detail=detail, now=now
    )


# --- the proposer --------------------------------------------------------------------------


def propose_agreement(
    session: Session, state: NodeState, *, agreement: Agreement, note: str, now: datetime
) -> AgreementProposalRow:
    """This node's officer proposes a new version to the other party (SPEC §6.4); the proposal is queued."""
    if state.me not in agreement.parties:
        raise PermissionDeniedError(f"this node is {state.me}; it is not a party to {agreement.agreement_id}")
    counterparty = agreement.other(state.me)
    held = state.agreements.get(state.me, counterparty)
    if held is not None and held.agreement_id != agreement.agreement_id:
        raise InvalidRequestError(
            f"{state.me}–{counterparty} holds agreement {held.agreement_id}, not {agreement.agreement_id}"
        )
    if held is not None and agreement.version <= held.version:
        raise InvalidRequestError(
            f"{agreement.agreement_id} v{agreement.version} is not newer than v{held.version}, the version held; "
            f"propose v{held.version + 1}"
        )
    try:
        check_markings(agreement, state.roster)
    except ConfigurationError as exc:
        raise InvalidRequestError(str(exc)) from exc
    signed_agreement = sign(PayloadType.AGREEMENT, agreement, [state.signing_key])
    proposal = AgreementProposal(
        proposal_id=secrets.token_hex(16),
        proposer=state.me,
        counterparty=counterparty,
        agreement=signed_agreement,
        replaces=None if held is None else held.version,
        note=note,
        proposed_at=now,
    )
    signed = sign(PayloadType.AGREEMENT_PROPOSAL, proposal, [state.signing_key])
    row = AgreementProposalRow(
        proposal_id=proposal.proposal_id,
        direction=Direction.OUTGOING,
        agreement_id=agreement.agreement_id,
        version=agreement.version,
        proposer=state.me,
        counterparty=counterparty,
        proposal=_json(signed),
        agreement_digest=signed_agreement.digest,
        note=note,
        state=ProposalState.PROPOSED,
        countersigned=None,
        rejection=None,
        reason=None,
        created_at=now,
        decided_at=None,
    )
    session.add(row)
    detail: dict[str, audit.DetailValue] = {
        "direction": "sent",
        "proposal_id": proposal.proposal_id,
        "proposal_digest": signed.digest,
        "agreement_digest": signed_agreement.digest,
        "replaces": proposal.replaces,
        "note": note,
    }
    _audit(
        session,
        state,
        AuditEvent.AGREEMENT_PROPOSED,
        peer=counterparty,
        reason=AckReason.PENDING,
        agreement=agreement,
        detail=detail,
        now=now,
    )
    queue_control(session, recipient=counterparty, rpc=ControlRpc.AMEND_AGREEMENT, statement=signed, now=now)
    session.flush()
    return row


# --- the counterparty ------------------------------------------------------------------------


def _incoming(session: Session, proposal_id: str) -> AgreementProposalRow:
    row = session.get(AgreementProposalRow, proposal_id)
    if row is None or row.direction is not Direction.INCOMING:
        raise NotFoundError(f"no proposal {proposal_id} to decide here")
    return row


def countersign_proposal(
    session: Session, state: NodeState, *, proposal_id: str, officer: str, now: datetime
) -> AgreementProposalRow:
    """This node's officer countersigns a proposal: the version is in force here at once (SPEC §6.4).

    A proposal the pair has moved past (a version as high already held) is marked
    superseded instead, and returned so; the caller reads its state.
    """
    row = _incoming(session, proposal_id)
    if not AGREEMENT_PROPOSAL.allows(row.state, ProposalEvent.COUNTERSIGNED):
        raise FailedPreconditionError(f"proposal {proposal_id} was already {row.state.value}")
    proposal = _proposal(row)
    held = state.agreements.get(state.me, proposal.proposer)
    try:
        statement = countersign(proposal, key=state.signing_key, me=state.me, roster=state.roster, held=held)
        agreement = state.agreements.accept(statement, state.roster)
    except RollbackError as exc:  # the pair moved on since it arrived: it can never take effect now
        row.state = AGREEMENT_PROPOSAL.next(row.state, ProposalEvent.SUPERSEDED)
        row.reason, row.decided_at = str(exc), now
        session.flush()
        return row
    except IntelshareError as exc:  # the roster changed since it arrived
        raise FailedPreconditionError(f"proposal {proposal_id} can no longer be countersigned: {exc}") from exc
    row.state = AGREEMENT_PROPOSAL.next(row.state, ProposalEvent.COUNTERSIGNED)
    row.countersigned, row.decided_at = _json(statement), now
    supersede_stale(session, state, now=now)
    detail: dict[str, audit.DetailValue] = {
        "by": officer,
        "proposal_id": proposal_id,
        "agreement_digest": statement.digest,
        "agreements": held_agreement_versions(state.agreements),
    }
    _audit(
        session,
        state,
        AuditEvent.AGREEMENT_COUNTERSIGNED,
        peer=proposal.proposer,
        reason=AckReason.IN_FORCE,
        agreement=agreement,
        detail=detail,
        now=now,
    )
    queue_control(session, recipient=proposal.proposer, rpc=ControlRpc.AMEND_AGREEMENT, statement=statement, now=now)
    session.flush()
    return row


def reject_proposal(
    session: Session, state: NodeState, *, proposal_id: str, reason: str, officer: str, now: datetime
) -> AgreementProposalRow:
    """This node's officer rejects a proposal, with a reason the proposer is sent (SPEC §6.4)."""
    row = _incoming(session, proposal_id)
    if not AGREEMENT_PROPOSAL.allows(row.state, ProposalEvent.REJECTED):
        raise FailedPreconditionError(f"proposal {proposal_id} was already {row.state.value}")
    if not reason.strip():
        raise InvalidRequestError("a rejection needs a reason")
    proposal = _proposal(row)
    proposed = proposal.proposed
    rejection = AgreementRejection(
        proposal_id=proposal_id,
        agreement_id=proposed.agreement_id,
        version=proposed.version,
        agreement_digest=proposal.agreement.digest,
        proposer=proposal.proposer,
        rejecter=state.me,
        reason=reason,
        rejected_at=now,
    )
    signed = sign(PayloadType.AGREEMENT_REJECTION, rejection, [state.signing_key])
    row.state = AGREEMENT_PROPOSAL.next(row.state, ProposalEvent.REJECTED)
    row.rejection, row.reason, row.decided_at = _json(signed), reason, now
    detail: dict[str, audit.DetailValue] = {"by": officer, "proposal_id": proposal_id, "why": reason}
    _audit(
        session,
        state,
        AuditEvent.AGREEMENT_REJECTED,
        peer=proposal.proposer,
        reason=AckReason.REJECTED,
        agreement=proposed,
        detail=detail,
        now=now,
        allowed=False,
    )
    queue_control(session, recipient=proposal.proposer, rpc=ControlRpc.AMEND_AGREEMENT, statement=signed, now=now)
    session.flush()
    return row


# --- receiving --------------------------------------------------------------------------------


def receive_amendment(session: Session, state: NodeState, *, signed: Signed, peer: str, now: datetime) -> Ack:
    """A proposal, countersignature or rejection from the other party (SPEC §6.4); returns the ack."""
    if signed.payload_type == PayloadType.AGREEMENT_PROPOSAL.value:
        return _receive_proposal(session, state, signed=signed, peer=peer, now=now)
    if signed.payload_type == PayloadType.AGREEMENT_REJECTION.value:
        return _receive_rejection(session, state, signed=signed, peer=peer, now=now)
    return _receive_countersigned(session, state, signed=signed, peer=peer, now=now)


def _receive_proposal(session: Session, state: NodeState, *, signed: Signed, peer: str, now: datetime) -> Ack:
    event = AuditEvent.AGREEMENT_PROPOSED
    try:
        claimed = parse_unverified(signed, PayloadType.AGREEMENT_PROPOSAL, AgreementProposal)
    except MalformedError as exc:
        return refuse_remote(session, state, event, peer, Reason.ENVELOPE_MALFORMED, str(exc), now)
    if claimed.proposer != peer:
        why = f"proposal by {claimed.proposer} came from {peer}"
        return refuse_remote(session, state, event, peer, Reason.SENDER_IDENTITY_MISMATCH, why, now)
    if session.get(AgreementProposalRow, claimed.proposal_id) is not None:
        return Ack.done(AckReason.DUPLICATE, "proposal already recorded")
    held = state.agreements.get(state.me, peer)
    try:
        proposal = verify_proposal(signed, roster=state.roster, counterparty=state.me, held=held)
    except RollbackError as exc:
        return refuse_remote(session, state, event, peer, AckReason.VERSION_NOT_NEWER, str(exc), now)
    except (ConfigurationError, NoticeMismatchError) as exc:
        return refuse_remote(session, state, event, peer, AckReason.AGREEMENT_INVALID, str(exc), now)
    except RemoteProtocolError as exc:
        return refuse_remote(session, state, event, peer, Reason.SENDER_SIGNATURE_INVALID, str(exc), now)
    proposed = proposal.proposed
    session.add(
        AgreementProposalRow(
            proposal_id=proposal.proposal_id,
            direction=Direction.INCOMING,
            agreement_id=proposed.agreement_id,
            version=proposed.version,
            proposer=peer,
            counterparty=state.me,
            proposal=_json(signed),
            agreement_digest=proposal.agreement.digest,
            note=proposal.note,
            state=ProposalState.PROPOSED,
            countersigned=None,
            rejection=None,
            reason=None,
            created_at=now,
            decided_at=None,
        )
    )
    detail: dict[str, audit.DetailValue] = {
        "direction": "received",
        "proposal_id": proposal.proposal_id,
        "proposal_digest": signed.digest,
        "agreement_digest": proposal.agreement.digest,
        "replaces": proposal.replaces,
        "note": proposal.note,
    }
    _audit(session, state, event, peer=peer, reason=AckReason.PENDING, agreement=proposed, detail=detail, now=now)
    return Ack.done(AckReason.PENDING, f"v{proposed.version} awaits {state.me}'s officer")


def _outgoing_pending(
    session: Session, *, digest: str | None = None, proposal_id: str | None = None
) -> AgreementProposalRow | None:
    query = select(AgreementProposalRow).where(AgreementProposalRow.direction == Direction.OUTGOING)
    if digest is not None:
        query = query.where(AgreementProposalRow.agreement_digest == digest)
    if proposal_id is not None:
        query = query.where(AgreementProposalRow.proposal_id == proposal_id)
    return session.scalars(query).first()


def _receive_countersigned(session: Session, state: NodeState, *, signed: Signed, peer: str, now: datetime) -> Ack:
    event = AuditEvent.AGREEMENT_COUNTERSIGNED
    try:
        claimed = parse_unverified(signed, PayloadType.AGREEMENT, Agreement)
    except MalformedError as exc:
        return refuse_remote(session, state, event, peer, Reason.ENVELOPE_MALFORMED, str(exc), now)
    row = _outgoing_pending(session, digest=signed.digest)
    if row is None or row.counterparty != peer:
        why = f"{claimed.agreement_id} v{claimed.version} answers no proposal {state.me} sent {peer}"
        return refuse_remote(session, state, event, peer, AckReason.UNKNOWN_PROPOSAL, why, now)
    if row.state is ProposalState.COUNTERSIGNED:
        return Ack.done(AckReason.DUPLICATE, "countersignature already recorded")
    if not AGREEMENT_PROPOSAL.allows(row.state, ProposalEvent.COUNTERSIGNED):
        why = f"proposal {row.proposal_id} is {row.state.value}"
        return refuse_remote(session, state, event, peer, AckReason.UNKNOWN_PROPOSAL, why, now)
    both_signed = [state.roster.member(p) for p in claimed.parties]
    try:
        if any(m is None for m in both_signed):
            raise ConfigurationError("a party is no longer in the roster")
        # Both parties, not either: the proposer's own one-party statement sent back would
        # supersede the agreement without being in force (SPEC §6.2), suspending the pair.
        verify(signed, PayloadType.AGREEMENT, [m.signing_key for m in both_signed if m is not None])
        agreement = state.agreements.accept(signed, state.roster)
    except RollbackError as exc:
        row.state = AGREEMENT_PROPOSAL.next(row.state, ProposalEvent.SUPERSEDED)
        row.reason, row.decided_at = str(exc), now
        return refuse_remote(session, state, event, peer, AckReason.VERSION_NOT_NEWER, str(exc), now)
    except ConfigurationError as exc:
        return refuse_remote(session, state, event, peer, AckReason.AGREEMENT_INVALID, str(exc), now)
    except RemoteProtocolError as exc:
        return refuse_remote(session, state, event, peer, Reason.SENDER_SIGNATURE_INVALID, str(exc), now)
    row.state = AGREEMENT_PROPOSAL.next(row.state, ProposalEvent.COUNTERSIGNED)
    row.countersigned, row.decided_at = _json(signed), now
    supersede_stale(session, state, now=now)
    detail: dict[str, audit.DetailValue] = {
        "by": peer,
        "proposal_id": row.proposal_id,
        "agreement_digest": signed.digest,
        "agreements": held_agreement_versions(state.agreements),
    }
    _audit(session, state, event, peer=peer, reason=AckReason.IN_FORCE, agreement=agreement, detail=detail, now=now)
    return Ack.done(AckReason.IN_FORCE, f"{agreement.agreement_id} v{agreement.version} in force at {state.me}")


def _receive_rejection(session: Session, state: NodeState, *, signed: Signed, peer: str, now: datetime) -> Ack:
    event = AuditEvent.AGREEMENT_REJECTED
    try:
        claimed = parse_unverified(signed, PayloadType.AGREEMENT_REJECTION, AgreementRejection)
    except MalformedError as exc:
        return refuse_remote(session, state, event, peer, Reason.ENVELOPE_MALFORMED, str(exc), now)
    row = _outgoing_pending(session, proposal_id=claimed.proposal_id)
    if row is None or row.counterparty != peer:
        why = f"rejection of {claimed.proposal_id}: no such proposal sent to {peer}"
        return refuse_remote(session, state, event, peer, AckReason.UNKNOWN_PROPOSAL, why, now)
    if row.state is ProposalState.REJECTED:
        return Ack.done(AckReason.DUPLICATE, "rejection already recorded")
    try:
        rejection = verify_rejection(signed, roster=state.roster, proposal=_proposal(row))
    except RemoteProtocolError as exc:
        return refuse_remote(session, state, event, peer, Reason.SENDER_SIGNATURE_INVALID, str(exc), now)
    if not AGREEMENT_PROPOSAL.allows(row.state, ProposalEvent.REJECTED):
        why = f"proposal {row.proposal_id} is {row.state.value}"
        return refuse_remote(session, state, event, peer, AckReason.UNKNOWN_PROPOSAL, why, now)
    row.state = AGREEMENT_PROPOSAL.next(row.state, ProposalEvent.REJECTED)
    row.rejection, row.reason, row.decided_at = _json(signed), rejection.reason, now
    detail: dict[str, audit.DetailValue] = {"by": peer, "proposal_id": row.proposal_id, "why": rejection.reason}
    proposed = _proposal(row).proposed
    _audit(
        session,
        state,
        event,
        peer=peer,
        reason=AckReason.REJECTED,
        agreement=proposed,
        detail=detail,
        now=now,
        allowed=False,
    )
    return Ack.done(AckReason.REJECTED, f"{proposed.agreement_id} v{proposed.version} rejected by {peer}")


# --- what the node holds --------------------------------------------------------------------


@dataclass(frozen=True)
class HeldAgreement:
    """An agreement the node holds, and whether it is in force now."""

    agreement: Agreement
    statement: Signed
    in_force: bool


def list_agreements(
    session: Session, state: NodeState, *, now: datetime
) -> tuple[list[HeldAgreement], list[AgreementProposalRow]]:
    """The agreements of this node's pairs, and every proposal sent or received, newest first."""
    held = []
    for agreement in sorted(state.agreements.agreements(), key=lambda a: a.agreement_id):
        if state.me not in agreement.parties:
            continue
        other = agreement.other(state.me)
        statement = state.agreements.signed(state.me, other)
        assert statement is not None  # held together with the agreement
        held.append(HeldAgreement(agreement, statement, state.agreements.in_force(state.me, other, now)))
    proposals = list(session.scalars(select(AgreementProposalRow).order_by(AgreementProposalRow.created_at.desc())))
    return held, proposals


def hold_countersigned(session: Session, state: NodeState) -> list[str]:
    """Hold again, at start-up, the versions put in force by amendment (SPEC §6.4); what was held.

    Each is held over the version from the agreements directory if it is newer; one the
    files have overtaken is left as it is (its proposal's state says what happened).
    """
    rows: Sequence[AgreementProposalRow] = session.scalars(
        select(AgreementProposalRow)
        .where(AgreementProposalRow.state == ProposalState.COUNTERSIGNED)
        .order_by(AgreementProposalRow.version)
    ).all()
    held = []
    for row in rows:
        assert row.countersigned is not None  # set with the state
        statement = Signed.model_validate_json(row.countersigned)
        try:
            agreement = state.agreements.accept(statement, state.roster)
        except IntelshareError:
            continue  # overtaken by a newer file, or no longer valid under this roster
        held.append(f"{agreement.agreement_id}:{agreement.version}")
    return held
