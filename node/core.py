"""What a node does, as plain functions over a database session (SPEC §11).

No gRPC here: servicers translate wire messages and call these; the async layer runs
them on the node's single database thread. Every function that changes state appends
its audit entries in the same transaction as the change (SPEC §11.4); the caller
commits. ``now`` is always passed in.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Table, bindparam, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from node import audit
from node.audit import AuditEvent
from node.config import ConsentPolicy
from node.convert import chain_from_bytes, chain_to_bytes, envelope_to_bytes
from node.storage import (
    ConsentGrantRow,
    ConsentRequestRow,
    ControlMessage,
    Delivery,
    HotWrite,
    InboxItem,
    NoticeRow,
    OriginalItem,
    OutboxEntry,
    OutboxEnvelope,
    driver_time,
)
from protocol.agreement import AgreementBook
from protocol.classification import Band
from protocol.consent import ConsentDenial, ConsentGrant, ConsentRequest, ConsentRevocation
from protocol.encoding import time_ordered_id
from protocol.envelope import (
    BatchKeys,
    Envelope,
    EnvelopeHeader,
    OriginAttestation,
    SealRequest,
    Suite,
    ToAttest,
    attest_many,
    seal_many,
)
from protocol.errors import IntelshareError, LocalProtocolError, MalformedError, RemoteProtocolError
from protocol.item import RawData, ReportTemplate, item_from_bytes
from protocol.keys import HpkeKeyPair, SigningKey, VerifiedRoots
from protocol.label import Label
from protocol.notices import Correction, Recall, verify_correction, verify_recall
from protocol.policy import (
    Decision,
    IngressResult,
    PolicyContext,
    Reason,
    TimeWindow,
    Transfer,
    check_egress,
    check_ingress,
)
from protocol.receipt import Receipt
from protocol.roster import Roster
from protocol.statements import PayloadType, Signed, parse_unverified, sign, sign_many, verify, verify_and_parse

__all__ = [
    "AtRestKey",
    "DeskError",
    "NewItem",
    "NodeState",
    "Outcome",
    "PlannedTransfer",
    "PreparedItem",
    "Settled",
    "SubmitResult",
    "ask_consent",
    "check_ingress_batch",
    "check_receipt",
    "check_receipts",
    "commit_ingress",
    "commit_ingress_batch",
    "decide_consent",
    "load_runtime_sets",
    "plan_transfers",
    "prepare_item",
    "prepare_items",
    "read_item",
    "recall",
    "receive_batch",
    "receive_consent_decision",
    "receive_consent_request",
    "receive_notice",
    "record_delivery_error",
    "record_receipt",
    "record_receipts",
    "reshare",
    "settle_receipts",
    "store_item",
    "store_items",
    "submit",
    "submit_many",
]


class DeskError(LocalProtocolError):
    """An officer's request cannot be carried out; the message says why."""


class AtRestKey:
    """The node-local key that keeps payloads sealed in the database (SPEC §11.5).

    AES-256-GCM with a random 96-bit nonce per value; the associated data binds each
    sealed value to its row, so a ciphertext moved to another row does not open.
    """

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("the at-rest key must be 32 bytes")
        self._aead = AESGCM(key)

    def seal(self, plaintext: bytes, binding: str) -> bytes:
        """Nonce followed by ciphertext."""
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, plaintext, binding.encode())

    def open(self, sealed: bytes, binding: str) -> bytes:
        """Inverse of ``seal``; raises ``cryptography.exceptions.InvalidTag`` if tampered."""
        return self._aead.decrypt(sealed[:12], sealed[12:], binding.encode())


@dataclass
class NodeState:
    """A running node's identity, keys and federation view, plus in-memory indexes."""

    me: str
    signing_key: SigningKey
    hpke_keys: HpkeKeyPair
    at_rest: AtRestKey
    roster: Roster
    agreements: AgreementBook
    window: TimeWindow
    suite: Suite
    consent: ConsentPolicy
    #: (item_id, version) recalled; loaded at start, kept current by this module.
    recalled: set[tuple[str, int]] = field(default_factory=set)
    revoked_grants: set[str] = field(default_factory=set)
    #: Batch roots whose signature verified (SPEC §4.6): each batch is checked once.
    roots: VerifiedRoots = field(default_factory=VerifiedRoots)
    #: Batch keys already opened with ``hpke_keys`` (SPEC §8.2): each batch's HPKE runs once.
    batch_keys: BatchKeys = field(init=False)

    def __post_init__(self) -> None:
        self.batch_keys = BatchKeys(self.hpke_keys)

    def policy(self, now: datetime) -> PolicyContext:
        """The policy context at ``now``."""
        return PolicyContext(
            roster=self.roster,
            agreements=self.agreements,
            now=now,
            is_recalled=lambda item_id, version: (item_id, version) in self.recalled,
            is_grant_revoked=lambda grant_id: grant_id in self.revoked_grants,
        )


@dataclass(frozen=True)
class Outcome:
    """The egress decision for one recipient and, if allowed, its outbox entry."""

    recipient: str
    decision: Decision
    envelope_id: str | None
    #: The sealed envelope as stored in the outbox, handed to the delivery pump.
    envelope: bytes | None = None


@dataclass(frozen=True)
class SubmitResult:
    """What ``submit`` and ``reshare`` return to the desk."""

    item_id: str
    item_version: int
    outcomes: tuple[Outcome, ...]


CONTROL_QUEUED = "intelshare.control_queued"


def queue_control(session: Session, *, recipient: str, rpc: str, statement: Signed, now: datetime) -> str:
    """Commit a control message with the change it announces; the pump delivers it (SPEC §11.9)."""
    message_id = f"{statement.digest}:{recipient}"
    existing = session.get(ControlMessage, message_id)
    if existing is not None:
        # Asked to send it again (e.g. a recall must follow an envelope that landed after
        # the first one): re-arm it. Receivers treat a repeat as a duplicate.
        existing.state, existing.next_attempt_at, existing.updated_at = "pending", now, now
    else:
        session.add(
            ControlMessage(
                message_id=message_id,
                recipient=recipient,
                rpc=rpc,
                statement=statement.model_dump_json().encode(),
                state="pending",
                attempts=0,
                next_attempt_at=now,
                last_error=None,
                ack=None,
                created_at=now,
                updated_at=now,
            )
        )
    session.info[CONTROL_QUEUED] = True
    return message_id


def load_runtime_sets(session: Session, state: NodeState) -> None:
    """Rebuild the in-memory recall and revocation indexes from the database."""
    state.recalled = {
        (row.item_id, row.item_version)
        for row in session.scalars(select(OriginalItem).where(OriginalItem.recalled_at.is_not(None)))
    }
    state.recalled |= {
        (row.item_id, row.item_version) for row in session.scalars(select(NoticeRow).where(NoticeRow.kind == "recall"))
    }
    state.revoked_grants = set(
        session.scalars(select(ConsentGrantRow.grant_id).where(ConsentGrantRow.revoked_at.is_not(None)))
    )
    state.revoked_grants |= {
        row.item_id
        for row in session.scalars(select(NoticeRow).where(NoticeRow.kind == "revocation"))
        # For revocations the notice keeps the grant id in item_id (see receive_notice).
    }


