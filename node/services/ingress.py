"""Ingress: verify, decide and record a batch of envelopes from one peer (SPEC §9.2, §11.3).

What happens when an envelope arrives: the Exchange servicer (``node.rpc.exchange``)
identifies the TLS peer and hands the call's batches to the runtime's inbound
pipelining (``node.runtime.inbound``), which runs ``receive_batch`` for each batch as
one job of the group commit. Here, in order:

1. every envelope is checked with ``protocol.policy.check_ingress`` (``check_ingress_batch``,
   no database): §9.2.1 parse, §9.2.2 known sender, §9.2.3 TLS peer is the sender,
   §9.2.4 key not revoked, §9.2.5 header signature (a batch root once, §4.6), §9.2.6
   addressed here, §9.2.7 time window, §9.2.9 origin attestation, §9.2.10 label, the
   transfer checks of §9.3–§9.4, and §9.2.11 opening (a batch key once, §8.2);
2. replay and re-delivery are decided against the deliveries already committed or
   written earlier in this transaction (§9.2.8, §11.3): an identical envelope gets its
   stored receipt back and stores nothing; a reused envelope id or nonce is a REPLAY;
   an item version already held (or accepted earlier in the batch) under another origin
   attestation is an EQUIVOCATION (§9.2.9 step 7, ``node.services.equivocation``);
3. the new receipts are signed under one batch signature (§4.6), after step 4's entries;
4. the INGRESS audit entries are appended, and each receipt names where its entry sits
   in this log (its seq and leaf hash, §11.3); accepted items (sealed at rest, §11.5)
   and the delivery records are written in the caller's transaction; the runtime answers
   only after it commits.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from node import audit
from node.audit import AuditEvent, AuditReason
from node.codec import chain_to_bytes
from node.lifecycle import InboxStatus
from node.services.equivocation import HeldOrigins
from node.services.state import NodeState, at_rest_binding, core_table, record_with_peer
from node.store import Delivery, HotWrite, InboxItem, driver_time
from protocol.consent import ConsentGrant, chain_retain_until
from protocol.envelope import Envelope, EnvelopeHeader
from protocol.errors import MalformedError
from protocol.policy import Decision, IngressResult, Reason, check_ingress
from protocol.receipt import Receipt
from protocol.retention import retention_deadline
from protocol.statements import PayloadType, Signed, parse_unverified, sign, sign_many

__all__ = [
    "check_ingress_batch",
    "commit_ingress_batch",
    "receive_batch",
    "record_oversized_batch",
    "record_refused_connection",
    "sign_receipts",
]

_INBOX, _DELIVERIES = (core_table(m) for m in (InboxItem, Delivery))
_INBOX_INSERT, _DELIVERIES_INSERT = (HotWrite(t.insert()) for t in (_INBOX, _DELIVERIES))
# Hot-path queries built once: SQLAlchemy memoises a statement's cache key, so a
# statement object reused costs no coercion or cache-key walk per call.
_DELIVERY_COLUMNS = (
    _DELIVERIES.c.envelope_id,
    _DELIVERIES.c.envelope_digest,
    _DELIVERIES.c.sender,
    _DELIVERIES.c.nonce,
    _DELIVERIES.c.receipt,
)
_DELIVERIES_BY_ID = select(*_DELIVERY_COLUMNS).where(_DELIVERIES.c.envelope_id.in_(bindparam("ids", expanding=True)))
_DELIVERIES_BY_NONCE = select(*_DELIVERY_COLUMNS).where(
    _DELIVERIES.c.sender == bindparam("sender"), _DELIVERIES.c.nonce.in_(bindparam("nonces", expanding=True))
)

#: Stands in for an envelope that did not parse, so its refusal is audited like any other.
_UNPARSED = Envelope(
    header=Signed(payload_type="", payload=b"", signatures=()),
    origin=Signed(payload_type="", payload=b"", signatures=()),
    consents=(),
    ciphertext=b"",
)


def check_ingress_batch(
    state: NodeState,
    *,
    envelopes: Sequence[Envelope | MalformedError],
    peer_tls_identity: str,
    peer_fingerprint: str | None,
    now: datetime,
) -> list[tuple[Envelope, IngressResult]]:
    """Step 1: ``check_ingress`` for each envelope of a batch from one TLS peer (SPEC §9.2). No database.

    An envelope that did not parse is refused as ENVELOPE_MALFORMED. Replay is decided
    in the commit (``commit_ingress_batch``).
    """
    ctx = state.policy(now)
    out: list[tuple[Envelope, IngressResult]] = []
    for envelope in envelopes:
        if isinstance(envelope, MalformedError):
            refused = Decision.refuse(Reason.ENVELOPE_MALFORMED, str(envelope))
            out.append((_UNPARSED, IngressResult(refused, None, None, None)))
            continue
        result = check_ingress(
            envelope,
            receiver=state.me,
            receiver_keys=state.hpke_keys,
            peer_tls_identity=peer_tls_identity,
            peer_fingerprint=peer_fingerprint,
            ctx=ctx,
            window=state.window,
            # Decided authoritatively inside the commit (commit_ingress_batch).
            is_replay=lambda header, digest: False,
            roots=state.roots,
            batch_keys=state.batch_keys,
            previous_keys=state.previous_hpke,
        )
        out.append((envelope, result))
    return out


def receive_batch(
    session: Session,
    state: NodeState,
    *,
    envelopes: Sequence[Envelope | MalformedError],
    peer: str,
    peer_tls_identity: str,
    peer_fingerprint: str | None,
    now: datetime,
) -> list[Signed]:
    """Verify, decide and record a batch in the caller's transaction; the receipts, in order (SPEC §11.3).

    The checks run in the same database job as the commit (SPEC §11.7): verifying holds
    the GIL (pydantic, HPKE) apart from one signature check per batch root, so a thread
    of their own only added hand-offs and contention.
    """
    checked = check_ingress_batch(
        state, envelopes=envelopes, peer_tls_identity=peer_tls_identity, peer_fingerprint=peer_fingerprint, now=now
    )
    return commit_ingress_batch(session, state, checked=checked, peer=peer, now=now)


def sign_receipts(state: NodeState, receipts: Sequence[Receipt]) -> list[Signed]:
    """One receipt is signed directly; several share one batch signature (SPEC §4.6)."""
    if len(receipts) == 1:
        return [sign(PayloadType.RECEIPT, receipts[0], [state.signing_key])]
    return sign_many([(PayloadType.RECEIPT, receipt) for receipt in receipts], [state.signing_key])


@dataclass
class _Decided:
    """One envelope of the batch that this commit decides (not an identical re-delivery)."""

    envelope: Envelope
    result: IngressResult
    #: ``result.decision``, or REPLAY if the envelope id or nonce was used before.
    decision: Decision
    envelope_id: str
    #: The envelope's digest, which its receipt names.
    digest: str
    #: The member the receipt names as sender (the claimed one, or the TLS peer).
    sender: str
    signed: Signed | None = None


class _Seen:
    """Deliveries already committed or written earlier in this transaction, then this batch's own."""

    def __init__(self, session: Session, headers: Sequence[EnvelopeHeader]) -> None:
        # (digest, stored receipt or None for this batch's own) by envelope id and by (sender, nonce)
        self.by_id: dict[str, list[tuple[str, bytes | None]]] = {}
        self.by_nonce: dict[tuple[str, str], list[tuple[str, bytes | None]]] = {}
        for row in self._prior(session, headers):
            self.by_id.setdefault(row.envelope_id, []).append((row.envelope_digest, row.receipt))
            self.by_nonce.setdefault((row.sender, row.nonce), []).append((row.envelope_digest, row.receipt))

    @staticmethod
    def _prior(session: Session, headers: Sequence[EnvelopeHeader]) -> list[Any]:
        """One indexed query by envelope id and one per sender by nonce (an OR of the two scans the table)."""
        if not headers:
            return []
        connection = session.connection()
        ids = [h.envelope_id for h in headers]
        found = {row.envelope_id: row for row in connection.execute(_DELIVERIES_BY_ID, {"ids": ids})}
        nonces: dict[str, list[str]] = {}
        for header in headers:
            nonces.setdefault(header.sender, []).append(header.nonce)
        for sender, sender_nonces in nonces.items():
            rows = connection.execute(_DELIVERIES_BY_NONCE, {"sender": sender, "nonces": sender_nonces})
            found.update((row.envelope_id, row) for row in rows)
        return list(found.values())

    def stored_receipt(self, header: EnvelopeHeader, digest: str) -> bytes | None:
        """The receipt already committed for this very envelope, if any."""
        return next((r for d, r in self.by_id.get(header.envelope_id, []) if d == digest and r is not None), None)

    def reused(self, header: EnvelopeHeader) -> bool:
        """Whether the envelope id or the sender's nonce was used by another envelope."""
        return bool(self.by_id.get(header.envelope_id) or self.by_nonce.get((header.sender, header.nonce)))

    def add(self, header: EnvelopeHeader, digest: str) -> None:
        self.by_id.setdefault(header.envelope_id, []).append((digest, None))
        self.by_nonce.setdefault((header.sender, header.nonce), []).append((digest, None))


