"""Third-party consent: requests, the originator's decisions, onward grants, revocations (SPEC §9.4).

A holder asks the originator (``ask_consent``); the originator's node records the
request and decides it by its standing rules or leaves it to an officer
(``receive_consent_request``, ``decide_consent``); the requester records the signed
decision (``receive_consent_decision``). A holder of a transferable grant signs the
onward grant that lets it pass the item on (``grant_onward``). A grantor revokes a
grant it signed (``revoke_grant``); the revocation follows the item to every holder of
the grant (``node.services.notices``). Each request's state moves only through
``node.lifecycle.CONSENT_REQUEST``; every message travels as a durable control message.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from node import audit
from node.audit import AuditEvent, AuditReason
from node.codec import chain_from_bytes
from node.config import AutoGrant
from node.errors import FailedPreconditionError, InvalidRequestError, NotFoundError, PermissionDeniedError
from node.lifecycle import CONSENT_REQUEST, ConsentRequestEvent, ConsentRequestState, ControlRpc, Direction, InboxStatus
from node.services.control import queue_control
from node.services.holdings import held
from node.services.notices import apply_revocation, carried_to, refuse_remote
from node.services.state import NodeState, record_with_peer
from node.store import ConsentGrantRow, ConsentRequestRow, InboxItem, OriginalItem
from protocol.ack import Ack, AckReason
from protocol.classification import Band
from protocol.consent import ConsentDenial, ConsentGrant, ConsentRequest, ConsentRevocation, check_onward
from protocol.envelope import OriginAttestation
from protocol.errors import LocalProtocolError, MalformedError, RemoteProtocolError
from protocol.policy import Reason
from protocol.statements import PayloadType, Signed, parse_unverified, sign

__all__ = [
    "ask_consent",
    "decide_consent",
    "grant_onward",
    "grants",
    "receive_consent_decision",
    "receive_consent_request",
    "revoke_grant",
]


def _request_row(request: ConsentRequest, signed: Signed, direction: Direction, now: datetime) -> ConsentRequestRow:
    return ConsentRequestRow(
        request_id=request.request_id,
        direction=direction,
        item_id=request.item_id,
        item_version=request.item_version,
        requester=request.requester,
        third_party=request.third_party,
        purpose=request.purpose,
        statement=signed.model_dump_json().encode(),
        state=ConsentRequestState.PENDING,
        decision=None,
        reason=None,
        created_at=now,
        decided_at=None,
    )


def _grant_row(grant: ConsentGrant, signed: Signed) -> ConsentGrantRow:
    return ConsentGrantRow(
        grant_id=grant.grant_id,
        item_id=grant.item_id,
        item_version=grant.item_version,
        holder=grant.holder,
        grantee=grant.grantee,
        expires_at=grant.expires_at,
        transferable=grant.transferable,
        statement=signed.model_dump_json().encode(),
        revoked_at=None,
    )


def _record_decision(
    session: Session,
    state: NodeState,
    row: ConsentRequestRow,
    decided: ConsentRequestEvent,
    decision: Signed,
    reason: str | None,
    event: AuditEvent,
    peer: str,
    detail: dict[str, audit.DetailValue],
    now: datetime,
) -> None:
    """A request takes the originator's signed decision, on either side, and the audit says so."""
    row.state = CONSENT_REQUEST.next(row.state, decided)
    row.decision = decision.model_dump_json().encode()
    row.reason = reason
    row.decided_at = now
    granted = decided is ConsentRequestEvent.GRANTED
    if granted:  # one identifier for a consent everywhere: the CLI, the log, the trace
        detail = detail | {"grant_id": str(json.loads(decision.payload)["grant_id"])}
    record_with_peer(
        session,
        state,
        event=event,
        peer=peer,
        allowed=granted,
        reason=(AuditReason.CONSENT_GRANTED if granted else AuditReason.CONSENT_DENIED).value,
        detail=detail | {"request_id": row.request_id, "grantee": row.third_party, "decision_digest": decision.digest},
        now=now,
        item=(row.item_id, row.item_version),
    )


