"""Origination, correction and re-share: egress decisions, sealing and the outbox (SPEC §8, §9.3, §10.2).

An officer's new items are validated, attested, decided per recipient and sealed
(``prepare_items``, no database), then stored with their outbox envelopes and egress
audit entries in the caller's transaction (``store_items``). A correction is the next
version of an item this node originated, with a notice to every holder of the one it
supersedes. A re-share passes a held item on with the consent chain it came with plus
this node's own grant. Attestations of one batch share a batch signature, and so do
the envelope headers (SPEC §4.6).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from node import audit
from node.audit import AuditEvent
from node.codec import envelope_to_bytes
from node.errors import InvalidRequestError, NotFoundError, PermissionDeniedError
from node.lifecycle import OutboxKind, OutboxState
from node.services.holdings import held
from node.services.notices import queue_correction
from node.services.state import NodeState, at_rest_binding, core_table
from node.store import ConsentGrantRow, HotWrite, OriginalItem, OutboxEntry, OutboxEnvelope, driver_time
from protocol.encoding import time_ordered_id
from protocol.envelope import Envelope, OriginAttestation, SealRequest, Suite, ToAttest, attest_many, seal_many
from protocol.errors import LocalProtocolError
from protocol.item import RawData, ReportTemplate
from protocol.label import Label
from protocol.policy import Decision, Transfer, check_egress
from protocol.statements import Signed

__all__ = [
    "NewItem",
    "Outcome",
    "PlannedTransfer",
    "PreparedItem",
    "SubmitResult",
    "prepare_items",
    "reshare",
    "store_items",
    "submit_correction",
    "submit_many",
]

# Hot-path writes, compiled once; their rows go to the driver as they are (HotWrite).
_ORIGINALS_INSERT, _OUTBOX_INSERT, _ENVELOPES_INSERT = (
    HotWrite(core_table(m).insert()) for m in (OriginalItem, OutboxEntry, OutboxEnvelope)
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
    """What a submission, correction or re-share returns to the desk."""

    item_id: str
    item_version: int
    outcomes: tuple[Outcome, ...]


@dataclass(frozen=True)
class PlannedTransfer:
    """One recipient's egress decision and, if allowed, its sealed envelope (not yet stored)."""

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
class NewItem:
    """An officer's new item (or new version, with ``item_id``) for ``prepare_items``."""

    label: Label
    item: ReportTemplate | RawData
    recipients: tuple[str, ...]
    suite: Suite
    item_id: str | None = None


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

    Each distinct recipient is decided under its own pair's agreement; every allowed
    envelope of the batch has its header under one batch signature.
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


def _no_consents(recipient: str) -> tuple[Signed, ...]:
    return ()