def _claimed_envelope_id(envelope: Envelope) -> str:
    """The envelope id an unverified header claims, echoed in the refusal receipt.

    The sender needs it to match the refusal to its outbox entry and stop retrying;
    nothing is stored under it (no delivery record for an unverified header).
    """
    try:
        return EnvelopeHeader.from_bytes(envelope.header.payload).envelope_id
    except MalformedError:
        return secrets.token_hex(16)


def commit_ingress_batch(
    session: Session,
    state: NodeState,
    *,
    checked: Sequence[tuple[Envelope, IngressResult]],
    peer: str,
    now: datetime,
) -> list[Signed]:
    """Steps 2–4: store ingress decisions and return the signed receipts, in order (SPEC §11.3).

    Runs inside the commit transaction, which is where re-delivery and replay are
    decided race-free (SPEC §9.2.8): the same envelope again returns the stored receipt
    and stores nothing; a reused envelope id or nonce with other bytes is a REPLAY.
    Items (if accepted), audit entries and replay records commit together.
    """
    seen = _Seen(session, [result.header for _, result in checked if result.header is not None])
    held = HeldOrigins(session, [result.attestation for _, result in checked if result.attestation is not None])
    # Per envelope, in order: a stored receipt (identical re-delivery) or what this commit decides.
    answers: list[bytes | _Decided] = []
    decided: list[_Decided] = []
    first_of: dict[str, _Decided] = {}  # envelope id -> this batch's decision, for repeats within it
    for envelope, result in checked:
        header, decision, digest = result.header, result.decision, envelope.digest
        if header is not None:
            stored = seen.stored_receipt(header, digest)
            if stored is not None:
                answers.append(stored)
                continue
            first = first_of.get(header.envelope_id)
            if first is not None and first.envelope.digest == digest:
                answers.append(first)  # repeated within this batch: stored and audited once
                continue
            if seen.reused(header):
                decision = Decision.refuse(Reason.REPLAY, f"envelope id or nonce of {header.sender} reused")
        if result.attestation is not None and decision.reason is not Reason.REPLAY:  # SPEC §9.2.9 step 7
            decision = held.decide(result.attestation, envelope.origin.digest, decision)
            if decision.allowed:
                held.accepted(result.attestation, envelope.origin.digest)
        envelope_id = header.envelope_id if header is not None else _claimed_envelope_id(envelope)
        entry = _Decided(envelope, result, decision, envelope_id, digest, header.sender if header else peer)
        answers.append(entry)
        decided.append(entry)
        if header is not None and decision.reason is not Reason.REPLAY:
            first_of[envelope_id] = entry
            seen.add(header, digest)
    # The INGRESS entries first: each receipt names where its entry sits in this log (SPEC §11.3).
    positions = _audit(session, state, decided, peer, now)
    receipts = [
        Receipt(
            envelope_id=entry.envelope_id,
            envelope_digest=entry.digest,
            sender=entry.sender,
            receiver=state.me,
            accepted=entry.decision.allowed,
            reason=entry.decision.reason.value,
            rule=entry.decision.rule,
            received_at=now,
            log_seq=seq,
            log_leaf=leaf,
        )
        for entry, (seq, leaf) in zip(decided, positions, strict=True)
    ]
    for entry, signed in zip(decided, sign_receipts(state, receipts), strict=True):
        entry.signed = signed
    _store(session, state, decided, now)
    return [Signed.model_validate_json(a) if isinstance(a, bytes) else _signed(a) for a in answers]