def ask_consent(
    session: Session,
    state: NodeState,
    *,
    item_id: str,
    item_version: int,
    third_party: str,
    purpose: str,
    now: datetime,
) -> tuple[Signed, str]:
    """A holder asks the originator for consent (SPEC §9.4.1); returns (request, originator)."""
    origin = held(session, state, item_id, item_version).origin
    attestation = OriginAttestation.from_bytes(origin.payload)
    if attestation.originator == state.me:
        raise InvalidRequestError("this node is the originator; it needs no consent")
    if state.roster.member(third_party) is None:
        raise InvalidRequestError(f"{third_party} is not in the roster")
    request = ConsentRequest(
        request_id=secrets.token_hex(16),
        item_id=item_id,
        item_version=item_version,
        origin_digest=origin.digest,
        requester=state.me,
        third_party=third_party,
        purpose=purpose,
        requested_at=now,
    )
    signed = sign(PayloadType.CONSENT_REQUEST, request, [state.signing_key])
    session.add(_request_row(request, signed, Direction.OUTGOING, now))
    audit.append(
        session,
        now=now,
        event=AuditEvent.CONSENT_REQUEST_SENT,
        actor=state.me,
        peer=attestation.originator,
        item_id=item_id,
        item_version=item_version,
        detail={"request_id": request.request_id, "third_party": third_party, "purpose": purpose},
    )
    queue_control(session, recipient=attestation.originator, rpc=ControlRpc.REQUEST_CONSENT, statement=signed, now=now)
    return signed, attestation.originator


def receive_consent_request(session: Session, state: NodeState, *, signed: Signed, peer: str, now: datetime) -> Ack:
    """The originator's node records a request and, if configured, decides it at once.

    An automatic decision is queued for the requester in the same transaction.
    """
    event = AuditEvent.CONSENT_REQUEST_RECEIVED
    try:
        claimed = parse_unverified(signed, PayloadType.CONSENT_REQUEST, ConsentRequest)
        requester = state.roster.member(claimed.requester)
        if requester is None or requester.member_id != peer:
            return refuse_remote(
                session,
                state,
                event,
                peer,
                Reason.SENDER_IDENTITY_MISMATCH,
                f"request claims {claimed.requester} but came from {peer}",
                now,
            )
        state.roster.verify_member(signed, PayloadType.CONSENT_REQUEST, requester.member_id)
    except MalformedError as exc:
        return refuse_remote(session, state, event, peer, Reason.ENVELOPE_MALFORMED, str(exc), now)
    except RemoteProtocolError as exc:
        return refuse_remote(session, state, event, peer, Reason.SENDER_SIGNATURE_INVALID, str(exc), now)
    original = session.get(OriginalItem, (claimed.item_id, claimed.item_version))
    if original is None or original.origin_digest != claimed.origin_digest:
        detail = f"{state.me} originated no item {claimed.item_id} v{claimed.item_version}"
        return refuse_remote(session, state, event, peer, AckReason.UNKNOWN_ITEM, detail, now)
    if session.get(ConsentRequestRow, claimed.request_id) is not None:
        return Ack.done(AckReason.DUPLICATE, "request already recorded")
    session.add(_request_row(claimed, signed, Direction.INCOMING, now))
    record_with_peer(
        session,
        state,
        event=event,
        peer=peer,
        allowed=True,
        reason=AckReason.RECORDED.value,
        detail={"request_id": claimed.request_id, "third_party": claimed.third_party, "purpose": claimed.purpose},
        now=now,
        item=(claimed.item_id, claimed.item_version),
    )
    automatic = state.consent.decide(claimed.third_party, Band(original.band))
    if automatic == "manual":
        return Ack.done(AckReason.PENDING, "awaiting the originator's officer")
    granted = isinstance(automatic, AutoGrant)
    decide_consent(
        session,
        state,
        request_id=claimed.request_id,
        grant=granted,
        reason="" if granted else "refused by the originator's standing rules",
        transferable=automatic.transferable if isinstance(automatic, AutoGrant) else False,
        valid_for=automatic.validity if isinstance(automatic, AutoGrant) else timedelta(0),
        conditions=(),
        now=now,
        by="rule",
    )
    return Ack.done(AckReason.DECIDED, "granted" if granted else "denied")


