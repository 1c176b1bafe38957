"""Reconciling the federation's logs with each other (SPEC §11.10.7).

Every transfer, consent and notice leaves entries on both sides; an insider who erases
or rewrites them on one side leaves the other side standing alone. ``reconcile`` reads
every member's log and reports each ``Mismatch`` with the entries on both sides:

- ``not_received``: A holds B's receipt for an envelope, but B's log has no INGRESS for it;
- ``not_sent``: B logged an INGRESS from A, but A's log has no EGRESS or RESHARE for it;
- ``unconfirmed``: A sent and B logged it, but A has no DELIVERY_CONFIRMED for it;
- ``outcome_differs``: B's INGRESS and A's DELIVERY_CONFIRMED disagree on the decision;
- ``reshare_without_consent``: a re-share carried a grant the originator's log never issued;
- ``notice_not_applied``: a holder the recall or correction was sent to has no entry applying it;
- ``notice_not_acknowledged``: the originator holds no signed acknowledgement from a holder;
- ``signed_entry_differs``: A holds B's signed receipt or acknowledgement naming B's entry
  ``#n`` and its leaf hash, and B's log has another entry there (rewritten after signing).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from node.audit.entries import AuditEvent
from node.audit.sources import AuditView
from node.store import AuditEntryRow

__all__ = ["LoggedEntry", "Mismatch", "MismatchKind", "load_entries", "reconcile"]

#: The events reconciliation reads.
EVENTS = (
    AuditEvent.EGRESS,
    AuditEvent.RESHARE,
    AuditEvent.INGRESS,
    AuditEvent.DELIVERY_CONFIRMED,
    AuditEvent.CONSENT_DECISION_SENT,
    AuditEvent.RECALL_SENT,
    AuditEvent.RECALL_RECEIVED,
    AuditEvent.CORRECTION_SENT,
    AuditEvent.CORRECTION_RECEIVED,
    AuditEvent.NOTICE_ACKNOWLEDGED,
)


class MismatchKind:
    """The kinds of mismatch, as stable strings."""

    NOT_RECEIVED = "not_received"
    NOT_SENT = "not_sent"
    UNCONFIRMED = "unconfirmed"
    OUTCOME_DIFFERS = "outcome_differs"
    RESHARE_WITHOUT_CONSENT = "reshare_without_consent"
    NOTICE_NOT_APPLIED = "notice_not_applied"
    NOTICE_NOT_ACKNOWLEDGED = "notice_not_acknowledged"
    SIGNED_ENTRY_DIFFERS = "signed_entry_differs"


@dataclass(frozen=True)
class LoggedEntry:
    """An entry of one member's log, as reconciliation and tracing read it."""

    member: str
    seq: int
    event: str
    peer: str | None
    item_id: str | None
    item_version: int | None
    envelope_id: str | None
    allowed: bool | None
    reason: str | None
    entry_hash: str = ""
    detail: Mapping[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        """``TR #12 INGRESS from KZ ALLOWED``."""
        peer = f" {self.peer}" if self.peer else ""
        return f"{self.member} #{self.seq} {self.event}{peer} {self.reason or ''}".rstrip()


@dataclass(frozen=True)
class Mismatch:
    """Two logs that do not tell the same story, with the entries on both sides."""

    kind: str
    item_id: str | None
    detail: str
    entries: tuple[LoggedEntry, ...]


def load_entries(session: Session, member: str, *, item_id: str | None = None) -> list[LoggedEntry]:
    """The entries of ``member``'s log that reconciliation and tracing read (one item's, if given)."""
    query = select(
        AuditEntryRow.seq,
        AuditEntryRow.event,
        AuditEntryRow.peer,
        AuditEntryRow.item_id,
        AuditEntryRow.item_version,
        AuditEntryRow.envelope_id,
        AuditEntryRow.allowed,
        AuditEntryRow.reason,
        AuditEntryRow.entry_hash,
        AuditEntryRow.detail,
    ).where(AuditEntryRow.event.in_([event.value for event in EVENTS]))
    if item_id is not None:
        query = query.where(AuditEntryRow.item_id == item_id)
    out = []
    for seq, event, peer, item, version, envelope, allowed, reason, leaf, detail in session.execute(
        query.order_by(AuditEntryRow.seq)
    ):
        try:
            parsed = json.loads(detail)
        except ValueError:
            parsed = {}
        out.append(LoggedEntry(member, seq, event, peer, item, version, envelope, allowed, reason, leaf, parsed))
    return out


def _by(entries: Iterable[LoggedEntry], *events: AuditEvent) -> dict[str, LoggedEntry]:
    names = {event.value for event in events}
    return {e.envelope_id: e for e in entries if e.event in names and e.envelope_id}


def reconcile(view: AuditView) -> list[Mismatch]:
    """Every mismatch between the members' logs (see the module doc)."""
    logs: dict[str, list[LoggedEntry]] = {}
    for member, source in sorted(view.sources.items()):
        try:
            with source.session() as session:
                logs[member] = load_entries(session, member)
        except FileNotFoundError:
            logs[member] = []  # a node that never ran
    return _transfers(logs) + _consents(logs) + _notices(logs) + _signed_entries(logs)


def _transfers(logs: Mapping[str, list[LoggedEntry]]) -> list[Mismatch]:
    out: list[Mismatch] = []
    sent = {m: _by(entries, AuditEvent.EGRESS, AuditEvent.RESHARE) for m, entries in logs.items()}
    confirmed = {m: _by(entries, AuditEvent.DELIVERY_CONFIRMED) for m, entries in logs.items()}
    received = {m: _by(entries, AuditEvent.INGRESS) for m, entries in logs.items()}
    for sender, confirmations in confirmed.items():
        for envelope_id, confirmation in confirmations.items():
            receiver = confirmation.peer or ""
            if receiver not in logs:
                continue
            ingress = received[receiver].get(envelope_id)
            if ingress is None:
                detail = (
                    f"{sender} holds {receiver}'s receipt for envelope {envelope_id}; {receiver}'s log has no INGRESS"
                )
                out.append(Mismatch(MismatchKind.NOT_RECEIVED, confirmation.item_id, detail, (confirmation,)))
            elif (ingress.allowed, ingress.reason) != (confirmation.allowed, confirmation.reason):
                detail = (
                    f"{receiver} logged {ingress.reason} for envelope {envelope_id}, "
                    f"its receipt to {sender} said {confirmation.reason}"
                )
                out.append(Mismatch(MismatchKind.OUTCOME_DIFFERS, ingress.item_id, detail, (confirmation, ingress)))
    for receiver, ingresses in received.items():
        for envelope_id, ingress in ingresses.items():
            sender = ingress.peer or ""
            if sender not in logs or not ingress.allowed:
                continue
            egress = sent[sender].get(envelope_id)
            if egress is None:
                detail = f"{receiver} received envelope {envelope_id} from {sender}; {sender}'s log never sent it"
                out.append(Mismatch(MismatchKind.NOT_SENT, ingress.item_id, detail, (ingress,)))
            elif envelope_id not in confirmed[sender]:
                detail = f"{sender} sent envelope {envelope_id} and {receiver} logged it; {sender} has no receipt"
                out.append(Mismatch(MismatchKind.UNCONFIRMED, ingress.item_id, detail, (egress, ingress)))
    return out


def _consents(logs: Mapping[str, list[LoggedEntry]]) -> list[Mismatch]:
    """Every grant a re-share carried must be one its grantor's log issued; the last, to that grantee.

    The first grant of a chain is the originator's answer to a request, a later one a
    holder's onward grant (SPEC §9.4.4): both are logged as ``CONSENT_DECISION_SENT``.
    """
    issued: dict[str, tuple[LoggedEntry, str]] = {}  # decision digest -> (entry, grantee)
    for entries in logs.values():
        for e in entries:
            if e.event == AuditEvent.CONSENT_DECISION_SENT.value and e.allowed:
                issued[str(e.detail.get("decision_digest", ""))] = (e, str(e.detail.get("grantee", "")))
    out = []
    for entries in logs.values():
        for e in entries:
            if e.event != AuditEvent.RESHARE.value or not e.allowed:
                continue
            digests = [str(d) for d in e.detail.get("consents", [])]
            unknown = [position for position, digest in enumerate(digests, start=1) if digest not in issued]
            if not digests or unknown:
                which = "a grant" if not digests else f"grant {unknown[0]}"
                detail = f"{e.member} re-shared {e.item_id} to {e.peer} with {which} no member's log issued"
                out.append(Mismatch(MismatchKind.RESHARE_WITHOUT_CONSENT, e.item_id, detail, (e,)))
                continue
            last, grantee = issued[digests[-1]]
            if grantee != e.peer:
                detail = f"{e.member} re-shared {e.item_id} to {e.peer}; the last grant names {grantee}"
                out.append(Mismatch(MismatchKind.RESHARE_WITHOUT_CONSENT, e.item_id, detail, (e, last)))
    return out


def _notices(logs: Mapping[str, list[LoggedEntry]]) -> list[Mismatch]:
    """Every holder a recall or correction was sent to (downstream too) applied and acknowledged it."""
    applied: dict[tuple[str, str], LoggedEntry] = {}  # (member, notice digest) -> applying entry
    acknowledged: set[tuple[str, str, str]] = set()  # (member whose log holds it, holder, notice digest)
    for member, entries in logs.items():
        for e in entries:
            digest = str(e.detail.get("notice_digest", ""))
            if e.event in (AuditEvent.RECALL_RECEIVED.value, AuditEvent.CORRECTION_RECEIVED.value) and e.allowed:
                applied[(member, digest)] = e
            if e.event == AuditEvent.NOTICE_ACKNOWLEDGED.value and e.allowed:
                acknowledged.add((member, str(e.detail.get("holder", "")), digest))
    out = []
    for member, entries in logs.items():
        for e in entries:
            digest = str(e.detail.get("notice_digest", ""))
            if e.event in (AuditEvent.RECALL_SENT.value, AuditEvent.CORRECTION_SENT.value):
                told, originator = [str(h) for h in e.detail.get("notified", [])], member
            elif (member, digest) in applied and e is applied[(member, digest)]:
                told, originator = [str(h) for h in e.detail.get("forwarded_to", [])], str(e.detail.get("originator"))
            else:
                continue
            for holder in told:
                if holder not in logs:
                    continue
                if (holder, digest) not in applied:
                    what = e.event.split("_")[0].lower()
                    detail = f"{member} sent {what} {digest[:12]} to {holder}; {holder} never applied it"
                    out.append(Mismatch(MismatchKind.NOTICE_NOT_APPLIED, e.item_id, detail, (e,)))
                elif originator in logs and (originator, holder, digest) not in acknowledged:
                    detail = f"{originator} holds no signed acknowledgement from {holder} of notice {digest[:12]}"
                    out.append(
                        Mismatch(
                            MismatchKind.NOTICE_NOT_ACKNOWLEDGED, e.item_id, detail, (e, applied[(holder, digest)])
                        )
                    )
    return out


#: Where a log keeps a counterparty's signed word naming one of the counterparty's entries:
#: event -> (detail field naming the counterparty or None for the entry's peer, seq field, leaf field).
_SIGNED_POSITIONS = {
    AuditEvent.DELIVERY_CONFIRMED.value: (None, "receiver_seq", "receiver_leaf"),
    AuditEvent.NOTICE_ACKNOWLEDGED.value: ("holder", "holder_seq", "holder_leaf"),
}


def _signed_entries(logs: Mapping[str, list[LoggedEntry]]) -> list[Mismatch]:
    """Each signed receipt or acknowledgement names an entry its signer's log still has (SPEC §11.10.6)."""
    by_position = {(m, e.seq): e for m, entries in logs.items() for e in entries}
    out = []
    for member, entries in logs.items():
        for e in entries:
            fields = _SIGNED_POSITIONS.get(e.event)
            if fields is None:
                continue
            who, seq_field, leaf_field = fields
            signer = (e.peer or "") if who is None else str(e.detail.get(who, ""))
            seq, leaf = e.detail.get(seq_field), e.detail.get(leaf_field)
            if signer not in logs or not isinstance(seq, int) or not isinstance(leaf, str):
                continue
            there = by_position.get((signer, seq))
            if there is None or there.entry_hash != leaf:
                now = "no entry reconciliation reads" if there is None else f"{there.event} {there.entry_hash[:12]}"
                detail = (
                    f"{member} holds {signer}'s signed word for {signer} #{seq} (leaf {leaf[:12]}); "
                    f"{signer} #{seq} is now {now}"
                )
                both = (e,) if there is None else (e, there)
                out.append(Mismatch(MismatchKind.SIGNED_ENTRY_DIFFERS, e.item_id, detail, both))
    return out