def _signed(entry: _Decided) -> Signed:
    assert entry.signed is not None  # every decided receipt was signed above
    return entry.signed


def _store(session: Session, state: NodeState, decided: Sequence[_Decided], now: datetime) -> None:
    """Inbox rows for accepted items and delivery records (with their signed receipts), in bulk."""
    connection = session.connection()
    at = driver_time(connection.dialect, now)
    inbox: list[dict[str, object]] = []
    deliveries: list[dict[str, object]] = []
    for entry in decided:
        header, attestation, decision = entry.result.header, entry.result.attestation, entry.decision
        if decision.allowed and decision.reason is Reason.ALLOWED:
            assert header is not None
            assert attestation is not None
            assert entry.result.item is not None
            label = attestation.label
            inbox.append(
                {
                    "envelope_id": entry.envelope_id,
                    "item_id": attestation.item_id,
                    "item_version": attestation.item_version,
                    "originator": attestation.originator,
                    "sender": header.sender,
                    "origin_digest": header.origin_digest,  # the carried origin's, checked at ingress
                    "band": int(label.band),
                    "category": label.category.value,
                    "topics": json.dumps(list(label.topics)),
                    "label_json": label.model_dump_json(),
                    "origin_statement": entry.envelope.origin.model_dump_json().encode(),
                    "consent_chain": chain_to_bytes(entry.envelope.consents),
                    # The exact attested bytes, so the stored copy still matches plaintext_digest.
                    "sealed_content": state.at_rest.seal(
                        entry.result.plaintext or entry.result.item.to_bytes(),
                        at_rest_binding(attestation.item_id, attestation.item_version, entry.envelope_id),
                    ),
                    "received_at": at,
                    "status": InboxStatus.HELD.value,
                    # When this copy's retention ends (SPEC §11.13, §9.4.4).
                    "retain_until": driver_time(connection.dialect, _deadline(state, entry, label.retain_until, now)),
                    "purged_at": None,
                }
            )
        if header is not None and decision.reason is not Reason.REPLAY:
            # Replays keep the first record; everything else leaves one, refused or not.
            deliveries.append(
                {
                    "envelope_id": entry.envelope_id,
                    "envelope_digest": entry.digest,
                    "sender": header.sender,
                    "nonce": header.nonce,
                    "accepted": decision.allowed,
                    "reason": decision.reason.value,
                    "receipt": _signed(entry).model_dump_json().encode(),
                    "received_at": at,
                }
            )
    _INBOX_INSERT.execute(connection, inbox)
    _DELIVERIES_INSERT.execute(connection, deliveries)


