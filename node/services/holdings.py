"""What a node holds, and the desk's reads of it (SPEC §11.8).

``held`` opens a held item (an original or a received copy) for the services that pass
it on or ask consent for it. ``read_item`` is an officer's read, audited. The listings
answer the desk's queries; they return rows with every attribute loaded, which the
caller reads after the session has closed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from node import audit
from node.audit import AuditEvent
from node.codec import chain_from_bytes
from node.errors import FailedPreconditionError, InvalidRequestError, NotFoundError, StoredDataError
from node.lifecycle import ConsentRequestState, InboxStatus, OutboxState
from node.services.state import NodeState, at_rest_binding
from node.store import AuditEntryRow, AuditHead, ConsentRequestRow, InboxItem, OriginalItem, OutboxEntry
from protocol.envelope import OriginAttestation
from protocol.errors import MalformedError
from protocol.item import RawData, ReportTemplate, item_from_bytes
from protocol.label import Label
from protocol.statements import Signed

__all__ = [
    "Held",
    "ItemRead",
    "NodeStatus",
    "attestation_of",
    "audit_page",
    "consent_requests",
    "held",
    "inbox",
    "newest_version",
    "node_status",
    "outbox",
    "purged_error",
    "read_item",
    "record_stored_data_error",
    "resolve_item_id",
    "resolve_request_id",
]

#: How many matches an ambiguous prefix lists.
_MATCHES_SHOWN = 10


@dataclass(frozen=True)
class Held:
    """A held item version: its origin attestation, exact plaintext and consent chain."""

    origin: Signed
    plaintext: bytes
    chain: tuple[Signed, ...]


def purged_error(
    item_id: str, version: int, purged_at: datetime | None, retain_until: datetime
) -> FailedPreconditionError:
    """What a request for a purged copy is answered with (SPEC §11.13)."""
    when = "" if purged_at is None else f" on {audit.format_time(purged_at)}"
    return FailedPreconditionError(
        f"item {item_id} v{version} was purged{when}: its retention ended (retain until "
        f"{audit.format_time(retain_until)}); only its metadata is kept"
    )


def newest_version(session: Session, item_id: str) -> int:
    """The newest version of an item this node originated or received; ``NotFoundError`` if none."""
    versions = [
        v
        for v in (
            session.scalar(select(func.max(OriginalItem.item_version)).where(OriginalItem.item_id == item_id)),
            session.scalar(select(func.max(InboxItem.item_version)).where(InboxItem.item_id == item_id)),
        )
        if v is not None
    ]
    if not versions:
        raise NotFoundError(f"this node holds no item {item_id}")
    return max(versions)


def held(session: Session, state: NodeState, item_id: str, version: int) -> Held:
    """An item this node originated or received, opened from its sealed copy; a purged one is refused."""
    original = session.get(OriginalItem, (item_id, version))
    if original is not None:
        if original.purged_at is not None:
            raise purged_error(item_id, version, original.purged_at, original.retain_until)
        origin = Signed.model_validate_json(original.origin_statement)
        binding = at_rest_binding(item_id, version, "original")
        plaintext = state.at_rest.open(original.sealed_content, binding, item=(item_id, version))
        return Held(origin, plaintext, ())
    rows = session.scalars(
        select(InboxItem)
        .where(InboxItem.item_id == item_id, InboxItem.item_version == version)
        .order_by(InboxItem.received_at)
    ).all()
    if not rows:
        raise NotFoundError(f"this node holds no item {item_id} v{version}")
    row = next((r for r in rows if r.status is not InboxStatus.PURGED), None)
    if row is None:
        raise purged_error(item_id, version, rows[0].purged_at, rows[0].retain_until)
    binding = at_rest_binding(item_id, version, row.envelope_id)
    plaintext = state.at_rest.open(row.sealed_content, binding, item=(item_id, version))
    return Held(Signed.model_validate_json(row.origin_statement), plaintext, chain_from_bytes(row.consent_chain))


def _resolve(what: str, prefix: str, columns: list[Any], session: Session) -> str:
    """The one id of ``columns`` that ``prefix`` is, or begins (README, "Using it": ids by unique prefix).

    A prefix of none is returned as it is, for the call to refuse as not found.
    """
    if not prefix:
        raise InvalidRequestError(f"no {what} given")
    for column in columns:  # a whole id is itself, whatever it is a prefix of
        if session.scalar(select(column).where(column == prefix).limit(1)) is not None:
            return prefix
    matches: set[str] = set()
    for column in columns:
        query = select(column).where(column.startswith(prefix, autoescape=True)).distinct()
        matches.update(session.scalars(query.limit(_MATCHES_SHOWN + 1)))
    if not matches:  # the call itself says it has none, in its own words
        return prefix
    if len(matches) > 1:
        shown = sorted(matches)[:_MATCHES_SHOWN]
        more = ", …" if len(matches) > _MATCHES_SHOWN else ""
        raise InvalidRequestError(f"{what} {prefix} is ambiguous: it begins {', '.join(shown)}{more}")
    return matches.pop()


def resolve_item_id(session: Session, state: NodeState, *, prefix: str) -> str:
    """The item id ``prefix`` stands for among the items held (originals and received copies).

    The same rule for every desk call that names an item: a whole id, or a prefix of
    exactly one; an ambiguous prefix is refused with its matches (``InvalidRequestError``).
    """
    return _resolve("item", prefix, [OriginalItem.item_id, InboxItem.item_id], session)


def resolve_request_id(session: Session, state: NodeState, *, prefix: str) -> str:
    """The consent request id ``prefix`` stands for (the rule of ``resolve_item_id``)."""
    return _resolve("consent request", prefix, [ConsentRequestRow.request_id], session)


def attestation_of(row: InboxItem | OriginalItem) -> OriginAttestation:
    """The origin attestation a held copy was accepted or attested under: the signed label (SPEC §11.5).

    What the desk shows of a label comes from here, never from the unsigned columns beside
    it (band, category, topics, ``label_json``), which only serve queries.
    """
    try:
        attestation = OriginAttestation.from_bytes(Signed.model_validate_json(row.origin_statement).payload)
    except (MalformedError, ValueError) as exc:
        raise StoredDataError(
            f"the stored origin statement of item {row.item_id} v{row.item_version} does not parse",
            item=(row.item_id, row.item_version),
        ) from exc
    if (attestation.item_id, attestation.item_version) != (row.item_id, row.item_version):
        raise StoredDataError(
            f"the stored origin statement of item {row.item_id} v{row.item_version} names another item",
            item=(row.item_id, row.item_version),
        )
    return attestation


def record_stored_data_error(
    session: Session, state: NodeState, *, operation: str, error: StoredDataError, actor: str, now: datetime
) -> None:
    """Audit stored data that failed to open or parse for a desk call (SPEC §11.5), in a job of its own.

    The call's own job was rolled back with its error; this entry is what remains of it.
    """
    item_id, item_version = error.item or (None, None)
    audit.append(
        session,
        now=now,
        event=AuditEvent.STORED_DATA_DAMAGED,
        actor=actor,
        item_id=item_id,
        item_version=item_version,
        allowed=False,
        detail={"operation": operation, "error": str(error)},
    )


@dataclass(frozen=True)
class ItemRead:
    """What an officer's read returns: the row, the signed label, the content, the chain."""

    row: InboxItem | OriginalItem
    label: Label
    item: ReportTemplate | RawData
    chain: tuple[Signed, ...]


