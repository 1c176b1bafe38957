"""Recall and correction notices, and consent revocations, at the originator and at holders (SPEC §10, §9.4.3).

The originator signs a notice and queues it for every member it passed the item to;
a holder verifies it against the held copy, applies it (``node.lifecycle.INBOX_ITEM``),
and forwards the same signed bytes to every member it passed the item on to. A recall
also withdraws envelopes of the item not yet delivered, and follows an envelope that
was already on the wire when it was made (``follow_late_delivery``).
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from node import audit
from node.audit import AuditEvent
from node.codec import chain_from_bytes
from node.errors import NotFoundError
from node.lifecycle import (
    INBOX_ITEM,
    ORIGINAL_ITEM,
    OUTBOX_ENTRY,
    ControlRpc,
    InboxEvent,
    NoticeKind,
    OriginalEvent,
    OutboxEvent,
    OutboxState,
)
from node.services.control import queue_control
from node.services.state import NodeState, record_with_peer
from node.store import (
    AuditEntryRow,
    ConsentGrantRow,
    InboxItem,
    NoticeAckRow,
    NoticeRow,
    OriginalItem,
    OutboxEntry,
)
from protocol.ack import Ack, AckReason
from protocol.consent import ConsentGrant, ConsentRevocation, verify_revocation
from protocol.envelope import OriginAttestation
from protocol.errors import RemoteProtocolError
from protocol.notices import Correction, NoticeAck, Recall, verify_correction, verify_notice_ack, verify_recall
from protocol.notices import NoticeKind as NoticeAckKind
from protocol.policy import Reason
from protocol.statements import PayloadType, Signed, parse_unverified, sign

__all__ = [
    "apply_revocation",
    "carried_to",
    "delivered_to",
    "follow_late_delivery",
    "known_grant",
    "queue_correction",
    "recall",
    "receive_ack",
    "receive_notice",
    "refuse_remote",
]


def refuse_remote(
    session: Session,
    state: NodeState,
    event: AuditEvent,
    peer: str,
    reason: Reason | AckReason,
    detail: str,
    now: datetime,
) -> Ack:
    """Audit a refused control message from ``peer`` and answer it."""
    refused, code = {"detail": detail}, reason.value
    record_with_peer(session, state, event=event, peer=peer, allowed=False, reason=code, detail=refused, now=now)
    return Ack.refused(reason, detail)


def delivered_to(session: Session, item_id: str, item_version: int) -> list[str]:
    """Every member this node sent the item version to, or is still sending it to."""
    return sorted(
        set(
            session.scalars(
                select(OutboxEntry.recipient).where(
                    OutboxEntry.item_id == item_id,
                    OutboxEntry.item_version == item_version,
                    OutboxEntry.state.in_((OutboxState.DELIVERED, OutboxState.PENDING)),
                )
            )
        )
    )


def _withdraw_pending(session: Session, item_id: str, item_version: int, now: datetime) -> None:
    """Envelopes of a recalled item not yet delivered are not sent (SPEC §10.1)."""
    for entry in session.scalars(
        select(OutboxEntry).where(
            OutboxEntry.item_id == item_id,
            OutboxEntry.item_version == item_version,
            OutboxEntry.state == OutboxState.PENDING,
        )
    ):
        entry.state = OUTBOX_ENTRY.next(entry.state, OutboxEvent.RECALLED)
        entry.reason, entry.updated_at = Reason.RECALLED.value, now


def _recall_notice(session: Session, item_id: str, item_version: int) -> Signed | None:
    """The originator's signed recall of an item version, as issued or received here."""
    row = session.scalars(
        select(NoticeRow).where(
            NoticeRow.kind == NoticeKind.RECALL, NoticeRow.item_id == item_id, NoticeRow.item_version == item_version
        )
    ).first()
    return None if row is None else Signed.model_validate_json(row.statement)


def follow_late_delivery(
    session: Session, *, recipient: str, item_id: str, item_version: int, now: datetime
) -> Signed | None:
    """An envelope withdrawn by a recall arrived anyway: send the recipient the recall too (SPEC §10.1)."""
    notice = _recall_notice(session, item_id, item_version)
    if notice is not None:
        queue_control(session, recipient=recipient, rpc=ControlRpc.NOTIFY, statement=notice, now=now)
    return notice