def prepare_items(state: NodeState, requests: Sequence[NewItem], *, now: datetime) -> list[PreparedItem]:
    """Validate, attest, decide and seal items this node originates. No database access."""
    to_attest = []
    for request in requests:
        label = request.label
        if label.originator != state.me:
            raise PermissionDeniedError(f"this node is {state.me}; it cannot originate items for {label.originator}")
        expected = state.roster.marking(state.me, label.band)
        if expected != label.originator_marking:
            raise InvalidRequestError(
                f"{state.me}'s marking for {label.band.title} is {expected!r}, not {label.originator_marking!r}"
            )
        if request.item_id is None and (label.item_version != 1 or label.supersedes is not None):
            raise InvalidRequestError("a new item is version 1 and supersedes nothing; give item_id to correct one")
        # A new item's id is time-ordered (SPEC §4.7), so stored items append to their indexes.
        to_attest.append(ToAttest(request.item_id or time_ordered_id(now), label, request.item))
    try:
        attested = attest_many(to_attest, originator_key=state.signing_key, now=now)
    except LocalProtocolError as exc:
        raise InvalidRequestError(str(exc)) from exc
    plans = [
        _Plan(a.origin, a.attestation, a.plaintext, _no_consents, r.recipients, r.suite)
        for a, r in zip(attested, requests, strict=True)
    ]
    planned = _plan_many(state, plans, now)
    return [
        PreparedItem(request.item_id, request.label, a.origin, a.plaintext, transfers)
        for request, a, transfers in zip(to_attest, attested, planned, strict=True)
    ]


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
                    p.plaintext, at_rest_binding(p.item_id, p.label.item_version, "original")
                ),
                "band": int(p.label.band),
                "created_at": at,
                "recalled_at": None,
                "retain_until": driver_time(connection.dialect, p.label.retain_until),
                "purged_at": None,
            }
            for p in prepared
        ],
    )
    outcomes = _store_transfers_many(
        session,
        state,
        [(p.origin, p.item_id, p.label.item_version, p.label, p.planned) for p in prepared],
        kind=OutboxKind.ITEM,
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


def submit_correction(
    session: Session,
    state: NodeState,
    *,
    item_id: str,
    label: Label,
    item: ReportTemplate | RawData,
    recipients: Sequence[str],
    suite: Suite,
    now: datetime,
    reason: str = "",
) -> SubmitResult:
    """An officer corrects an item this node originated (SPEC §10.2).

    The new version is the next one and names the version it supersedes by digest;
    every holder of that version is sent a signed correction.
    """
    previous = session.scalars(
        select(OriginalItem).where(OriginalItem.item_id == item_id).order_by(OriginalItem.item_version.desc())
    ).first()
    if previous is None:
        raise NotFoundError(f"this node originated no item {item_id} to correct")
    label = label.model_copy(update={"item_version": previous.item_version + 1, "supersedes": previous.origin_digest})
    (prepared,) = prepare_items(state, [NewItem(label, item, tuple(recipients), suite, item_id)], now=now)
    (result,) = store_items(session, state, prepared=[prepared], now=now)
    why = reason or "corrected by the originator"
    queue_correction(session, state, previous=previous, origin=prepared.origin, now=now, reason=why)
    return result


def _store_transfers_many(
    session: Session,
    state: NodeState,
    items: Sequence[tuple[Signed, str, int, Label, Sequence[PlannedTransfer]]],
    *,
    kind: OutboxKind,
    now: datetime,
) -> list[tuple[Outcome, ...]]:
    """Outbox rows and egress audit entries for many items: two multi-row INSERTs."""
    event = AuditEvent.RESHARE if kind is OutboxKind.RESHARE else AuditEvent.EGRESS
    # The agreement each recipient's transfer is decided under, as "id:version" (SPEC §6).
    agreements = {
        party: f"{agreement.agreement_id}:{agreement.version}"
        for agreement in state.agreements.agreements()
        if state.me in agreement.parties
        for party in agreement.parties
        if party != state.me
    }
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
                        "kind": kind.value,
                        "state": OutboxState.PENDING.value,
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
                        "grants": [_grant_id(c) for c in plan.consents],
                        "agreement": agreements.get(plan.recipient, ""),
                    },
                )
            )
            outcomes.append(Outcome(plan.recipient, decision, plan.envelope_id, plan.envelope))
        results.append(tuple(outcomes))
    _OUTBOX_INSERT.execute(connection, outbox)
    _ENVELOPES_INSERT.execute(connection, envelopes)
    audit.append_many(session, now=now, entries=entries)
    return results


def _grant_id(consent: Signed) -> str:
    """A carried grant's id (its payload was verified when it was received or issued)."""
    return str(json.loads(consent.payload).get("grant_id", ""))


def _own_grants(
    session: Session, state: NodeState, attestation: OriginAttestation, recipient: str, now: datetime
) -> tuple[Signed, ...]:
    """This node's grant letting it pass the item to ``recipient``: the newest live one, if any.

    With none live, the newest revoked or expired one, so that the decision names why
    (CONSENT_REVOKED, CONSENT_EXPIRED) rather than that there is no consent at all.
    """
    rows = session.scalars(
        select(ConsentGrantRow)
        .where(
            ConsentGrantRow.item_id == attestation.item_id,
            ConsentGrantRow.item_version == attestation.item_version,
            ConsentGrantRow.holder == state.me,
            ConsentGrantRow.grantee == recipient,
        )
        .order_by(ConsentGrantRow.expires_at.desc())
    ).all()
    for row in rows:
        if row.revoked_at is None and row.expires_at > now and row.grant_id not in state.revoked_grants:
            return (Signed.model_validate_json(row.statement),)
    return (Signed.model_validate_json(rows[0].statement),) if rows else ()


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
    copy = held(session, state, item_id, item_version)
    attestation = OriginAttestation.from_bytes(copy.origin.payload)
    # Our own originals travel without consents; anything else carries its chain plus our grant.
    own = attestation.originator == state.me

    def consents_for(recipient: str) -> tuple[Signed, ...]:
        return () if own else copy.chain + _own_grants(session, state, attestation, recipient, now)

    plan = _Plan(copy.origin, attestation, copy.plaintext, consents_for, recipients, suite)
    (planned,) = _plan_many(state, [plan], now)
    (outcomes,) = _store_transfers_many(
        session,
        state,
        [(copy.origin, item_id, item_version, attestation.label, planned)],
        kind=OutboxKind.ITEM if own else OutboxKind.RESHARE,
        now=now,
    )
    return SubmitResult(item_id, item_version, outcomes)