# --- egress -------------------------------------------------------------------------------


def _table(model: type[object]) -> Table:
    table: Table = model.__table__  # type: ignore[attr-defined]
    return table


# Hot paths write with Core on the session's connection: no ORM bulk machinery, no
# autoflush. Nothing else in a transaction holds ORM objects for rows inserted this way.
_ORIGINALS, _OUTBOX, _ENVELOPES, _INBOX, _DELIVERIES = (
    _table(m) for m in (OriginalItem, OutboxEntry, OutboxEnvelope, InboxItem, Delivery)
)


# Hot-path writes, compiled once; their rows go to the driver as they are (HotWrite).
_ORIGINALS_INSERT, _OUTBOX_INSERT, _ENVELOPES_INSERT, _INBOX_INSERT, _DELIVERIES_INSERT = (
    HotWrite(t.insert()) for t in (_ORIGINALS, _OUTBOX, _ENVELOPES, _INBOX, _DELIVERIES)
)
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
_OUTBOX_TO_SETTLE = select(
    _OUTBOX.c.envelope_id,
    _OUTBOX.c.recipient,
    _OUTBOX.c.state,
    _OUTBOX.c.reason,
    _OUTBOX.c.item_id,
    _OUTBOX.c.item_version,
    _OUTBOX.c.attempts,
).where(_OUTBOX.c.envelope_id.in_(bindparam("ids", expanding=True)))


def _binding(item_id: str, version: int, where: str) -> str:
    return f"{where}|{item_id}|{version}"


@dataclass(frozen=True)
class PlannedTransfer:
    """One recipient's egress decision and, if allowed, its sealed envelope.

    Computed without the database (signing and sealing are the costly part of egress);
    stored by ``store_item`` or ``reshare`` in the caller's transaction.
    """

    recipient: str
    decision: Decision
    consents: tuple[Signed, ...]
    envelope_id: str | None = None
    envelope: bytes | None = None


@dataclass(frozen=True)
class PreparedItem:
    """A new item (or version): attested, decided and sealed, not yet stored."""

    item_id: str
    label: Label
    origin: Signed
    plaintext: bytes
    planned: tuple[PlannedTransfer, ...]


@dataclass(frozen=True)
class _Plan:
    """One held item to pass on: what ``_plan_many`` needs for it."""

    origin: Signed
    attestation: OriginAttestation
    plaintext: bytes
    consents_for: Callable[[str], tuple[Signed, ...]]
    recipients: Sequence[str]
    suite: Suite


def _plan_many(state: NodeState, plans: Sequence[_Plan], now: datetime) -> list[tuple[PlannedTransfer, ...]]:
    """Egress decisions for many items, then one ``seal_many`` per suite (SPEC §8.5, §9.3, §4.6).

    Every allowed envelope of the batch has its header under one batch signature.
    """
    ctx = state.policy(now)
    decided: list[list[tuple[str, Decision, tuple[Signed, ...]]]] = []
    to_seal: dict[Suite, list[tuple[int, int, SealRequest]]] = {}
    for plan_index, plan in enumerate(plans):
        rows: list[tuple[str, Decision, tuple[Signed, ...]]] = []
        for recipient in dict.fromkeys(plan.recipients):
            consents = plan.consents_for(recipient)
            transfer = Transfer(state.me, recipient, plan.attestation, plan.origin.digest, consents)
            decision = check_egress(transfer, ctx)
            if decision.allowed:
                agreement = state.agreements.get(state.me, recipient)
                member = state.roster.member(recipient)
                assert agreement is not None  # check_egress established both
                assert member is not None
                request = SealRequest(
                    plan.plaintext,
                    plan.origin,
                    member,
                    agreement.agreement_id,
                    agreement.version,
                    consents,
                    plan.attestation,
                )
                to_seal.setdefault(plan.suite, []).append((plan_index, len(rows), request))
            rows.append((recipient, decision, consents))
        decided.append(rows)
    sealed: dict[tuple[int, int], Envelope] = {}
    for suite, requests in to_seal.items():
        envelopes = seal_many(
            [request for _, _, request in requests], sender=state.me, sender_key=state.signing_key, suite=suite, now=now
        )
        for (plan_index, row_index, _), sealed_envelope in zip(requests, envelopes, strict=True):
            sealed[(plan_index, row_index)] = sealed_envelope
    out = []
    for plan_index, rows in enumerate(decided):
        planned = []
        for row_index, (recipient, decision, consents) in enumerate(rows):
            envelope = sealed.get((plan_index, row_index))
            if envelope is None:
                planned.append(PlannedTransfer(recipient, decision, consents))
                continue
            # This node's own freshly signed header: only its id is needed, not a validating parse.
            envelope_id = str(json.loads(envelope.header.payload)["envelope_id"])
            planned.append(PlannedTransfer(recipient, decision, consents, envelope_id, envelope_to_bytes(envelope)))
        out.append(tuple(planned))
    return out


def plan_transfers(
    state: NodeState,
    *,
    origin: Signed,
    plaintext: bytes,
    consents_for: Callable[[str], tuple[Signed, ...]],
    recipients: Sequence[str],
    suite: Suite,
    now: datetime,
) -> tuple[PlannedTransfer, ...]:
    """Egress decision per distinct recipient, each under its own pair's agreement (SPEC §8.5, §9.3)."""
    attestation = OriginAttestation.from_bytes(origin.payload)
    return _plan_many(state, [_Plan(origin, attestation, plaintext, consents_for, recipients, suite)], now)[0]


@dataclass(frozen=True)
class NewItem:
    """An officer's new item (or new version, with ``item_id``) for ``prepare_items``."""

    label: Label
    item: ReportTemplate | RawData
    recipients: tuple[str, ...]
    suite: Suite
    item_id: str | None = None


def prepare_items(state: NodeState, requests: Sequence[NewItem], *, now: datetime) -> list[PreparedItem]:
    """Validate, attest, decide and seal items this node originates. No database access.

    The attestations share one batch signature, and so do the envelope headers (SPEC §4.6).
    """
    to_attest = []
    for request in requests:
        label = request.label
        if label.originator != state.me:
            raise DeskError(f"this node is {state.me}; it cannot originate items for {label.originator}")
        expected = state.roster.marking(state.me, label.band)
        if expected != label.originator_marking:
            raise DeskError(
                f"{state.me}'s marking for {label.band.title} is {expected!r}, not {label.originator_marking!r}"
            )
        if request.item_id is None and (label.item_version != 1 or label.supersedes is not None):
            raise DeskError("a new item is version 1 and supersedes nothing; give item_id to correct one")
        # A new item's id is time-ordered (SPEC §4.7), so stored items append to their indexes.
        to_attest.append(ToAttest(request.item_id or time_ordered_id(now), label, request.item))
    try:
        attested = attest_many(to_attest, originator_key=state.signing_key, now=now)
    except LocalProtocolError as exc:
        raise DeskError(str(exc)) from exc
    plans = [
        _Plan(a.origin, a.attestation, a.plaintext, _no_consents, r.recipients, r.suite)
        for a, r in zip(attested, requests, strict=True)
    ]
    planned = _plan_many(state, plans, now)
    return [
        PreparedItem(request.item_id, request.label, a.origin, a.plaintext, transfers)
        for request, a, transfers in zip(to_attest, attested, planned, strict=True)
    ]