def _keep(
    session: Session,
    notice_id: str,
    kind: NoticeKind,
    item_id: str,
    version: int,
    issuer: str,
    notice: Signed,
    now: datetime,
) -> None:
    """Keep a notice issued or applied here: it marks the notice applied, and a recall follows late envelopes."""
    statement = notice.model_dump_json().encode()
    session.add(
        NoticeRow(
            notice_id=notice_id,
            kind=kind,
            item_id=item_id,
            item_version=version,
            issuer=issuer,
            statement=statement,
            received_at=now,
        )
    )


# --- at the originator ------------------------------------------------------------------


def recall(
    session: Session, state: NodeState, *, item_id: str, item_version: int, reason: str, now: datetime
) -> tuple[Signed, list[str]]:
    """The originator recalls an item version (SPEC §10.1); returns the notice and who to tell."""
    original = session.get(OriginalItem, (item_id, item_version))
    if original is None:
        raise NotFoundError(f"{state.me} originated no item {item_id} v{item_version}")
    notice = sign(
        PayloadType.RECALL,
        Recall(
            recall_id=secrets.token_hex(16),
            item_id=item_id,
            item_version=item_version,
            origin_digest=original.origin_digest,
            originator=state.me,
            reason=reason,
            issued_at=now,
        ),
        [state.signing_key],
    )
    if ORIGINAL_ITEM.next(original.state, OriginalEvent.RECALLED) is not original.state:
        original.recalled_at = now  # recalled now; recalling again keeps the first time
    state.recalled.add((item_id, item_version))
    recall_id = json.loads(notice.payload)["recall_id"]
    # Kept, so an envelope that lands after the recall can be followed by it.
    _keep(session, recall_id, NoticeKind.RECALL, item_id, item_version, state.me, notice, now)
    _withdraw_pending(session, item_id, item_version, now)
    recipients = _notify_holders(
        session, state, AuditEvent.RECALL_SENT, item_id, item_version, notice, {"reason": reason}, now
    )
    return notice, recipients


def queue_correction(
    session: Session,
    state: NodeState,
    *,
    previous: OriginalItem,
    origin: Signed,
    now: datetime,
    reason: str = "corrected by the originator",
) -> None:
    """Queue a signed correction for every holder of the previous version (SPEC §10.2)."""
    new = OriginAttestation.from_bytes(origin.payload)
    notice = sign(
        PayloadType.CORRECTION,
        Correction(
            correction_id=secrets.token_hex(16),
            item_id=previous.item_id,
            corrected_version=previous.item_version,
            corrected_digest=previous.origin_digest,
            new_version=new.item_version,
            new_origin_digest=origin.digest,
            originator=state.me,
            reason=reason,
            issued_at=now,
        ),
        [state.signing_key],
    )
    # Kept, so the holders' acknowledgements can be matched to it (SPEC §10.3).
    correction_id = str(json.loads(notice.payload)["correction_id"])
    _keep(session, correction_id, NoticeKind.CORRECTION, previous.item_id, previous.item_version, state.me, notice, now)
    detail: dict[str, audit.DetailValue] = {"new_version": new.item_version, "reason": reason}
    _notify_holders(
        session, state, AuditEvent.CORRECTION_SENT, previous.item_id, previous.item_version, notice, detail, now
    )


def _notify_holders(
    session: Session,
    state: NodeState,
    event: AuditEvent,
    item_id: str,
    item_version: int,
    notice: Signed,
    detail: dict[str, audit.DetailValue],
    now: datetime,
) -> list[str]:
    """Audit a notice this node issued and queue it for every member it sent the item version to."""
    holders = delivered_to(session, item_id, item_version)
    detail |= {"notified": holders, "notice_digest": notice.digest}
    audit.append(
        session, now=now, event=event, actor=state.me, item_id=item_id, item_version=item_version, detail=detail
    )
    for holder in holders:
        queue_control(session, recipient=holder, rpc=ControlRpc.NOTIFY, statement=notice, now=now)
    return holders


