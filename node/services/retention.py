"""Retention: each holder destroys an item's content when its retention ends (SPEC §11.13).

``purge_due`` runs as a job of the group commit, driven by the runtime's retention pump
with the clock passed in. For every copy whose retention has ended it destroys the
sealed content, keeps the row and its metadata (label, origin statement, consent
chain, digests), marks it ``purged`` (``node.lifecycle.INBOX_ITEM``, ``ORIGINAL_ITEM``)
and appends an ``ITEM_PURGED`` entry. Once no copy of an item version is left, the
sealed envelopes of it still in the outbox are destroyed too (a pending one is withdrawn
first), and the batch keys the node remembers are forgotten, so nothing the node keeps
opens the content any more.

A received copy's retention ends at the earliest of its label's ``retain_until``, a
``retain-until`` condition of its consent chain and its arrival plus the maximum
retention of the agreement it came under (``InboxItem.retain_until``); when an amendment
or a changed agreement file shortens that maximum, ``apply_agreement_maximum`` brings
the copies' deadlines forward. The originator's own versions follow the node's
``[retention]`` configuration.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from node import audit
from node.audit import AuditEvent
from node.lifecycle import INBOX_ITEM, ORIGINAL_ITEM, OUTBOX_ENTRY, InboxEvent, OriginalEvent, OutboxEvent, OutboxState
from node.services.state import NodeState
from node.store import InboxItem, OriginalItem, OutboxEntry, OutboxEnvelope
from protocol.label import Label
from protocol.policy import Reason
from protocol.retention import retention_deadline

__all__ = ["PURGE_RULE", "Purged", "apply_agreement_maximum", "purge_due"]

#: The rule ``ITEM_PURGED`` entries name.
PURGE_RULE = "§11.13"


@dataclass(frozen=True)
class Purged:
    """One copy whose content was destroyed."""

    item_id: str
    item_version: int
    #: "original", or the envelope id the copy arrived in.
    copy: str
    cause: str


def _cause(row: InboxItem) -> str:
    label = Label.model_validate_json(row.label_json)
    if row.retain_until >= label.retain_until:
        return "label retain_until"
    return "agreement maximum or consent condition"


def purge_due(session: Session, state: NodeState, *, now: datetime, limit: int = 256) -> list[Purged]:
    """Destroy the content of every copy whose retention ended by ``now`` (up to ``limit`` of each kind)."""
    purged: list[Purged] = []
    copies = session.scalars(
        select(InboxItem)
        .where(InboxItem.purged_at.is_(None), InboxItem.retain_until <= now)
        .order_by(InboxItem.retain_until)
        .limit(limit)
    ).all()
    for row in copies:
        row.status = INBOX_ITEM.next(row.status, InboxEvent.PURGED)
        row.sealed_content, row.purged_at = b"", now
        purged.append(Purged(row.item_id, row.item_version, row.envelope_id, _cause(row)))
        _audit(session, state, row.item_id, row.item_version, row.envelope_id, row.origin_digest, row, now)
    if state.retention.originals == "label":
        originals = session.scalars(
            select(OriginalItem)
            .where(OriginalItem.purged_at.is_(None), OriginalItem.retain_until <= now - state.retention.originals_extra)
            .order_by(OriginalItem.retain_until)
            .limit(limit)
        ).all()
        for original in originals:
            ORIGINAL_ITEM.next(original.state, OriginalEvent.PURGED)  # a purged original is not purged again
            original.sealed_content, original.purged_at = b"", now
            purged.append(Purged(original.item_id, original.item_version, "original", "node configuration"))
            _audit(session, state, original.item_id, original.item_version, None, original.origin_digest, original, now)
    if purged:
        session.flush()
        for item_id, version in dict.fromkeys((p.item_id, p.item_version) for p in purged):
            _destroy_envelopes(session, state, item_id, version, now)
        state.batch_keys.forget()
    return purged


def _audit(
    session: Session,
    state: NodeState,
    item_id: str,
    version: int,
    envelope_id: str | None,
    origin_digest: str,
    row: InboxItem | OriginalItem,
    now: datetime,
) -> None:
    detail: dict[str, audit.DetailValue] = {
        "copy": "original" if envelope_id is None else "received",
        "retain_until": audit.format_time(row.retain_until),
        "origin_digest": origin_digest,
    }
    if isinstance(row, InboxItem):
        detail |= {"sender": row.sender, "cause": _cause(row)}
    else:
        settings = state.retention
        detail |= {"cause": f"originals = {settings.originals}, {settings.originals_extra_days} days after"}
    audit.append(
        session,
        now=now,
        event=AuditEvent.ITEM_PURGED,
        actor=state.me,
        item_id=item_id,
        item_version=version,
        envelope_id=envelope_id,
        reason=Reason.RETENTION_EXPIRED.value,
        rule=PURGE_RULE,
        detail=detail,
    )


def _destroy_envelopes(session: Session, state: NodeState, item_id: str, version: int, now: datetime) -> None:
    """Once no copy of the version is left, its envelopes in the outbox go too (pending ones withdrawn)."""
    if session.scalar(
        select(InboxItem.envelope_id).where(
            InboxItem.item_id == item_id, InboxItem.item_version == version, InboxItem.purged_at.is_(None)
        )
    ) is not None or session.scalar(
        select(OriginalItem.item_id).where(
            OriginalItem.item_id == item_id, OriginalItem.item_version == version, OriginalItem.purged_at.is_(None)
        )
    ):
        return
    entries: Sequence[OutboxEntry] = session.scalars(
        select(OutboxEntry).where(OutboxEntry.item_id == item_id, OutboxEntry.item_version == version)
    ).all()
    for entry in entries:
        if entry.state is OutboxState.PENDING:
            entry.state = OUTBOX_ENTRY.next(entry.state, OutboxEvent.EXPIRED)
            entry.reason, entry.updated_at = Reason.RETENTION_EXPIRED.value, now
    if entries:
        session.execute(delete(OutboxEnvelope).where(OutboxEnvelope.envelope_id.in_([e.envelope_id for e in entries])))


def apply_agreement_maximum(session: Session, state: NodeState, *, now: datetime) -> int:
    """Bring forward the retention of copies held under an agreement whose maximum is now shorter.

    Run when an agreement version takes effect (SPEC §6.2, §6.4); returns how many copies
    changed. The retention pump purges those whose new deadline has passed.
    """
    changed = 0
    for agreement in state.agreements.agreements():
        if state.me not in agreement.parties:
            continue
        maximum = timedelta(days=agreement.max_retention_days)
        for row in session.scalars(
            select(InboxItem).where(InboxItem.purged_at.is_(None), InboxItem.sender == agreement.other(state.me))
        ):
            deadline = retention_deadline(row.retain_until, held_since=row.received_at, max_retention=maximum)
            if deadline < row.retain_until:
                row.retain_until = deadline
                changed += 1
    return changed
