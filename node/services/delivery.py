"""Sender-side delivery: what is due, transport failures, and settling receipts (SPEC §11.3, §11.6).

The runtime's outbox pump takes due envelopes (``due_outbox``), hands them to peer
links, and comes back here with the outcome: a transport failure schedules a retry
(``record_delivery_errors``); a batch of receipts is verified against the recipient's
roster key and settles its outbox entries (``settle_receipts``). Every state change goes
through ``node.lifecycle.OUTBOX_ENTRY``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from node import audit
from node.audit import AuditEvent
from node.lifecycle import OUTBOX_ENTRY, OutboxEvent, OutboxState
from node.services.control import due_rows, peer_behind
from node.services.notices import follow_late_delivery
from node.services.state import NodeState, core_table
from node.store import HotWrite, OutboxEntry, OutboxEnvelope, driver_time
from protocol.errors import RemoteProtocolError
from protocol.receipt import Receipt
from protocol.statements import PayloadType, Signed

__all__ = [
    "DueEnvelope",
    "NoSuchEntry",
    "ReceiptMismatch",
    "ReceiptOutcome",
    "RefusedReceipt",
    "Settled",
    "SettledEntry",
    "VerifiedReceipt",
    "check_receipts",
    "due_outbox",
    "record_delivery_errors",
    "record_receipts",
    "settle_receipts",
]

_OUTBOX = core_table(OutboxEntry)
_OUTBOX_TO_SETTLE = select(
    _OUTBOX.c.envelope_id,
    _OUTBOX.c.recipient,
    _OUTBOX.c.state,
    _OUTBOX.c.reason,
    _OUTBOX.c.item_id,
    _OUTBOX.c.item_version,
    _OUTBOX.c.attempts,
).where(_OUTBOX.c.envelope_id.in_(bindparam("ids", expanding=True)))
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


# --- what is due, and transport failures --------------------------------------------------


@dataclass(frozen=True)
class DueEnvelope:
    """A pending envelope whose next attempt is due, with its stored wire bytes."""

    envelope_id: str
    recipient: str
    envelope: bytes
    attempts: int


def due_outbox(
    session: Session, state: NodeState, *, limit: int, exclude: frozenset[str], now: datetime
) -> list[DueEnvelope]:
    """Up to ``limit`` pending envelopes due by ``now``, oldest first, not in ``exclude``."""
    query = (
        select(OutboxEntry.envelope_id, OutboxEntry.recipient, OutboxEnvelope.envelope, OutboxEntry.attempts)
        .join(OutboxEnvelope, OutboxEnvelope.envelope_id == OutboxEntry.envelope_id)
        .where(OutboxEntry.state == OutboxState.PENDING, OutboxEntry.next_attempt_at <= now)
        .order_by(OutboxEntry.next_attempt_at)
    )
    return [DueEnvelope(*row.tuple()) for row in due_rows(session, query, exclude=exclude, limit=limit)]


def record_delivery_errors(
    session: Session, state: NodeState, *, envelope_ids: Sequence[str], error: str, retry_at: datetime, now: datetime
) -> None:
    """Delivery attempts failed in transport: schedule retries.

    There is no giving up: an accepted item stays pending until the receiver answers
    (SPEC §11.6); the outbox shows the attempts and the last error to the officer. An
    entry settled or withdrawn meanwhile is left as it is.
    """
    for envelope_id in envelope_ids:
        entry = session.get(OutboxEntry, envelope_id)
        if entry is None or not OUTBOX_ENTRY.allows(entry.state, OutboxEvent.ATTEMPT_FAILED):
            continue
        entry.state = OUTBOX_ENTRY.next(entry.state, OutboxEvent.ATTEMPT_FAILED)
        entry.attempts += 1
        entry.last_error = error[:500]
        entry.next_attempt_at = retry_at
        entry.updated_at = now


# --- receipts -----------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifiedReceipt:
    """A receipt that verified with the recipient's key and answers the envelope sent."""

    envelope_id: str
    signed: Signed
    receipt: Receipt


@dataclass(frozen=True)
class RefusedReceipt:
    """A receipt that did not verify, or answers another envelope; the entry stays pending."""

    envelope_id: str
    error: RemoteProtocolError


def _check_receipt(
    state: NodeState, *, recipient: str, envelope_id: str, envelope_digest: str, receipt: Signed
) -> Receipt:
    """Verify a receiver's signed receipt for one envelope (SPEC §11.3). No database access."""
    member = state.roster.member(recipient)
    if member is None:
        raise RemoteProtocolError(f"{recipient} is not in the roster")
    # SPEC §5.4.3: the recipient's key, or a retired one in its overlap.
    state.roster.verify_member(receipt, PayloadType.RECEIPT, member.member_id, state.roots)
    parsed = Receipt.from_bytes(receipt.payload)
    bound = (parsed.envelope_id, parsed.envelope_digest, parsed.sender, parsed.receiver)
    if bound != (envelope_id, envelope_digest, state.me, recipient):
        raise RemoteProtocolError(f"receipt from {recipient} is for another envelope")
    return parsed


def check_receipts(
    state: NodeState, *, recipient: str, sent: Sequence[tuple[str, str]], receipts: Sequence[Signed]
) -> list[VerifiedReceipt | RefusedReceipt]:
    """Verify each receipt against the (envelope id, digest) it answers. No database access.

    A batch signature's root is verified once (``state.roots``).
    """
    out: list[VerifiedReceipt | RefusedReceipt] = []
    for (envelope_id, digest), receipt in zip(sent, receipts, strict=True):
        try:
            parsed = _check_receipt(
                state, recipient=recipient, envelope_id=envelope_id, envelope_digest=digest, receipt=receipt
            )
        except RemoteProtocolError as exc:
            out.append(RefusedReceipt(envelope_id, exc))
            continue
        out.append(VerifiedReceipt(envelope_id, receipt, parsed))
    return out