# --- at a holder --------------------------------------------------------------------------


def receive_notice(session: Session, state: NodeState, *, signed: Signed, peer: str, now: datetime) -> Ack:
    """A holder applies a recall, correction or consent revocation; returns the ack."""
    if signed.payload_type == PayloadType.CONSENT_REVOCATION.value:
        return _receive_revocation(session, state, signed=signed, peer=peer, now=now)
    return _apply_notice(session, state, signed=signed, peer=peer, now=now)


def _apply_notice(session: Session, state: NodeState, *, signed: Signed, peer: str, now: datetime) -> Ack:
    """Apply a recall (SPEC §10.1) or correction (SPEC §10.2) to the held copies.

    The notice must be signed by the held item's originator and bound to its id,
    version and origin digest. The same signed bytes are queued for every member this
    node passed the item to.
    """
    is_correction = signed.payload_type == PayloadType.CORRECTION.value
    event = AuditEvent.CORRECTION_RECEIVED if is_correction else AuditEvent.RECALL_RECEIVED
    claimed: Recall | Correction
    try:
        if is_correction:
            claimed = parse_unverified(signed, PayloadType.CORRECTION, Correction)
            notice_id, version = claimed.correction_id, claimed.corrected_version
        else:
            claimed = parse_unverified(signed, PayloadType.RECALL, Recall)
            notice_id, version = claimed.recall_id, claimed.item_version
    except RemoteProtocolError as exc:
        return refuse_remote(session, state, event, peer, Reason.ENVELOPE_MALFORMED, str(exc), now)
    held = session.scalars(
        select(InboxItem).where(InboxItem.item_id == claimed.item_id, InboxItem.item_version == version)
    ).all()
    if not held:
        return refuse_remote(session, state, event, peer, AckReason.UNKNOWN_ITEM, "no such item held", now)
    verify_notice = verify_correction if is_correction else verify_recall
    try:
        verify_notice(
            signed,
            roster=state.roster,
            item_id=claimed.item_id,
            item_version=version,
            origin_digest=held[0].origin_digest,
            originator=held[0].originator,
        )
    except RemoteProtocolError as exc:
        return refuse_remote(session, state, event, peer, Reason.ORIGIN_SIGNATURE_INVALID, str(exc), now)
    if session.get(NoticeRow, notice_id) is not None:
        own = session.get(NoticeAckRow, (signed.digest, state.me))
        statement = None if own is None else Signed.model_validate_json(own.statement)
        return Ack.done(AckReason.DUPLICATE, "notice already applied", statement)
    applied = InboxEvent.CORRECTED if is_correction else InboxEvent.RECALLED
    for row in held:
        row.status = INBOX_ITEM.next(row.status, applied)  # a recall is final (the table says so)
    kind = NoticeKind.CORRECTION if is_correction else NoticeKind.RECALL
    _keep(session, notice_id, kind, claimed.item_id, version, claimed.originator, signed, now)
    if not is_correction:
        state.recalled.add((claimed.item_id, version))
        _withdraw_pending(session, claimed.item_id, version, now)
    forward = [r for r in delivered_to(session, claimed.item_id, version) if r != peer]
    for downstream in forward:  # the same signed bytes travel on unchanged (SPEC §10.1)
        queue_control(session, recipient=downstream, rpc=ControlRpc.NOTIFY, statement=signed, now=now)
    detail: dict[str, audit.DetailValue] = {
        "originator": claimed.originator,
        "forwarded_to": forward,
        "notice_digest": signed.digest,
    }
    if isinstance(claimed, Correction):
        detail |= {"new_version": claimed.new_version, "new_origin_digest": claimed.new_origin_digest}
    reason = AckReason.SUPERSEDED if is_correction else AckReason.RECALLED
    item = (claimed.item_id, version)
    entry = record_with_peer(
        session, state, event=event, peer=peer, allowed=True, reason=reason.value, detail=detail, now=now, item=item
    )
    # This holder's signed word that it applied the notice, naming its entry (SPEC §10.3).
    acknowledgement = sign(
        PayloadType.NOTICE_ACK,
        NoticeAck(
            notice_digest=signed.digest,
            kind=NoticeAckKind.CORRECTION if is_correction else NoticeAckKind.RECALL,
            item_id=claimed.item_id,
            item_version=version,
            originator=claimed.originator,
            holder=state.me,
            received_from=peer,
            copies=len(held),
            applied_at=now,
            log_seq=entry.seq,
            log_leaf=entry.entry_hash,
        ),
        [state.signing_key],
    )
    session.add(
        NoticeAckRow(notice_digest=signed.digest, holder=state.me, statement=_json(acknowledgement), received_at=now)
    )
    status = "superseded" if is_correction else "recalled"
    return Ack.done(reason, f"{len(held)} copies of v{version} {status}", acknowledgement)