def decide_consent(
    session: Session,
    state: NodeState,
    *,
    request_id: str,
    grant: bool,
    reason: str,
    transferable: bool,
    valid_for: timedelta,
    conditions: Sequence[str],
    now: datetime,
    by: str,
) -> Signed:
    """The originator grants or denies a pending request (SPEC §9.4.1); the decision is queued for the requester."""
    row = session.get(ConsentRequestRow, request_id)
    if row is None or row.direction is not Direction.INCOMING:
        raise NotFoundError(f"no incoming consent request {request_id}")
    decided = ConsentRequestEvent.GRANTED if grant else ConsentRequestEvent.DENIED
    if not CONSENT_REQUEST.allows(row.state, decided):  # before anything is signed
        raise FailedPreconditionError(f"request {request_id} was already {row.state.value}")
    original = session.get(OriginalItem, (row.item_id, row.item_version))
    assert original is not None  # receive_consent_request checked it
    decision: Signed
    if grant:
        if valid_for <= timedelta(0):
            raise InvalidRequestError("a grant needs a positive validity")
        statement = ConsentGrant(
            grant_id=secrets.token_hex(16),
            request_id=request_id,
            item_id=row.item_id,
            item_version=row.item_version,
            origin_digest=original.origin_digest,
            grantor=state.me,
            holder=row.requester,
            grantee=row.third_party,
            expires_at=now + valid_for,
            transferable=transferable,
            conditions=tuple(conditions),
            issued_at=now,
        )
        decision = sign(PayloadType.CONSENT_GRANT, statement, [state.signing_key])
        session.add(_grant_row(statement, decision))
    else:
        denial = ConsentDenial(
            request_id=request_id,
            item_id=row.item_id,
            item_version=row.item_version,
            origin_digest=original.origin_digest,
            denier=state.me,
            reason=reason or "denied",
            issued_at=now,
        )
        decision = sign(PayloadType.CONSENT_DENIAL, denial, [state.signing_key])
    detail: dict[str, audit.DetailValue] = {"by": by, "transferable": transferable}
    event = AuditEvent.CONSENT_DECISION_SENT
    _record_decision(session, state, row, decided, decision, reason or None, event, row.requester, detail, now)
    queue_control(session, recipient=row.requester, rpc=ControlRpc.SEND_CONSENT_DECISION, statement=decision, now=now)
    return decision


def receive_consent_decision(session: Session, state: NodeState, *, signed: Signed, peer: str, now: datetime) -> Ack:
    """The requester records the originator's signed grant or denial."""
    event = AuditEvent.CONSENT_DECISION_RECEIVED
    grant: ConsentGrant | None = None
    denial: ConsentDenial | None = None
    try:
        if signed.payload_type == PayloadType.CONSENT_GRANT.value:
            grant = parse_unverified(signed, PayloadType.CONSENT_GRANT, ConsentGrant)
            request_id, signer = grant.request_id, grant.grantor
        else:
            denial = parse_unverified(signed, PayloadType.CONSENT_DENIAL, ConsentDenial)
            request_id, signer = denial.request_id, denial.denier
        member = state.roster.member(signer)
        if member is None or signer != peer:
            return refuse_remote(
                session,
                state,
                event,
                peer,
                Reason.SENDER_IDENTITY_MISMATCH,
                f"decision signed by {signer} came from {peer}",
                now,
            )
        state.roster.verify_member(signed, PayloadType(signed.payload_type), member.member_id)
    except (RemoteProtocolError, ValueError) as exc:
        return refuse_remote(session, state, event, peer, Reason.CONSENT_INVALID, str(exc), now)
    row = session.get(ConsentRequestRow, request_id) if request_id else None
    if row is None or row.direction is not Direction.OUTGOING:
        detail = f"no outgoing request {request_id}"
        return refuse_remote(session, state, event, peer, Reason.CONSENT_INVALID, detail, now)
    decided = ConsentRequestEvent.GRANTED if grant is not None else ConsentRequestEvent.DENIED
    if not CONSENT_REQUEST.allows(row.state, decided):
        return Ack.done(AckReason.DUPLICATE, f"request already {row.state.value}")
    if grant is not None:
        if (grant.holder, grant.grantee, grant.item_id, grant.item_version) != (
            state.me,
            row.third_party,
            row.item_id,
            row.item_version,
        ):
            detail = "grant does not match the request"
            return refuse_remote(session, state, event, peer, Reason.CONSENT_WRONG_GRANTEE, detail, now)
        session.add(_grant_row(grant, signed))
    reason = None if denial is None else denial.reason
    shown: dict[str, audit.DetailValue] = {} if denial is None else {"why": denial.reason}
    _record_decision(session, state, row, decided, signed, reason, event, peer, shown, now)
    return Ack.done(AckReason.RECORDED, row.state.value)