def _no_consents(recipient: str) -> tuple[Signed, ...]:
    return ()


def prepare_item(
    state: NodeState,
    *,
    label: Label,
    item: ReportTemplate | RawData,
    recipients: Sequence[str],
    suite: Suite,
    now: datetime,
    item_id: str | None = None,
) -> PreparedItem:
    """Validate, attest, decide and seal one item this node originates. No database access."""
    return prepare_items(state, [NewItem(label, item, tuple(recipients), suite, item_id)], now=now)[0]


def store_items(
    session: Session, state: NodeState, *, prepared: Sequence[PreparedItem], now: datetime
) -> list[SubmitResult]:
    """Store new items sealed at rest, their outbox envelopes and egress audit entries, in bulk."""
    if not prepared:
        return []
    # No existence check: ids are fresh random values and the primary key refuses a clash.
    connection = session.connection()
    at = driver_time(connection.dialect, now)
    _ORIGINALS_INSERT.execute(
        connection,
        [
            {
                "item_id": p.item_id,
                "item_version": p.label.item_version,
                "origin_statement": p.origin.model_dump_json().encode(),
                "origin_digest": p.origin.digest,
                "sealed_content": state.at_rest.seal(
                    p.plaintext, _binding(p.item_id, p.label.item_version, "original")
                ),
                "band": int(p.label.band),
                "created_at": at,
                "recalled_at": None,
            }
            for p in prepared
        ],
    )
    outcomes = _store_transfers_many(
        session,
        state,
        [(p.origin, p.item_id, p.label.item_version, p.label, p.planned) for p in prepared],
        kind="item",
        now=now,
    )
    return [SubmitResult(p.item_id, p.label.item_version, o) for p, o in zip(prepared, outcomes, strict=True)]


def submit_many(
    session: Session, state: NodeState, *, requests: Sequence[NewItem], now: datetime
) -> list[SubmitResult]:
    """New items from the desk, prepared and stored in the caller's transaction (SPEC §11.7, §11.8).

    Attesting and sealing run in the same database job as the store: both hold the
    GIL (HPKE too), so a thread of their own only added hand-offs and contention.
    """
    return store_items(session, state, prepared=prepare_items(state, requests, now=now), now=now)


def store_item(
    session: Session, state: NodeState, *, prepared: PreparedItem, now: datetime, corrected: OriginalItem | None = None
) -> SubmitResult:
    """Store a prepared item sealed at rest, its outbox envelopes and egress audit entries."""
    (result,) = store_items(session, state, prepared=[prepared], now=now)
    if corrected is not None:
        _correction_notice(session, state, corrected, prepared.origin, now)
    return result


def submit(
    session: Session,
    state: NodeState,
    *,
    label: Label,
    item: ReportTemplate | RawData,
    recipients: Sequence[str],
    suite: Suite,
    now: datetime,
    item_id: str | None = None,
) -> SubmitResult:
    """An officer shares a new item, or a corrected version of one, in one step (SPEC §8, §10.2).

    The node's desk submits new items with ``submit_many``; this handles one item and
    corrections, which need the version they supersede.
    """
    corrected = None
    if item_id is not None:
        # A correction: the next version, naming the one it supersedes by digest (SPEC §10.2).
        corrected = _latest_original(session, item_id)
        label = label.model_copy(
            update={"item_version": corrected.item_version + 1, "supersedes": corrected.origin_digest}
        )
    prepared = prepare_item(state, label=label, item=item, recipients=recipients, suite=suite, now=now, item_id=item_id)
    return store_item(session, state, prepared=prepared, now=now, corrected=corrected)


def _latest_original(session: Session, item_id: str) -> OriginalItem:
    """The newest version of an item this node originated, which a correction supersedes."""
    latest = session.scalars(
        select(OriginalItem).where(OriginalItem.item_id == item_id).order_by(OriginalItem.item_version.desc())
    ).first()
    if latest is None:
        raise DeskError(f"this node originated no item {item_id} to correct")
    return latest


def _correction_notice(
    session: Session, state: NodeState, previous: OriginalItem, origin: Signed, now: datetime
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
            reason="corrected by the originator",
            issued_at=now,
        ),
        [state.signing_key],
    )
    holders = _delivered_to(session, previous.item_id, previous.item_version)
    audit.append(
        session,
        now=now,
        event=AuditEvent.CORRECTION_SENT,
        actor=state.me,
        item_id=previous.item_id,
        item_version=previous.item_version,
        detail={"new_version": new.item_version, "notified": holders, "notice_digest": notice.digest},
    )
    for holder in holders:
        queue_control(session, recipient=holder, rpc="Notify", statement=notice, now=now)


def _store_transfers_many(
    session: Session,
    state: NodeState,
    items: Sequence[tuple[Signed, str, int, Label, Sequence[PlannedTransfer]]],
    *,
    kind: str,
    now: datetime,
) -> list[tuple[Outcome, ...]]:
    """Outbox rows and egress audit entries for many items: two multi-row INSERTs."""
    event = AuditEvent.RESHARE if kind == "reshare" else AuditEvent.EGRESS
    connection = session.connection()
    at = driver_time(connection.dialect, now)
    outbox: list[dict[str, object]] = []
    envelopes: list[dict[str, object]] = []
    entries: list[audit.Entry] = []
    results = []
    for origin, item_id, item_version, label, planned in items:
        outcomes = []
        for plan in planned:
            if plan.envelope is not None and plan.envelope_id is not None:
                outbox.append(
                    {
                        "envelope_id": plan.envelope_id,
                        "recipient": plan.recipient,
                        "item_id": item_id,
                        "item_version": item_version,
                        "kind": kind,
                        "state": "pending",
                        "attempts": 0,
                        "next_attempt_at": at,
                        "last_error": None,
                        "reason": None,
                        "receipt": None,
                        "created_at": at,
                        "updated_at": at,
                    }
                )
                envelopes.append({"envelope_id": plan.envelope_id, "envelope": plan.envelope})
            decision = plan.decision
            entries.append(
                audit.Entry(
                    event,
                    state.me,
                    peer=plan.recipient,
                    item_id=item_id,
                    item_version=item_version,
                    envelope_id=plan.envelope_id,
                    allowed=decision.allowed,
                    reason=decision.reason.value,
                    rule=decision.rule,
                    detail={
                        "detail": decision.detail,
                        "band": label.band.name,
                        "origin_digest": origin.digest,
                        "consents": [c.digest for c in plan.consents],
                    },
                )
            )
            outcomes.append(Outcome(plan.recipient, decision, plan.envelope_id, plan.envelope))
        results.append(tuple(outcomes))
    _OUTBOX_INSERT.execute(connection, outbox)
    _ENVELOPES_INSERT.execute(connection, envelopes)
    audit.append_many(session, now=now, entries=entries)
    return results