def receive_ack(session: Session, state: NodeState, *, signed: Signed, peer: str, now: datetime) -> Ack:
    """A holder's signed acknowledgement of a notice, from it or passed on by a holder between (SPEC §10.3).

    The originator keeps and audits it: it can then show who applied its notice,
    downstream holders too. A holder that passed the notice on keeps it, audits it and
    passes it on to whoever sent it the notice.
    """
    event = AuditEvent.NOTICE_ACKNOWLEDGED
    try:
        ack = verify_notice_ack(signed, roster=state.roster)
    except RemoteProtocolError as exc:
        return refuse_remote(session, state, event, peer, Reason.SENDER_SIGNATURE_INVALID, str(exc), now)
    notices = session.scalars(
        select(NoticeRow).where(NoticeRow.item_id == ack.item_id, NoticeRow.item_version == ack.item_version)
    ).all()
    if not any(Signed.model_validate_json(row.statement).digest == ack.notice_digest for row in notices):
        detail = f"no notice {ack.notice_digest[:12]} of {ack.item_id} v{ack.item_version} here"
        return refuse_remote(session, state, event, peer, AckReason.UNKNOWN_ITEM, detail, now)
    if session.get(NoticeAckRow, (ack.notice_digest, ack.holder)) is not None:
        return Ack.done(AckReason.DUPLICATE, "acknowledgement already recorded")
    session.add(
        NoticeAckRow(notice_digest=ack.notice_digest, holder=ack.holder, statement=_json(signed), received_at=now)
    )
    fields: dict[str, audit.DetailValue] = {
        "holder": ack.holder,
        "notice_digest": ack.notice_digest,
        "kind": ack.kind.value,
        "via": peer,
        "ack_digest": signed.digest,
        "holder_seq": ack.log_seq,
        "holder_leaf": ack.log_leaf,
    }
    if ack.originator != state.me:  # pass it on towards the originator
        own = session.get(NoticeAckRow, (ack.notice_digest, state.me))
        if own is not None:
            upstream = NoticeAck.from_bytes(Signed.model_validate_json(own.statement).payload).received_from
            queue_control(session, recipient=upstream, rpc=ControlRpc.ACKNOWLEDGE, statement=signed, now=now)
            fields["forwarded_to"] = upstream
    item = (ack.item_id, ack.item_version)
    record_with_peer(
        session,
        state,
        event=event,
        peer=peer,
        allowed=True,
        reason=AckReason.RECORDED.value,
        detail=fields,
        now=now,
        item=item,
    )
    return Ack.done(AckReason.RECORDED, f"{ack.holder}'s acknowledgement of {ack.notice_digest[:12]}")


def _json(statement: Signed) -> bytes:
    return statement.model_dump_json().encode()


def carried_to(session: Session, item_id: str, item_version: int, grant_id: str) -> list[str]:
    """Every member this node passed the item version to with ``grant_id`` in the chain (sent or being sent).

    Read from this node's RESHARE entries (which name the grants each envelope carried)
    and the outbox entries' states, both kept after the item is purged.
    """
    envelopes = {}
    for envelope_id, detail in session.execute(
        select(AuditEntryRow.envelope_id, AuditEntryRow.detail).where(
            AuditEntryRow.item_id == item_id,
            AuditEntryRow.item_version == item_version,
            AuditEntryRow.event == AuditEvent.RESHARE.value,
            AuditEntryRow.allowed.is_(True),
        )
    ):
        if envelope_id and grant_id in json.loads(detail).get("grants", []):
            envelopes[envelope_id] = True
    if not envelopes:
        return []
    return sorted(
        set(
            session.scalars(
                select(OutboxEntry.recipient).where(
                    OutboxEntry.envelope_id.in_(list(envelopes)),
                    OutboxEntry.state.in_((OutboxState.DELIVERED, OutboxState.PENDING)),
                )
            )
        )
    )