@dataclass(frozen=True)
class SettledEntry:
    """The entry's state after its receipt (unchanged if it was already settled)."""

    envelope_id: str
    state: OutboxState
    #: The recall that must now follow an envelope that arrived after its item was recalled.
    late_recall: Signed | None = None


@dataclass(frozen=True)
class ReceiptMismatch:
    """The receipt's receiver is not the entry's recipient."""

    envelope_id: str
    error: RemoteProtocolError


@dataclass(frozen=True)
class NoSuchEntry:
    """No outbox entry has this envelope id."""

    envelope_id: str


ReceiptOutcome = SettledEntry | ReceiptMismatch | NoSuchEntry


def record_receipts(
    session: Session, state: NodeState, *, settled: Sequence[VerifiedReceipt], now: datetime
) -> list[ReceiptOutcome]:
    """Settle outbox entries with verified receipts, in one query and one bulk update.

    A receipt for an entry withdrawn by a recall while already on the wire still settles
    it; if it was accepted, the recall is queued for the recipient (SPEC §10.1).
    """
    if not settled:
        return []
    # Pending ORM changes (say, a recall withdrawing these entries earlier in this group)
    # must be in the database before it is read and written with Core.
    session.flush()
    connection = session.connection()
    at = driver_time(connection.dialect, now)
    ids = [verified.envelope_id for verified in settled]
    entries = {row.envelope_id: row for row in connection.execute(_OUTBOX_TO_SETTLE, {"ids": ids})}
    out: list[ReceiptOutcome] = []
    updates: list[dict[str, object]] = []
    settled_now: dict[str, OutboxState] = {}
    audit_entries: list[audit.Entry] = []
    for verified in settled:
        envelope_id, parsed = verified.envelope_id, verified.receipt
        entry = entries.get(envelope_id)
        if entry is None:
            out.append(NoSuchEntry(envelope_id))
            continue
        if parsed.receiver != entry.recipient:
            error = RemoteProtocolError(f"receipt from {parsed.receiver} for an envelope to {entry.recipient}")
            out.append(ReceiptMismatch(envelope_id, error))
            continue
        current = settled_now.get(envelope_id, OutboxState(entry.state))
        event = OutboxEvent.RECEIPT_ACCEPTED if parsed.accepted else OutboxEvent.RECEIPT_REFUSED
        if not OUTBOX_ENTRY.allows(current, event):  # settled already: a repeated receipt changes nothing
            out.append(SettledEntry(envelope_id, current))
            continue
        late_recall = None
        if current is OutboxState.WITHDRAWN and parsed.accepted:
            # Withdrawn by a recall while already on the wire: it arrived, so the recipient
            # holds a recalled item and must be sent the recall too (SPEC §10.1).
            late_recall = follow_late_delivery(
                session, recipient=entry.recipient, item_id=entry.item_id, item_version=entry.item_version, now=now
            )
        new_state = settled_now[envelope_id] = OUTBOX_ENTRY.next(current, event)
        updates.append(
            {
                "b_id": envelope_id,
                "state": new_state.value,
                "reason": parsed.reason,
                "receipt": verified.signed.model_dump_json().encode(),
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
                detail={
                    "receipt_digest": verified.signed.digest,
                    # Where the receiver says it logged the envelope (SPEC §11.3).
                    "receiver_seq": parsed.log_seq,
                    "receiver_leaf": parsed.log_leaf,
                },
            )
        )
        out.append(SettledEntry(envelope_id, new_state, late_recall))
    if updates:
        _SETTLE.execute(connection, updates)
        # ORM copies of these rows loaded earlier in this group commit are now stale. They
        # are updated in place, not expired: another job in the group may have returned
        # one, and an expired copy would fail to load once the session has closed.
        for update in updates:
            loaded = session.identity_map.get(session.identity_key(OutboxEntry, update["b_id"]))
            if loaded is not None:
                set_committed_value(loaded, "state", OutboxState(str(update["state"])))
                for key in ("reason", "receipt", "attempts"):
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
    peer_roster_version: int = 0,
) -> Settled:
    """Verify a batch of receipts and settle their outbox entries in the caller's transaction (SPEC §11.3).

    ``sent`` is (envelope id, digest) of what each receipt answers. Verifying runs in the
    same database job (SPEC §11.7); a batch root is verified once. A refusal from a
    receiver that answered under an older roster than this node holds does not settle
    its entry: it is retried, by which time the roster has reached the receiver
    (``peer_roster_version``, SPEC §11.12).
    """
    refused: list[tuple[str, str]] = []
    verified: list[VerifiedReceipt] = []
    behind = peer_behind(state, peer_roster_version)
    for result in check_receipts(state, recipient=recipient, sent=sent, receipts=receipts):
        if isinstance(result, RefusedReceipt):
            refused.append((result.envelope_id, f"bad receipt: {result.error}"))
        elif behind and not result.receipt.accepted:
            why = (
                f"{result.receipt.reason} under roster v{peer_roster_version}, this node holds v{state.roster.version}"
            )
            refused.append((result.envelope_id, f"refused by a receiver behind this node's roster: {why}"))
        else:
            verified.append(result)
    unmatched = []
    for outcome in record_receipts(session, state, settled=verified, now=now):
        if isinstance(outcome, ReceiptMismatch):
            refused.append((outcome.envelope_id, f"bad receipt: {outcome.error}"))
        elif isinstance(outcome, NoSuchEntry):
            unmatched.append(outcome.envelope_id)
    return Settled(refused, unmatched)