def _own_grants(
    session: Session, state: NodeState, attestation: OriginAttestation, recipient: str, now: datetime
) -> tuple[Signed, ...]:
    """The newest live grant letting this node pass the item to ``recipient``, if any."""
    rows = session.scalars(
        select(ConsentGrantRow)
        .where(
            ConsentGrantRow.item_id == attestation.item_id,
            ConsentGrantRow.item_version == attestation.item_version,
            ConsentGrantRow.holder == state.me,
            ConsentGrantRow.grantee == recipient,
            ConsentGrantRow.revoked_at.is_(None),
        )
        .order_by(ConsentGrantRow.expires_at.desc())
    ).all()
    for row in rows:
        if row.expires_at > now and row.grant_id not in state.revoked_grants:
            return (Signed.model_validate_json(row.statement),)
    return ()


def _held(session: Session, state: NodeState, item_id: str, version: int) -> tuple[Signed, bytes, tuple[Signed, ...]]:
    """Origin statement, plaintext and consent chain of an item this node holds."""
    original = session.get(OriginalItem, (item_id, version))
    if original is not None:
        origin = Signed.model_validate_json(original.origin_statement)
        plaintext = state.at_rest.open(original.sealed_content, _binding(item_id, version, "original"))
        return origin, plaintext, ()
    row = session.scalars(
        select(InboxItem)
        .where(InboxItem.item_id == item_id, InboxItem.item_version == version)
        .order_by(InboxItem.received_at)
    ).first()
    if row is None:
        raise DeskError(f"this node holds no item {item_id} v{version}")
    plaintext = state.at_rest.open(row.sealed_content, _binding(item_id, version, row.envelope_id))
    return Signed.model_validate_json(row.origin_statement), plaintext, chain_from_bytes(row.consent_chain)


def reshare(
    session: Session,
    state: NodeState,
    *,
    item_id: str,
    item_version: int,
    recipients: Sequence[str],
    suite: Suite,
    now: datetime,
) -> SubmitResult:
    """Pass a held item on (SPEC §9.4): the chain it came with plus this node's own grant."""
    origin, plaintext, chain = _held(session, state, item_id, item_version)
    attestation = OriginAttestation.from_bytes(origin.payload)
    # Our own originals travel without consents; anything else carries its chain plus our grant.
    own = attestation.originator == state.me
    planned = plan_transfers(
        state,
        origin=origin,
        plaintext=plaintext,
        consents_for=lambda r: () if own else chain + _own_grants(session, state, attestation, r, now),
        recipients=recipients,
        suite=suite,
        now=now,
    )
    (outcomes,) = _store_transfers_many(
        session,
        state,
        [(origin, item_id, item_version, attestation.label, planned)],
        kind="item" if own else "reshare",
        now=now,
    )
    return SubmitResult(item_id, item_version, outcomes)


# --- ingress ------------------------------------------------------------------------------


def _claimed_envelope_id(envelope: Envelope) -> str:
    """The envelope id an unverified header claims, echoed in the refusal receipt.

    The sender needs it to match the refusal to its outbox entry and stop retrying;
    nothing is stored under it (no delivery record for an unverified header).
    """
    try:
        return EnvelopeHeader.from_bytes(envelope.header.payload).envelope_id
    except MalformedError:
        return secrets.token_hex(16)


def _prior_deliveries(session: Session, headers: Sequence[EnvelopeHeader]) -> list[tuple[str, str, str, str, bytes]]:
    """Committed or earlier-in-this-transaction deliveries sharing an envelope id or a (sender, nonce).

    One indexed query by envelope id and one per sender by nonce (an OR of the two
    would scan the table).
    """
    if not headers:
        return []
    connection = session.connection()
    found = {
        row.envelope_id: row for row in connection.execute(_DELIVERIES_BY_ID, {"ids": [h.envelope_id for h in headers]})
    }
    nonces: dict[str, list[str]] = {}
    for header in headers:
        nonces.setdefault(header.sender, []).append(header.nonce)
    for sender, sender_nonces in nonces.items():
        rows = connection.execute(_DELIVERIES_BY_NONCE, {"sender": sender, "nonces": sender_nonces})
        found.update((row.envelope_id, row) for row in rows)
    return [(r.envelope_id, r.envelope_digest, r.sender, r.nonce, r.receipt) for r in found.values()]