def known_grant(session: Session, grant_id: str, item_id: str) -> ConsentGrant | None:
    """A grant this node holds: issued by it or to it, or inside the chain of a copy it received."""
    row = session.get(ConsentGrantRow, grant_id)
    if row is not None:
        return parse_unverified(Signed.model_validate_json(row.statement), PayloadType.CONSENT_GRANT, ConsentGrant)
    for chain in session.scalars(select(InboxItem.consent_chain).where(InboxItem.item_id == item_id)):
        for statement in chain_from_bytes(chain):
            grant = parse_unverified(statement, PayloadType.CONSENT_GRANT, ConsentGrant)
            if grant.grant_id == grant_id:
                return grant
    return None


def apply_revocation(
    session: Session, state: NodeState, *, grant: ConsentGrant, revocation_id: str, signed: Signed, now: datetime
) -> None:
    """Record a revocation issued or applied here: the grant stops carrying consent (SPEC §9.4.3)."""
    row = session.get(ConsentGrantRow, grant.grant_id)
    if row is not None:
        row.revoked_at = row.revoked_at or now
    state.revoked_grants.add(grant.grant_id)
    _keep(session, revocation_id, NoticeKind.REVOCATION, grant.item_id, grant.item_version, grant.grantor, signed, now)


def _receive_revocation(session: Session, state: NodeState, *, signed: Signed, peer: str, now: datetime) -> Ack:
    """A grant's grantor revokes it (SPEC §9.4.3): applied here, then passed on along the item's path.

    The grant may be one this node holds in its grant table or one inside the consent
    chain of a copy it received. The same signed bytes go on to every member this node
    passed the item on to with that grant in the chain: the grantee, and through onward
    grants every later holder.
    """
    event = AuditEvent.CONSENT_REVOKED
    try:
        claimed = parse_unverified(signed, PayloadType.CONSENT_REVOCATION, ConsentRevocation)
    except RemoteProtocolError as exc:
        return refuse_remote(session, state, event, peer, Reason.ENVELOPE_MALFORMED, str(exc), now)
    grant = known_grant(session, claimed.grant_id, claimed.item_id)
    if grant is None:
        why = f"{state.me} holds no grant {claimed.grant_id}"
        return refuse_remote(session, state, event, peer, AckReason.UNKNOWN_GRANT, why, now)
    try:
        revocation = verify_revocation(signed, roster=state.roster, grant=grant)
    except RemoteProtocolError as exc:
        return refuse_remote(session, state, event, peer, Reason.CONSENT_INVALID, str(exc), now)
    if session.get(NoticeRow, revocation.revocation_id) is not None:
        return Ack.done(AckReason.DUPLICATE, "revocation already applied")
    apply_revocation(session, state, grant=grant, revocation_id=revocation.revocation_id, signed=signed, now=now)
    forward = [m for m in carried_to(session, grant.item_id, grant.item_version, grant.grant_id) if m != peer]
    for downstream in forward:  # the same signed bytes travel on unchanged, like a recall (SPEC §10.1)
        queue_control(session, recipient=downstream, rpc=ControlRpc.NOTIFY, statement=signed, now=now)
    detail: dict[str, audit.DetailValue] = {
        "grant_id": grant.grant_id,
        "revoker": revocation.revoker,
        "grantee": grant.grantee,
        "why": revocation.reason,
        "forwarded_to": forward,
        "notice_digest": signed.digest,
    }
    item = (grant.item_id, grant.item_version)
    revoked = AckReason.REVOKED.value
    record_with_peer(
        session, state, event=event, peer=peer, allowed=True, reason=revoked, detail=detail, now=now, item=item
    )
    return Ack.done(AckReason.REVOKED, grant.grant_id)