def grant_onward(
    session: Session,
    state: NodeState,
    *,
    item_id: str,
    item_version: int,
    grantee: str,
    valid_for: timedelta,
    transferable: bool,
    conditions: Sequence[str],
    officer: str,
    now: datetime,
) -> Signed:
    """A holder of a transferable grant signs the onward grant for ``grantee`` (SPEC §9.4.4).

    The grant rests on the chain of a copy this node received whose last grant names
    this node as grantee and is transferable; it cannot outlast that grant (its expiry is
    that grant's at the latest) and must name a grantee the chain's ``onward-to``
    conditions allow. The re-share to ``grantee`` then carries the chain and this grant.
    """
    if state.roster.member(grantee) is None:
        raise InvalidRequestError(f"{grantee} is not in the roster")
    if valid_for <= timedelta(0):
        raise InvalidRequestError("a grant needs a positive validity")
    copies = session.scalars(
        select(InboxItem)
        .where(
            InboxItem.item_id == item_id,
            InboxItem.item_version == item_version,
            InboxItem.status != InboxStatus.PURGED,
        )
        .order_by(InboxItem.received_at)
    ).all()
    if not copies:
        if session.get(OriginalItem, (item_id, item_version)) is not None:
            raise InvalidRequestError("this node is the originator: its grants answer consent requests")
        raise NotFoundError(f"this node holds no copy of {item_id} v{item_version} to pass on")
    refusal: LocalProtocolError | None = None
    for copy in copies:
        carried = chain_from_bytes(copy.consent_chain)
        chain = [parse_unverified(c, PayloadType.CONSENT_GRANT, ConsentGrant) for c in carried]
        revoked = [g.grant_id for g in chain if g.grant_id in state.revoked_grants]
        if revoked:
            refusal = LocalProtocolError(f"grant {revoked[0]} of the chain was revoked")
            continue
        expires_at = now + valid_for
        if chain and chain[-1].expires_at < expires_at:
            expires_at = chain[-1].expires_at  # an onward grant cannot outlast the grant it rests on
        try:
            parent = check_onward(chain, holder=state.me, grantee=grantee, expires_at=expires_at, now=now)
        except LocalProtocolError as exc:
            refusal = exc
            continue
        break
    else:
        assert refusal is not None  # the loop ran at least once
        raise PermissionDeniedError(str(refusal))
    statement = ConsentGrant(
        grant_id=secrets.token_hex(16),
        request_id=None,
        item_id=item_id,
        item_version=item_version,
        origin_digest=copy.origin_digest,
        grantor=state.me,
        holder=state.me,
        grantee=grantee,
        expires_at=expires_at,
        transferable=transferable,
        conditions=tuple(conditions),
        issued_at=now,
    )
    signed = sign(PayloadType.CONSENT_GRANT, statement, [state.signing_key])
    session.add(_grant_row(statement, signed))
    record_with_peer(
        session,
        state,
        event=AuditEvent.CONSENT_DECISION_SENT,
        peer=grantee,
        allowed=True,
        reason=AuditReason.CONSENT_GRANTED.value,
        detail={
            "by": officer,
            "onward": True,
            "grant_id": statement.grant_id,
            "rests_on": parent.grant_id,
            "grantee": grantee,
            "transferable": transferable,
            "conditions": list(statement.conditions),
            "expires_at": audit.format_time(expires_at),
            "decision_digest": signed.digest,
        },
        now=now,
        item=(item_id, item_version),
    )
    return signed


def revoke_grant(
    session: Session, state: NodeState, *, grant_id: str, reason: str, officer: str, now: datetime
) -> tuple[Signed, list[str]]:
    """The grantor withdraws a grant it signed (SPEC §9.4.3); returns the revocation and who is told.

    Told: the grant's holder (when another member) and every member this node passed the
    item on to under it; each applies it and passes it on along the item's path.
    """
    row = session.get(ConsentGrantRow, grant_id)
    if row is None:
        raise NotFoundError(f"no grant {grant_id} here")
    grant = parse_unverified(Signed.model_validate_json(row.statement), PayloadType.CONSENT_GRANT, ConsentGrant)
    if grant.grantor != state.me:
        raise PermissionDeniedError(f"grant {grant_id} was signed by {grant.grantor}; only its grantor revokes it")
    if row.revoked_at is not None:
        raise FailedPreconditionError(f"grant {grant_id} was already revoked")
    revocation = ConsentRevocation(
        revocation_id=secrets.token_hex(16),
        grant_id=grant_id,
        item_id=grant.item_id,
        revoker=state.me,
        reason=reason,
        issued_at=now,
    )
    signed = sign(PayloadType.CONSENT_REVOCATION, revocation, [state.signing_key])
    apply_revocation(session, state, grant=grant, revocation_id=revocation.revocation_id, signed=signed, now=now)
    told = sorted(({grant.holder} - {state.me}) | set(carried_to(session, grant.item_id, grant.item_version, grant_id)))
    for member in told:
        queue_control(session, recipient=member, rpc=ControlRpc.NOTIFY, statement=signed, now=now)
    audit.append(
        session,
        now=now,
        event=AuditEvent.CONSENT_REVOCATION_SENT,
        actor=officer,
        item_id=grant.item_id,
        item_version=grant.item_version,
        allowed=True,
        reason=AckReason.REVOKED.value,
        detail={
            "grant_id": grant_id,
            "holder": grant.holder,
            "grantee": grant.grantee,
            "why": reason,
            "notified": told,
            "notice_digest": signed.digest,
        },
    )
    return signed, told


def grants(session: Session, state: NodeState) -> list[ConsentGrantRow]:
    """The grants this node holds in its grant table (issued by it, or to it), newest expiry first."""
    return list(session.scalars(select(ConsentGrantRow).order_by(ConsentGrantRow.expires_at.desc())))