def _sign_statements(state: NodeState, payload_type: PayloadType, statements: Sequence[Receipt]) -> list[Signed]:
    """One statement is signed directly; several share one batch signature (SPEC §4.6)."""
    if len(statements) == 1:
        return [sign(payload_type, statements[0], [state.signing_key])]
    return sign_many([(payload_type, statement) for statement in statements], [state.signing_key])


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
    """``check_ingress`` for each envelope of a batch from one TLS peer (SPEC §9.2). No database access.

    An envelope that did not parse is refused as ENVELOPE_MALFORMED. Batch roots are
    verified and batch keys opened once per batch (SPEC §4.6, §8.2); replay is decided
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


def commit_ingress(
    session: Session,
    state: NodeState,
    *,
    envelope: Envelope,
    result: IngressResult,
    peer: str,
    now: datetime,
) -> Signed:
    """``commit_ingress_batch`` for one envelope."""
    return commit_ingress_batch(session, state, checked=[(envelope, result)], peer=peer, now=now)[0]


def commit_ingress_batch(
    session: Session,
    state: NodeState,
    *,
    checked: Sequence[tuple[Envelope, IngressResult]],
    peer: str,
    now: datetime,
) -> list[Signed]:
    """Store ingress decisions and return the signed receipts, in order (SPEC §11.3).

    Runs inside the commit transaction, which is where re-delivery and replay are
    decided race-free (SPEC §9.2.8): the same envelope again returns the stored receipt
    and stores nothing; a reused envelope id or nonce with other bytes is a REPLAY.
    Items (if accepted), audit entries and replay records commit together; new receipts
    share one batch signature (SPEC §4.6).
    """
    headers = [result.header for _, result in checked if result.header is not None]
    # Earlier deliveries: committed, or inserted by earlier jobs of this transaction
    # (inserts are executed at once), then this batch's own as it goes.
    by_id: dict[str, list[tuple[str, bytes | None]]] = {}
    by_nonce: dict[tuple[str, str], list[tuple[str, bytes | None]]] = {}
    for prior_id, prior_digest, sender, nonce, prior_receipt in _prior_deliveries(session, headers):
        by_id.setdefault(prior_id, []).append((prior_digest, prior_receipt))
        by_nonce.setdefault((sender, nonce), []).append((prior_digest, prior_receipt))
    receipts: list[Signed | None] = []
    fresh: list[tuple[int, Envelope, IngressResult, Decision, str, Receipt]] = []
    pending: dict[str, int] = {}  # envelope id -> index in fresh, for repeats within the batch
    for envelope, result in checked:
        digest = envelope.digest
        header = result.header
        decision = result.decision
        if header is not None:
            same_id = by_id.get(header.envelope_id, [])
            same_nonce = by_nonce.get((header.sender, header.nonce), [])
            repeat = next((r for d, r in same_id if d == digest), None) if same_id else None
            if repeat is not None:  # identical re-delivery of a committed envelope
                receipts.append(Signed.model_validate_json(repeat))
                continue
            if header.envelope_id in pending and any(d == digest for d, _ in same_id):
                receipts.append(None)  # repeated within this batch: same receipt as the first
                fresh.append((len(receipts) - 1, envelope, result, decision, "", fresh[pending[header.envelope_id]][5]))
                continue
            if same_id or same_nonce:
                decision = Decision.refuse(Reason.REPLAY, f"envelope id or nonce of {header.sender} reused")
        envelope_id = header.envelope_id if header is not None else _claimed_envelope_id(envelope)
        receipt = Receipt(
            envelope_id=envelope_id,
            envelope_digest=digest,
            sender=header.sender if header else peer,
            receiver=state.me,
            accepted=decision.allowed,
            reason=decision.reason.value,
            rule=decision.rule,
            received_at=now,
        )
        receipts.append(None)
        fresh.append((len(receipts) - 1, envelope, result, decision, envelope_id, receipt))
        if header is not None and decision.reason is not Reason.REPLAY:
            pending[envelope_id] = len(fresh) - 1
            by_id.setdefault(envelope_id, []).append((digest, None))
            by_nonce.setdefault((header.sender, header.nonce), []).append((digest, None))
    # Sign every new receipt at once; a repeat within the batch reuses its first receipt.
    connection = session.connection()
    at = driver_time(connection.dialect, now)
    unique = {id(f[5]): f[5] for f in fresh}
    signed_by_id = dict(zip(unique, _sign_statements(state, PayloadType.RECEIPT, list(unique.values())), strict=True))
    inbox: list[dict[str, object]] = []
    deliveries: list[dict[str, object]] = []
    entries: list[audit.Entry] = []
    for index, envelope, result, decision, envelope_id, receipt in fresh:
        signed = signed_by_id[id(receipt)]
        receipts[index] = signed
        if not envelope_id:
            continue  # a repeat within the batch: stored once, audited once
        header, attestation = result.header, result.attestation
        if decision.allowed and decision.reason is Reason.ALLOWED:
            assert header is not None
            assert attestation is not None
            assert result.item is not None
            label = attestation.label
            inbox.append(
                {
                    "envelope_id": envelope_id,
                    "item_id": attestation.item_id,
                    "item_version": attestation.item_version,
                    "originator": attestation.originator,
                    "sender": header.sender,
                    "origin_digest": header.origin_digest,  # the carried origin's, checked at ingress
                    "band": int(label.band),
                    "category": label.category.value,
                    "topics": json.dumps(list(label.topics)),
                    "label_json": label.model_dump_json(),
                    "origin_statement": envelope.origin.model_dump_json().encode(),
                    "consent_chain": chain_to_bytes(envelope.consents),
                    # The exact attested bytes, so the stored copy still matches plaintext_digest.
                    "sealed_content": state.at_rest.seal(
                        result.plaintext or result.item.to_bytes(),
                        _binding(attestation.item_id, attestation.item_version, envelope_id),
                    ),
                    "received_at": at,
                    "status": "held",
                }
            )
        if header is not None and decision.reason is not Reason.REPLAY:
            # Replays keep the first record; everything else leaves one, refused or not.
            deliveries.append(
                {
                    "envelope_id": envelope_id,
                    "envelope_digest": receipt.envelope_digest,
                    "sender": header.sender,
                    "nonce": header.nonce,
                    "accepted": decision.allowed,
                    "reason": decision.reason.value,
                    "receipt": signed.model_dump_json().encode(),
                    "received_at": at,
                }
            )
        entries.append(
            audit.Entry(
                AuditEvent.INGRESS,
                state.me,
                peer=peer,
                item_id=attestation.item_id if attestation else (header.item_id if header else None),
                item_version=attestation.item_version if attestation else (header.item_version if header else None),
                envelope_id=envelope_id if header else None,
                allowed=decision.allowed,
                reason=decision.reason.value,
                rule=decision.rule,
                detail={
                    "detail": decision.detail,
                    "envelope_digest": receipt.envelope_digest,
                    "claimed_sender": header.sender if header else None,
                    "band": attestation.label.band.name if attestation else None,
                    "consents": [c.digest for c in envelope.consents],
                },
            )
        )
    _INBOX_INSERT.execute(connection, inbox)
    _DELIVERIES_INSERT.execute(connection, deliveries)
    audit.append_many(session, now=now, entries=entries)
    out = [r for r in receipts if r is not None]
    assert len(out) == len(checked)
    return out


def check_receipt(
    state: NodeState, *, recipient: str, envelope_id: str, envelope_digest: str, receipt: Signed
) -> Receipt:
    """Verify a receiver's signed receipt for one envelope (SPEC §11.3). No database access."""
    member = state.roster.member(recipient)
    if member is None:
        raise RemoteProtocolError(f"{recipient} is not in the roster")
    parsed = verify_and_parse(receipt, PayloadType.RECEIPT, [member.signing_key], Receipt, state.roots)
    bound = (parsed.envelope_id, parsed.envelope_digest, parsed.sender, parsed.receiver)
    if bound != (envelope_id, envelope_digest, state.me, recipient):
        raise RemoteProtocolError(f"receipt from {recipient} is for another envelope")
    return parsed


def check_receipts(
    state: NodeState, *, recipient: str, sent: Sequence[tuple[str, str]], receipts: Sequence[Signed]
) -> list[tuple[str, Signed, Receipt] | tuple[str, RemoteProtocolError]]:
    """``check_receipt`` for each (envelope id, digest) sent and the receipt that answered it.

    A batch signature's root is verified once (``state.roots``). Each result is either
    (envelope id, receipt, parsed) or (envelope id, the error).
    """
    out: list[tuple[str, Signed, Receipt] | tuple[str, RemoteProtocolError]] = []
    for (envelope_id, digest), receipt in zip(sent, receipts, strict=True):
        try:
            parsed = check_receipt(
                state, recipient=recipient, envelope_id=envelope_id, envelope_digest=digest, receipt=receipt
            )
        except RemoteProtocolError as exc:
            out.append((envelope_id, exc))
            continue
        out.append((envelope_id, receipt, parsed))
    return out


def record_receipt(
    session: Session, state: NodeState, *, envelope_id: str, receipt: Signed, parsed: Receipt, now: datetime
) -> tuple[str, Signed | None]:
    """``record_receipts`` for one receipt; raises ``DeskError`` if there is no such entry."""
    (outcome,) = record_receipts(session, state, settled=[(envelope_id, receipt, parsed)], now=now)
    if outcome is None:
        raise DeskError(f"no outbox entry {envelope_id}")
    if isinstance(outcome, RemoteProtocolError):
        raise outcome
    return outcome