def _deadline(state: NodeState, entry: _Decided, retain_until: datetime, now: datetime) -> datetime:
    """When an accepted copy's retention ends: label, chain conditions, agreement maximum (SPEC §11.13)."""
    chain = [parse_unverified(c, PayloadType.CONSENT_GRANT, ConsentGrant) for c in entry.envelope.consents]
    agreement = state.agreements.get(entry.sender, state.me)
    maximum = None if agreement is None else timedelta(days=agreement.max_retention_days)
    return retention_deadline(
        retain_until, held_since=now, max_retention=maximum, condition=chain_retain_until(chain) if chain else None
    )


def _audit(
    session: Session, state: NodeState, decided: Sequence[_Decided], peer: str, now: datetime
) -> list[tuple[int, str]]:
    """One INGRESS entry per decision, in bulk; each entry's (seq, entry_hash)."""
    entries: list[audit.Entry] = []
    for entry in decided:
        header, attestation, decision = entry.result.header, entry.result.attestation, entry.decision
        entries.append(
            audit.Entry(
                AuditEvent.INGRESS,
                state.me,
                peer=peer,
                item_id=attestation.item_id if attestation else (header.item_id if header else None),
                item_version=attestation.item_version if attestation else (header.item_version if header else None),
                envelope_id=entry.envelope_id if header else None,
                allowed=decision.allowed,
                reason=decision.reason.value,
                rule=decision.rule,
                detail={
                    "detail": decision.detail,
                    "envelope_digest": entry.digest,
                    "claimed_sender": header.sender if header else None,
                    "band": attestation.label.band.name if attestation else None,
                    "consents": [c.digest for c in entry.envelope.consents],
                },
            )
        )
    return audit.append_many(session, now=now, entries=entries)


def record_oversized_batch(session: Session, state: NodeState, *, peer: str, detail: str, now: datetime) -> None:
    """A peer sent a batch over the limit (SPEC §11.6): audited once, then the call is ended."""
    reason = Reason.ENVELOPE_MALFORMED.value
    event, refused = AuditEvent.INGRESS, {"detail": detail}
    record_with_peer(session, state, event=event, peer=peer, allowed=False, reason=reason, detail=refused, now=now)


def record_refused_connection(session: Session, state: NodeState, *, who: str, peer_addr: str, now: datetime) -> None:
    """An Exchange call from a TLS peer that is no roster member (SPEC §11.2)."""
    reason, detail = AuditReason.UNKNOWN_PEER.value, {"address": peer_addr}
    event = AuditEvent.CONNECTION_REFUSED
    record_with_peer(session, state, event=event, peer=who, allowed=False, reason=reason, detail=detail, now=now)