def read_item(
    session: Session, state: NodeState, *, item_id: str, item_version: int, officer: str, now: datetime
) -> ItemRead:
    """An officer reads a held item (version 0: the newest); the read itself is audited (SPEC §11.4)."""
    item_version = item_version or newest_version(session, item_id)
    copy = held(session, state, item_id, item_version)
    row: InboxItem | OriginalItem | None = session.get(OriginalItem, (item_id, item_version))
    if row is None:
        row = session.scalars(
            select(InboxItem)
            .where(
                InboxItem.item_id == item_id,
                InboxItem.item_version == item_version,
                InboxItem.status != InboxStatus.PURGED,
            )
            .order_by(InboxItem.received_at)
        ).first()
    assert row is not None  # held() found it
    attestation = attestation_of(row)
    if isinstance(row, InboxItem) and row.status is InboxStatus.RECALLED:
        raise FailedPreconditionError(f"item {item_id} v{item_version} was recalled by {attestation.originator}")
    audit.append(
        session,
        now=now,
        event=AuditEvent.OFFICER_READ,
        actor=officer,
        item_id=item_id,
        item_version=item_version,
        detail={"origin_digest": copy.origin.digest},
    )
    return ItemRead(row, attestation.label, item_from_bytes(copy.plaintext), copy.chain)


def inbox(session: Session, state: NodeState, *, limit: int) -> list[InboxItem]:
    """Received copies, newest first."""
    return list(session.scalars(select(InboxItem).order_by(InboxItem.received_at.desc()).limit(limit)))


def consent_requests(
    session: Session, state: NodeState, *, state_filter: ConsentRequestState | None
) -> list[ConsentRequestRow]:
    """Consent requests, incoming and outgoing, oldest first."""
    query = select(ConsentRequestRow).order_by(ConsentRequestRow.created_at)
    if state_filter is not None:
        query = query.where(ConsentRequestRow.state == state_filter)
    return list(session.scalars(query))


def outbox(session: Session, state: NodeState, *, state_filter: OutboxState | None) -> list[OutboxEntry]:
    """Outbox entries, oldest first."""
    query = select(OutboxEntry).order_by(OutboxEntry.created_at)
    if state_filter is not None:
        query = query.where(OutboxEntry.state == state_filter)
    return list(session.scalars(query))


def audit_page(
    session: Session,
    state: NodeState,
    *,
    after_seq: int,
    limit: int,
    event: AuditEvent | None,
    item_id: str | None = None,
) -> list[AuditEntryRow]:
    """A keyset page of the audit log (``node.audit.list_entries``), of one item's entries if given."""
    where = audit.EntryFilter(item_id=item_id)
    return audit.list_entries(session, after_seq=after_seq, limit=limit, event=event, where=where)


@dataclass(frozen=True)
class NodeStatus:
    """The desk's status line."""

    audit_head: int
    outbox_pending: int


def node_status(session: Session, state: NodeState) -> NodeStatus:
    """The newest audit entry and how many envelopes wait for a receipt."""
    pending = session.scalar(
        select(func.count()).select_from(OutboxEntry).where(OutboxEntry.state == OutboxState.PENDING)
    )
    head = session.scalar(select(func.coalesce(AuditHead.seq, 0)).where(AuditHead.id == 1))
    return NodeStatus(int(head or 0), int(pending or 0))