def record_receipts(
    session: Session, state: NodeState, *, settled: Sequence[tuple[str, Signed, Receipt]], now: datetime
) -> list[tuple[str, Signed | None] | RemoteProtocolError | None]:
    """Settle outbox entries with receipts ``check_receipts`` verified, in one query and one flush.

    Per entry: the new state and, if the item was recalled while the envelope was on its
    way, the recall notice the recipient must now be sent (queued here); a
    ``RemoteProtocolError`` if the receipt's receiver is not the entry's recipient; None
    if there is no such entry.
    """
    if not settled:
        return []
    # Pending ORM changes (say, a recall withdrawing these entries earlier in this group)
    # must be in the database before it is read and written with Core.
    session.flush()
    ids = [envelope_id for envelope_id, _, _ in settled]
    connection = session.connection()
    at = driver_time(connection.dialect, now)
    entries = {row.envelope_id: row for row in connection.execute(_OUTBOX_TO_SETTLE, {"ids": ids})}
    out: list[tuple[str, Signed | None] | RemoteProtocolError | None] = []
    updates: list[dict[str, object]] = []
    settled_now: dict[str, str] = {}
    audit_entries: list[audit.Entry] = []
    for envelope_id, receipt, parsed in settled:
        entry = entries.get(envelope_id)
        if entry is None:
            out.append(None)
            continue
        if parsed.receiver != entry.recipient:
            out.append(RemoteProtocolError(f"receipt from {parsed.receiver} for an envelope to {entry.recipient}"))
            continue
        if entry.state in ("delivered", "refused") or envelope_id in settled_now:
            out.append((settled_now.get(envelope_id, entry.state), None))
            continue
        late_recall = None
        if entry.state == "failed" and entry.reason == Reason.RECALLED.value and parsed.accepted:
            # Withdrawn by a recall while already on the wire: it arrived, so the recipient
            # holds a recalled item and must be sent the recall too (SPEC §10.1).
            late_recall = _recall_notice(session, entry.item_id, entry.item_version)
            if late_recall is not None:
                queue_control(session, recipient=entry.recipient, rpc="Notify", statement=late_recall, now=now)
        new_state = settled_now[envelope_id] = "delivered" if parsed.accepted else "refused"
        updates.append(
            {
                "b_id": envelope_id,
                "state": new_state,
                "reason": parsed.reason,
                "receipt": receipt.model_dump_json().encode(),
                "attempts": entry.attempts + 1,
                "updated_at": at,
            }
        )
        audit_entries.append(
            audit.Entry(
                AuditEvent.DELIVERY_CONFIRMED,
                state.me,
                peer=entry.recipient,
                item_id=entry.item_id,
                item_version=entry.item_version,
                envelope_id=envelope_id,
                allowed=parsed.accepted,
                reason=parsed.reason,
                rule=parsed.rule,
                detail={"receipt_digest": receipt.digest},
            )
        )
        out.append((new_state, late_recall))
    if updates:
        _SETTLE.execute(connection, updates)
        # ORM copies of these rows loaded earlier in this group commit are now stale. They
        # are updated in place, not expired: another job in the group may have returned
        # one, and an expired copy would fail to load once the session has closed.
        for update in updates:
            loaded = session.identity_map.get(session.identity_key(OutboxEntry, update["b_id"]))
            if loaded is not None:
                for key in ("state", "reason", "receipt", "attempts"):
                    set_committed_value(loaded, key, update[key])
                set_committed_value(loaded, "updated_at", now)
    audit.append_many(session, now=now, entries=audit_entries)
    return out


@dataclass(frozen=True)
class Settled:
    """What ``settle_receipts`` made of a batch of receipts."""

    #: (envelope id, why its receipt was not accepted): the entry stays pending.
    refused: list[tuple[str, str]]
    #: Envelope ids whose receipt matches no outbox entry.
    unmatched: list[str]


def settle_receipts(
    session: Session,
    state: NodeState,
    *,
    recipient: str,
    sent: Sequence[tuple[str, str]],
    receipts: Sequence[Signed],
    now: datetime,
) -> Settled:
    """Verify a batch of receipts and settle their outbox entries in the caller's transaction (SPEC §11.3).

    ``sent`` is (envelope id, digest) of what each receipt answers. Verifying runs in the
    same database job (SPEC §11.7); a batch root is verified once.
    """
    refused: list[tuple[str, str]] = []
    verified: list[tuple[str, Signed, Receipt]] = []
    for result in check_receipts(state, recipient=recipient, sent=sent, receipts=receipts):
        if len(result) == 2:
            refused.append((result[0], f"bad receipt: {result[1]}"))
        else:
            verified.append(result)
    unmatched = []
    # A late recall, if any, is queued in the same transaction (record_receipts).
    recorded = record_receipts(session, state, settled=verified, now=now)
    for (envelope_id, _, _), outcome in zip(verified, recorded, strict=True):
        if isinstance(outcome, RemoteProtocolError):
            refused.append((envelope_id, f"bad receipt: {outcome}"))
        elif outcome is None:
            unmatched.append(envelope_id)
    return Settled(refused, unmatched)


_SETTLE = HotWrite(
    _OUTBOX.update()
    .where(_OUTBOX.c.envelope_id == bindparam("b_id"))
    .values(
        state=bindparam("state"),
        reason=bindparam("reason"),
        receipt=bindparam("receipt"),
        attempts=bindparam("attempts"),
        updated_at=bindparam("updated_at"),
    )
)


def record_delivery_error(
    session: Session, state: NodeState, *, envelope_id: str, error: str, retry_at: datetime, now: datetime
) -> None:
    """A delivery attempt failed in transport: schedule a retry.

    There is no giving up: an accepted item stays pending until the receiver answers
    (SPEC §11.6); the outbox shows the attempts and the last error to the officer.
    """
    entry = session.get(OutboxEntry, envelope_id)
    if entry is None or entry.state != "pending":
        return
    entry.attempts += 1
    entry.last_error = error[:500]
    entry.next_attempt_at = retry_at
    entry.updated_at = now


# --- consent ------------------------------------------------------------------------------


