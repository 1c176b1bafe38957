"""Audit entries: events, fields, canonical bytes and leaf hashes (SPEC §11.4).

Hash-linked, append-only audit log (metadata and digests only, never content).

Entry encoding (format 1)
-------------------------
``entry_bytes`` is the UTF-8 encoding of a JSON object holding every field except
``entry_hash``: ``seq, at, event, actor, peer, item_id, item_version, envelope_id,
allowed, reason, rule, detail, prev_hash``. Keys sorted, separators ``,`` and ``:`` (no
whitespace), ``ensure_ascii=False``, absent values as ``null``, ``detail`` as a nested
object, ``at`` as RFC 3339 UTC with microseconds and ``Z``
(``2026-05-09T12:00:00.000000Z``), hashes as lowercase hex.

``entry_hash = SHA-256(0x00 || entry_bytes)``: the RFC 9162 §2.1.1 leaf hash, so the
entries can later be the leaves of a Merkle tree with signed checkpoints without a format
change. ``prev_hash`` of entry 1 is 64 zeros; every other ``prev_hash`` is the previous
entry's ``entry_hash``. The single ``AuditHead`` row records the last ``seq`` and
``entry_hash`` and is updated in the same transaction as the append.

Limits: a hash chain detects edits, removals, reordering and truncation relative to the
head row, but someone with write access who rewrites a suffix *and* the head consistently
is only caught by comparing against an externally kept checkpoint (``merkle_root``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeAlias

from sqlalchemy import select
from sqlalchemy.orm import Session

from node.store import AuditEntryRow
from protocol.merkle import leaf_hash, tree_hash

__all__ = [
    "FIELDS",
    "GENESIS_HASH",
    "STREAM_BATCH",
    "AuditEvent",
    "AuditReason",
    "DetailValue",
    "Entry",
    "canonical_json",
    "check_detail",
    "entry_bytes",
    "entry_payload",
    "format_time",
    "hash_hex",
    "hash_matches",
    "merkle_root",
    "stream_rows",
    "utc",
]

GENESIS_HASH = "0" * 64

#: Exported column order (JSONL keys and CSV header).
FIELDS: tuple[str, ...] = (
    "seq",
    "at",
    "event",
    "actor",
    "peer",
    "item_id",
    "item_version",
    "envelope_id",
    "allowed",
    "reason",
    "rule",
    "detail",
    "prev_hash",
    "entry_hash",
)

# A guard, not a filter: detail must carry metadata, so an obviously content-bearing key
# is a programming error and fails loudly.
_FORBIDDEN_DETAIL_KEYS = frozenset({"content", "plaintext", "body", "sealed_content"})
#: Rows fetched per round trip when the log is read in order.
STREAM_BATCH = 1000

Scalar: TypeAlias = str | int | float | bool | None
DetailValue: TypeAlias = Scalar | list[str] | list[Scalar]


class AuditEvent(StrEnum):
    """Stable event names; the string values are part of the log format."""

    EGRESS = "EGRESS"
    INGRESS = "INGRESS"
    CONSENT_REQUEST_SENT = "CONSENT_REQUEST_SENT"
    CONSENT_REQUEST_RECEIVED = "CONSENT_REQUEST_RECEIVED"
    CONSENT_DECISION_SENT = "CONSENT_DECISION_SENT"
    CONSENT_DECISION_RECEIVED = "CONSENT_DECISION_RECEIVED"
    CONSENT_REVOKED = "CONSENT_REVOKED"
    RESHARE = "RESHARE"
    RECALL_SENT = "RECALL_SENT"
    RECALL_RECEIVED = "RECALL_RECEIVED"
    CORRECTION_SENT = "CORRECTION_SENT"
    CORRECTION_RECEIVED = "CORRECTION_RECEIVED"
    OFFICER_READ = "OFFICER_READ"
    CONNECTION_REFUSED = "CONNECTION_REFUSED"
    DELIVERY_CONFIRMED = "DELIVERY_CONFIRMED"
    NODE_STARTED = "NODE_STARTED"
    AGREEMENT_UPDATED = "AGREEMENT_UPDATED"
    CHECKPOINT_WITNESSED = "CHECKPOINT_WITNESSED"
    COSIGNATURE_RECEIVED = "COSIGNATURE_RECEIVED"
    NOTICE_ACKNOWLEDGED = "NOTICE_ACKNOWLEDGED"
    STORED_DATA_DAMAGED = "STORED_DATA_DAMAGED"
    ROSTER_UPDATED = "ROSTER_UPDATED"
    AGREEMENT_PROPOSED = "AGREEMENT_PROPOSED"
    AGREEMENT_COUNTERSIGNED = "AGREEMENT_COUNTERSIGNED"
    AGREEMENT_REJECTED = "AGREEMENT_REJECTED"
    CONSENT_REVOCATION_SENT = "CONSENT_REVOCATION_SENT"
    ITEM_PURGED = "ITEM_PURGED"


class AuditReason(StrEnum):
    """Reason codes of audit entries that are not policy decisions (``protocol.policy.Reason``).

    Stable like the event names: they are part of the log format (SPEC §11.4).
    """

    #: A TLS peer that is no roster member called the Exchange service (SPEC §11.2).
    UNKNOWN_PEER = "UNKNOWN_PEER"
    #: A changed agreement file was accepted, or refused (SPEC §6.2).
    AGREEMENT_HELD = "AGREEMENT_HELD"
    AGREEMENT_REFUSED = "AGREEMENT_REFUSED"
    #: A consent decision, sent or received (SPEC §9.4.1).
    CONSENT_GRANTED = "CONSENT_GRANTED"
    CONSENT_DENIED = "CONSENT_DENIED"
    #: A roster version was applied (SPEC §11.12), or refused: not newer than the one held
    #: (a rollback), or not signed by the secretariat's threshold, or malformed.
    ROSTER_HELD = "ROSTER_HELD"
    ROSTER_ROLLBACK = "ROSTER_ROLLBACK"
    ROSTER_SIGNATURE_INVALID = "ROSTER_SIGNATURE_INVALID"
    ROSTER_MALFORMED = "ROSTER_MALFORMED"
    #: An agreement the node held was set aside because a roster version does not let it hold it.
    AGREEMENT_SET_ASIDE = "AGREEMENT_SET_ASIDE"


def utc(at: datetime) -> datetime:
    """``at`` in UTC; naive datetimes are refused."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("audit times must be timezone-aware")
    return at.astimezone(UTC)


def format_time(at: datetime) -> str:
    """RFC 3339 UTC with microseconds and ``Z``; rejects naive datetimes."""
    return utc(at).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# One encoder for every entry: json.dumps with options builds a new encoder per call.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def canonical_json(value: object) -> str:
    """Sorted keys, no whitespace, raw UTF-8 (SPEC §11.4)."""
    return _CANONICAL.encode(value)


def check_detail(detail: Mapping[str, DetailValue] | None) -> dict[str, DetailValue]:
    """``detail`` checked for content-bearing keys and non-scalar values."""
    out: dict[str, DetailValue] = {}
    for key, value in (detail or {}).items():
        if not isinstance(key, str):
            raise TypeError(f"audit detail key {key!r} is not a string")
        if key.lower() in _FORBIDDEN_DETAIL_KEYS:
            raise ValueError(f"audit detail must not carry content (key {key!r})")
        items = value if isinstance(value, list) else [value]
        for item in items:
            if item is not None and not isinstance(item, str | int | float | bool):
                raise TypeError(f"audit detail {key!r} holds {type(item).__name__}")
        out[key] = list(value) if isinstance(value, list) else value
    return out


def entry_payload(row: AuditEntryRow, *, seq: int | None = None) -> dict[str, Any]:
    """Every field of ``row`` but ``entry_hash``, as hashed."""
    return {
        "seq": row.seq if seq is None else seq,
        "at": format_time(row.at),
        "event": row.event,
        "actor": row.actor,
        "peer": row.peer,
        "item_id": row.item_id,
        "item_version": row.item_version,
        "envelope_id": row.envelope_id,
        "allowed": row.allowed,
        "reason": row.reason,
        "rule": row.rule,
        "detail": json.loads(row.detail),
        "prev_hash": row.prev_hash,
    }


def entry_bytes(row: AuditEntryRow, *, seq: int | None = None) -> bytes:
    """The canonical bytes of ``row`` (all fields but ``entry_hash``); see module doc.

    ``seq`` overrides the row's own sequence number (used to recognise moved entries).
    """
    return canonical_json(entry_payload(row, seq=seq)).encode("utf-8")


def merkle_root(leaf_hashes: Sequence[bytes]) -> bytes:
    """Merkle Tree Hash (RFC 9162 §2.1.1) over already-hashed leaves (``protocol.merkle``).

    The empty tree's root is ``SHA-256("")``.
    """
    return tree_hash(leaf_hashes)


def hash_hex(row: AuditEntryRow, *, seq: int | None = None) -> str:
    """The leaf hash of ``row`` (at position ``seq`` if given), hex."""
    return leaf_hash(entry_bytes(row, seq=seq)).hex()


@dataclass(frozen=True, slots=True)
class Entry:
    """One entry for ``append_many``: every field but the ones the writer assigns."""

    event: AuditEvent
    actor: str
    peer: str | None = None
    item_id: str | None = None
    item_version: int | None = None
    envelope_id: str | None = None
    allowed: bool | None = None
    reason: str | None = None
    rule: str | None = None
    detail: Mapping[str, DetailValue] | None = None


def stream_rows(session: Session, after_seq: int = 0) -> Iterator[AuditEntryRow]:
    """Every entry after ``after_seq`` in seq order, fetched in batches, as stored."""
    stmt = (
        select(AuditEntryRow)
        .where(AuditEntryRow.seq > after_seq)
        .order_by(AuditEntryRow.seq)
        .execution_options(yield_per=STREAM_BATCH)
    )
    # populate_existing: compare what is stored, not objects cached in this session. The
    # identity map holds rows weakly, so memory stays flat while we stream.
    yield from session.scalars(stmt.execution_options(populate_existing=True))


def hash_matches(row: AuditEntryRow, *, seq: int | None = None) -> bool:
    """Whether ``row`` hashes to its ``entry_hash`` (at position ``seq`` if given)."""
    try:
        return hash_hex(row, seq=seq) == row.entry_hash
    except (ValueError, TypeError):  # e.g. detail no longer valid JSON
        return False