def _request_row(request: ConsentRequest, signed: Signed, direction: str, now: datetime) -> ConsentRequestRow:
    return ConsentRequestRow(
        request_id=request.request_id,
        direction=direction,
        item_id=request.item_id,
        item_version=request.item_version,
        requester=request.requester,
        third_party=request.third_party,
        purpose=request.purpose,
        statement=signed.model_dump_json().encode(),
        state="pending",
        decision=None,
        reason=None,
        created_at=now,
        decided_at=None,
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
    origin, _, _ = _held(session, state, item_id, item_version)
    attestation = OriginAttestation.from_bytes(origin.payload)
    if attestation.originator == state.me:
        raise DeskError("this node is the originator; it needs no consent")
    if state.roster.member(third_party) is None:
        raise DeskError(f"{third_party} is not in the roster")
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
    session.add(_request_row(request, signed, "outgoing", now))
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
    queue_control(session, recipient=attestation.originator, rpc="RequestConsent", statement=signed, now=now)
    return signed, attestation.originator


def _refuse_remote(
    session: Session, state: NodeState, event: AuditEvent, peer: str, reason: str, detail: str, now: datetime
) -> tuple[bool, str, str]:
    audit.append(
        session,
        now=now,
        event=event,
        actor=state.me,
        peer=peer,
        allowed=False,
        reason=reason,
        detail={"detail": detail},
    )
    return (False, reason, detail)


def receive_consent_request(
    session: Session, state: NodeState, *, signed: Signed, peer: str, now: datetime
) -> tuple[bool, str, str]:
    """The originator's node records a request and, if configured, decides it at once.

    Returns the ack (accepted, reason, detail). An automatic decision is queued for the
    requester in the same transaction.
    """
    event = AuditEvent.CONSENT_REQUEST_RECEIVED
    try:
        claimed = parse_unverified(signed, PayloadType.CONSENT_REQUEST, ConsentRequest)
        requester = state.roster.member(claimed.requester)
        if requester is None or requester.member_id != peer:
            return _refuse_remote(
                session,
                state,
                event,
                peer,
                Reason.SENDER_IDENTITY_MISMATCH.value,
                f"request claims {claimed.requester} but came from {peer}",
                now,
            )
        verify(signed, PayloadType.CONSENT_REQUEST, [requester.signing_key])
    except MalformedError as exc:
        return _refuse_remote(session, state, event, peer, Reason.ENVELOPE_MALFORMED.value, str(exc), now)
    except RemoteProtocolError as exc:
        return _refuse_remote(session, state, event, peer, Reason.SENDER_SIGNATURE_INVALID.value, str(exc), now)
    original = session.get(OriginalItem, (claimed.item_id, claimed.item_version))
    if original is None or original.origin_digest != claimed.origin_digest:
        return _refuse_remote(
            session,
            state,
            event,
            peer,
            "UNKNOWN_ITEM",
            f"{state.me} originated no item {claimed.item_id} v{claimed.item_version}",
            now,
        )
    if session.get(ConsentRequestRow, claimed.request_id) is not None:
        return (True, "DUPLICATE", "request already recorded")
    session.add(_request_row(claimed, signed, "incoming", now))
    audit.append(
        session,
        now=now,
        event=event,
        actor=state.me,
        peer=peer,
        item_id=claimed.item_id,
        item_version=claimed.item_version,
        allowed=True,
        reason="RECORDED",
        detail={"request_id": claimed.request_id, "third_party": claimed.third_party, "purpose": claimed.purpose},
    )
    automatic = state.consent.decide(claimed.third_party, Band(original.band))
    if automatic == "manual":
        return (True, "PENDING", "awaiting the originator's officer")
    granted = automatic != "deny"
    decide_consent(
        session,
        state,
        request_id=claimed.request_id,
        grant=granted,
        reason="" if granted else "refused by the originator's standing rules",
        transferable=automatic.transferable if not isinstance(automatic, str) else False,
        valid_for=automatic.validity if not isinstance(automatic, str) else timedelta(0),
        conditions=(),
        now=now,
        by="rule",
    )
    return (True, "DECIDED", "granted" if granted else "denied")


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
    if row is None or row.direction != "incoming":
        raise DeskError(f"no incoming consent request {request_id}")
    if row.state != "pending":
        raise DeskError(f"request {request_id} was already {row.state}")
    original = session.get(OriginalItem, (row.item_id, row.item_version))
    assert original is not None
    decision: Signed
    if grant:
        if valid_for <= timedelta(0):
            raise DeskError("a grant needs a positive validity")
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
        session.add(
            ConsentGrantRow(
                grant_id=statement.grant_id,
                item_id=row.item_id,
                item_version=row.item_version,
                holder=row.requester,
                grantee=row.third_party,
                expires_at=statement.expires_at,
                transferable=transferable,
                statement=decision.model_dump_json().encode(),
                revoked_at=None,
            )
        )
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
    row.state = "granted" if grant else "denied"
    row.decision = decision.model_dump_json().encode()
    row.reason = reason or None
    row.decided_at = now
    audit.append(
        session,
        now=now,
        event=AuditEvent.CONSENT_DECISION_SENT,
        actor=state.me,
        peer=row.requester,
        item_id=row.item_id,
        item_version=row.item_version,
        allowed=grant,
        reason="CONSENT_GRANTED" if grant else "CONSENT_DENIED",
        detail={
            "request_id": request_id,
            "grantee": row.third_party,
            "by": by,
            "transferable": transferable,
            "decision_digest": decision.digest,
        },
    )
    queue_control(session, recipient=row.requester, rpc="SendConsentDecision", statement=decision, now=now)
    return decision


def receive_consent_decision(
    session: Session, state: NodeState, *, signed: Signed, peer: str, now: datetime
) -> tuple[bool, str, str]:
    """The requester records the originator's signed grant or denial."""
    event = AuditEvent.CONSENT_DECISION_RECEIVED
    try:
        if signed.payload_type == PayloadType.CONSENT_GRANT.value:
            grant = parse_unverified(signed, PayloadType.CONSENT_GRANT, ConsentGrant)
            request_id, signer = grant.request_id, grant.grantor
        else:
            denial = parse_unverified(signed, PayloadType.CONSENT_DENIAL, ConsentDenial)
            request_id, signer = denial.request_id, denial.denier
        member = state.roster.member(signer)
        if member is None or signer != peer:
            return _refuse_remote(
                session,
                state,
                event,
                peer,
                Reason.SENDER_IDENTITY_MISMATCH.value,
                f"decision signed by {signer} came from {peer}",
                now,
            )
        verify(signed, PayloadType(signed.payload_type), [member.signing_key])
    except (RemoteProtocolError, ValueError) as exc:
        return _refuse_remote(session, state, event, peer, Reason.CONSENT_INVALID.value, str(exc), now)
    row = session.get(ConsentRequestRow, request_id) if request_id else None
    if row is None or row.direction != "outgoing":
        return _refuse_remote(
            session, state, event, peer, Reason.CONSENT_INVALID.value, f"no outgoing request {request_id}", now
        )
    if row.state != "pending":
        return (True, "DUPLICATE", f"request already {row.state}")
    granted = signed.payload_type == PayloadType.CONSENT_GRANT.value
    if granted:
        if (grant.holder, grant.grantee, grant.item_id, grant.item_version) != (
            state.me,
            row.third_party,
            row.item_id,
            row.item_version,
        ):
            return _refuse_remote(
                session, state, event, peer, Reason.CONSENT_WRONG_GRANTEE.value, "grant does not match the request", now
            )
        session.add(
            ConsentGrantRow(
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
        )
    row.state = "granted" if granted else "denied"
    row.decision = signed.model_dump_json().encode()
    row.reason = None if granted else denial.reason
    row.decided_at = now
    audit.append(
        session,
        now=now,
        event=event,
        actor=state.me,
        peer=peer,
        item_id=row.item_id,
        item_version=row.item_version,
        allowed=granted,
        reason="CONSENT_GRANTED" if granted else "CONSENT_DENIED",
        detail={"request_id": request_id, "grantee": row.third_party, "decision_digest": signed.digest},
    )
    return (True, "RECORDED", row.state)


# --- recall -------------------------------------------------------------------------------


def _recall_notice(session: Session, item_id: str, item_version: int) -> Signed | None:
    """The originator's signed recall of an item version, as issued or received here."""
    row = session.scalars(
        select(NoticeRow).where(
            NoticeRow.kind == "recall", NoticeRow.item_id == item_id, NoticeRow.item_version == item_version
        )
    ).first()
    return None if row is None else Signed.model_validate_json(row.statement)


def _withdraw_pending(session: Session, item_id: str, item_version: int, now: datetime) -> None:
    """Envelopes of a recalled item not yet delivered are not sent (SPEC §10.1)."""
    for entry in session.scalars(
        select(OutboxEntry).where(
            OutboxEntry.item_id == item_id, OutboxEntry.item_version == item_version, OutboxEntry.state == "pending"
        )
    ):
        entry.state, entry.reason, entry.updated_at = "failed", Reason.RECALLED.value, now


def _delivered_to(session: Session, item_id: str, item_version: int) -> list[str]:
    return sorted(
        set(
            session.scalars(
                select(OutboxEntry.recipient).where(
                    OutboxEntry.item_id == item_id,
                    OutboxEntry.item_version == item_version,
                    OutboxEntry.state.in_(("delivered", "pending")),
                )
            )
        )
    )


def recall(
    session: Session, state: NodeState, *, item_id: str, item_version: int, reason: str, now: datetime
) -> tuple[Signed, list[str]]:
    """The originator recalls an item version (SPEC §10.1); returns the notice and who to tell."""
    original = session.get(OriginalItem, (item_id, item_version))
    if original is None:
        raise DeskError(f"{state.me} originated no item {item_id} v{item_version}")
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
    if original.recalled_at is None:
        original.recalled_at = now
    state.recalled.add((item_id, item_version))
    recall_id = json.loads(notice.payload)["recall_id"]
    # Kept, so an envelope that lands after the recall can be followed by it.
    session.add(
        NoticeRow(
            notice_id=recall_id,
            kind="recall",
            item_id=item_id,
            item_version=item_version,
            issuer=state.me,
            statement=notice.model_dump_json().encode(),
            received_at=now,
        )
    )
    _withdraw_pending(session, item_id, item_version, now)
    recipients = _delivered_to(session, item_id, item_version)
    audit.append(
        session,
        now=now,
        event=AuditEvent.RECALL_SENT,
        actor=state.me,
        item_id=item_id,
        item_version=item_version,
        detail={"reason": reason, "notified": recipients, "notice_digest": notice.digest},
    )
    for recipient in recipients:
        queue_control(session, recipient=recipient, rpc="Notify", statement=notice, now=now)
    return notice, recipients


def receive_notice(
    session: Session, state: NodeState, *, signed: Signed, peer: str, now: datetime
) -> tuple[bool, str, str]:
    """A holder applies a recall, correction or consent revocation; returns the ack."""
    if signed.payload_type == PayloadType.CONSENT_REVOCATION.value:
        return _receive_revocation(session, state, signed=signed, peer=peer, now=now)
    return _apply_notice(session, state, signed=signed, peer=peer, now=now)


def _apply_notice(
    session: Session, state: NodeState, *, signed: Signed, peer: str, now: datetime
) -> tuple[bool, str, str]:
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
        return _refuse_remote(session, state, event, peer, Reason.ENVELOPE_MALFORMED.value, str(exc), now)
    held = session.scalars(
        select(InboxItem).where(InboxItem.item_id == claimed.item_id, InboxItem.item_version == version)
    ).all()
    if not held:
        return _refuse_remote(session, state, event, peer, "UNKNOWN_ITEM", "no such item held", now)
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
        return _refuse_remote(session, state, event, peer, Reason.ORIGIN_SIGNATURE_INVALID.value, str(exc), now)
    if session.get(NoticeRow, notice_id) is not None:
        return (True, "DUPLICATE", "notice already applied")
    status = "superseded" if is_correction else "recalled"
    for row in held:
        if row.status != "recalled":  # a recall is final; a correction does not undo it
            row.status = status
    session.add(
        NoticeRow(
            notice_id=notice_id,
            kind="correction" if is_correction else "recall",
            item_id=claimed.item_id,
            item_version=version,
            issuer=claimed.originator,
            statement=signed.model_dump_json().encode(),
            received_at=now,
        )
    )
    if not is_correction:
        state.recalled.add((claimed.item_id, version))
        _withdraw_pending(session, claimed.item_id, version, now)
    forward = [r for r in _delivered_to(session, claimed.item_id, version) if r != peer]
    for downstream in forward:  # the same signed bytes travel on unchanged (SPEC §10.1)
        queue_control(session, recipient=downstream, rpc="Notify", statement=signed, now=now)
    detail: dict[str, audit.DetailValue] = {
        "originator": claimed.originator,
        "forwarded_to": forward,
        "notice_digest": signed.digest,
    }
    if isinstance(claimed, Correction):
        detail |= {"new_version": claimed.new_version, "new_origin_digest": claimed.new_origin_digest}
    reason = "SUPERSEDED" if is_correction else Reason.RECALLED.value
    audit.append(
        session,
        now=now,
        event=event,
        actor=state.me,
        peer=peer,
        item_id=claimed.item_id,
        item_version=version,
        allowed=True,
        reason=reason,
        detail=detail,
    )
    return (True, reason, f"{len(held)} copies of v{version} {status}")


def _receive_revocation(
    session: Session, state: NodeState, *, signed: Signed, peer: str, now: datetime
) -> tuple[bool, str, str]:
    event = AuditEvent.CONSENT_REVOKED
    try:
        claimed = parse_unverified(signed, PayloadType.CONSENT_REVOCATION, ConsentRevocation)
        grant_row = session.get(ConsentGrantRow, claimed.grant_id)
        grant = None if grant_row is None else Signed.model_validate_json(grant_row.statement)
        grantor = None if grant is None else parse_unverified(grant, PayloadType.CONSENT_GRANT, ConsentGrant).grantor
        member = state.roster.member(claimed.revoker)
        if member is None or grantor != claimed.revoker or state.roster.is_revoked(member.signing_key.keyid):
            raise RemoteProtocolError("revocation is not by the grant's grantor")
        verify(signed, PayloadType.CONSENT_REVOCATION, [member.signing_key])
    except RemoteProtocolError as exc:
        return _refuse_remote(session, state, event, peer, Reason.CONSENT_INVALID.value, str(exc), now)
    assert grant_row is not None
    grant_row.revoked_at = grant_row.revoked_at or now
    state.revoked_grants.add(claimed.grant_id)
    audit.append(
        session,
        now=now,
        event=event,
        actor=state.me,
        peer=peer,
        item_id=claimed.item_id,
        allowed=True,
        reason=Reason.CONSENT_REVOKED.value,
        detail={"grant_id": claimed.grant_id},
    )
    return (True, "REVOKED", claimed.grant_id)


# --- reading ------------------------------------------------------------------------------


def read_item(
    session: Session, state: NodeState, *, item_id: str, item_version: int, officer: str, now: datetime
) -> tuple[InboxItem | OriginalItem, Label, ReportTemplate | RawData, tuple[Signed, ...]]:
    """An officer reads a held item; the read itself is audited (SPEC §11.4)."""
    origin, plaintext, chain = _held(session, state, item_id, item_version)
    attestation = OriginAttestation.from_bytes(origin.payload)
    row: InboxItem | OriginalItem | None = session.get(OriginalItem, (item_id, item_version))
    if row is None:
        row = session.scalars(
            select(InboxItem).where(InboxItem.item_id == item_id, InboxItem.item_version == item_version)
        ).first()
    assert row is not None
    if isinstance(row, InboxItem) and row.status == "recalled":
        raise DeskError(f"item {item_id} v{item_version} was recalled by {attestation.originator}")
    audit.append(
        session,
        now=now,
        event=AuditEvent.OFFICER_READ,
        actor=officer,
        item_id=item_id,
        item_version=item_version,
        detail={"origin_digest": origin.digest},
    )
    return row, attestation.label, item_from_bytes(plaintext), chain


def errors_are_local(exc: Exception) -> bool:
    """True if the error is the officer's to fix (shown without a traceback)."""
    return isinstance(exc, (DeskError, LocalProtocolError, IntelshareError, ValueError))


__all__ += ["errors_are_local"]
