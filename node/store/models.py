"""The node's tables: SQLAlchemy 2.0 typed ORM models.

The schema is created and changed only by the Alembic migrations in ``node/migrations``
(``node.store.upgrade``). State columns are typed with the lifecycle enums of
``node.lifecycle``; their stored values are the strings the migrations constrain.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from node.lifecycle import (
    ConsentRequestState,
    ControlRpc,
    ControlState,
    Direction,
    InboxStatus,
    NoticeKind,
    OriginalState,
    OutboxKind,
    OutboxState,
    ProposalState,
)
from node.store.types import EnumText, UTCDateTime

# The package's face (node.store) lists what is public.

# Deterministic constraint names: SQLite ALTERs go through Alembic batch mode, which needs
# named constraints, and both dialects then carry identical names.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """The single declarative base for every node table."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _one_of(column: str, values: type[StrEnum]) -> CheckConstraint:
    """The CHECK constraint the migrations put on an enum-typed column."""
    listed = ", ".join(f"'{v.value}'" for v in values)
    return CheckConstraint(f"{column} IN ({listed})", name=column)


class OriginalItem(Base):
    """An item this node originated (one row per version)."""

    __tablename__ = "original_items"
    # The retention pump looks for the versions whose retention ended (migration 0006b).
    __table_args__ = (Index("ix_original_items_due", "purged_at", "retain_until"),)

    item_id: Mapped[str] = mapped_column(String, primary_key=True)
    item_version: Mapped[int] = mapped_column(Integer, primary_key=True)
    origin_statement: Mapped[bytes] = mapped_column(LargeBinary)
    origin_digest: Mapped[str] = mapped_column(String(64))
    # Plaintext sealed with the node-local key by the caller; never stored in the clear.
    # Empty once purged (SPEC §11.13).
    sealed_content: Mapped[bytes] = mapped_column(LargeBinary)
    band: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    recalled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: The label's ``retain_until`` (SPEC §7.1).
    retain_until: Mapped[datetime] = mapped_column(UTCDateTime)
    #: When the content was destroyed at the end of its retention (SPEC §11.13).
    purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def state(self) -> OriginalState:
        """Its lifecycle state (``node.lifecycle.ORIGINAL_ITEM``), kept as ``recalled_at`` and ``purged_at``."""
        if self.purged_at is not None:
            return OriginalState.PURGED
        return OriginalState.ACTIVE if self.recalled_at is None else OriginalState.RECALLED


class InboxItem(Base):
    """An item received from a peer, held under the label it arrived with."""

    __tablename__ = "inbox_items"
    __table_args__ = (
        _one_of("status", InboxStatus),
        Index("ix_inbox_items_item", "item_id", "item_version"),
        # The retention pump's query: not yet purged, retention ended (migration 0006b).
        Index("ix_inbox_items_due", "purged_at", "retain_until"),
    )

    envelope_id: Mapped[str] = mapped_column(String, primary_key=True)
    item_id: Mapped[str] = mapped_column(String)
    item_version: Mapped[int] = mapped_column(Integer)
    originator: Mapped[str] = mapped_column(String)
    sender: Mapped[str] = mapped_column(String)
    origin_digest: Mapped[str] = mapped_column(String(64))
    band: Mapped[int] = mapped_column(Integer)
    category: Mapped[str] = mapped_column(String)
    topics: Mapped[str] = mapped_column(Text)  # JSON list of topic strings
    label_json: Mapped[str] = mapped_column(Text)  # label metadata only, never content
    origin_statement: Mapped[bytes] = mapped_column(LargeBinary)
    consent_chain: Mapped[bytes] = mapped_column(LargeBinary)  # serialised grants; may be empty
    sealed_content: Mapped[bytes] = mapped_column(LargeBinary)  # empty once purged (SPEC §11.13)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[InboxStatus] = mapped_column(EnumText(InboxStatus))
    #: When this copy's retention ends (SPEC §11.13): its label's ``retain_until``, a
    #: ``retain-until`` condition of its chain, or the agreement's maximum from its
    #: arrival, whichever is first; brought forward when an amendment shortens the maximum.
    retain_until: Mapped[datetime] = mapped_column(UTCDateTime)
    purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Delivery(Base):
    """Outcome of every ingress attempt: makes re-delivery idempotent and replay visible."""

    __tablename__ = "deliveries"
    # A sender's nonce may be used once; a replayed envelope hits this constraint.
    __table_args__ = (UniqueConstraint("sender", "nonce"),)

    envelope_id: Mapped[str] = mapped_column(String, primary_key=True)
    envelope_digest: Mapped[str] = mapped_column(String(64))
    sender: Mapped[str] = mapped_column(String)
    nonce: Mapped[str] = mapped_column(String)
    accepted: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(String)
    receipt: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)


class _Retried:
    """Columns of a durable queue's row (the outbox, the control outbox): tried until answered."""

    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class OutboxEntry(_Retried, Base):
    """An envelope (already sealed to its recipient) waiting to be delivered or settled."""

    __tablename__ = "outbox"
    __table_args__ = (
        _one_of("kind", OutboxKind),
        _one_of("state", OutboxState),
        # The delivery loop scans "pending and due" in next_attempt_at order.
        Index("ix_outbox_state_due", "state", "next_attempt_at"),
    )

    envelope_id: Mapped[str] = mapped_column(String, primary_key=True)
    recipient: Mapped[str] = mapped_column(String)
    item_id: Mapped[str] = mapped_column(String)
    item_version: Mapped[int] = mapped_column(Integer)
    kind: Mapped[OutboxKind] = mapped_column(EnumText(OutboxKind))
    state: Mapped[OutboxState] = mapped_column(EnumText(OutboxState))
    reason: Mapped[str | None] = mapped_column(String)
    receipt: Mapped[bytes | None] = mapped_column(LargeBinary)


class OutboxEnvelope(Base):
    """The sealed bytes of an outbox entry, written once and sent as they are on every retry.

    Kept apart from ``OutboxEntry`` so that settling an entry (a small UPDATE) does not
    rewrite the envelope: SQLite rewrites a whole row, overflow pages included.
    """

    __tablename__ = "outbox_envelopes"

    envelope_id: Mapped[str] = mapped_column(String, primary_key=True)
    envelope: Mapped[bytes] = mapped_column(LargeBinary)


class ControlMessage(_Retried, Base):
    """A signed control message (consent request or decision, notice) waiting for its ack.

    Committed with the change it announces; re-sent until the peer acknowledges it.
    Receivers treat a repeat as a duplicate, so a re-send is harmless.
    """

    __tablename__ = "control_outbox"
    __table_args__ = (
        _one_of("rpc", ControlRpc),
        _one_of("state", ControlState),
        Index("ix_control_outbox_state_due", "state", "next_attempt_at"),
    )

    #: The statement digest and the recipient: one message per statement per peer.
    message_id: Mapped[str] = mapped_column(String, primary_key=True)
    recipient: Mapped[str] = mapped_column(String)
    rpc: Mapped[ControlRpc] = mapped_column(EnumText(ControlRpc, 32))
    statement: Mapped[bytes] = mapped_column(LargeBinary)
    state: Mapped[ControlState] = mapped_column(EnumText(ControlState))
    ack: Mapped[str | None] = mapped_column(String)


class ConsentRequestRow(Base):
    """A third-party consent request, sent (outgoing) or received (incoming)."""

    __tablename__ = "consent_requests"
    __table_args__ = (
        _one_of("direction", Direction),
        _one_of("state", ConsentRequestState),
    )

    request_id: Mapped[str] = mapped_column(String, primary_key=True)
    direction: Mapped[Direction] = mapped_column(EnumText(Direction))
    item_id: Mapped[str] = mapped_column(String)
    item_version: Mapped[int] = mapped_column(Integer)
    requester: Mapped[str] = mapped_column(String)
    third_party: Mapped[str] = mapped_column(String)
    purpose: Mapped[str] = mapped_column(Text)
    statement: Mapped[bytes] = mapped_column(LargeBinary)
    state: Mapped[ConsentRequestState] = mapped_column(EnumText(ConsentRequestState))
    decision: Mapped[bytes | None] = mapped_column(LargeBinary)
    reason: Mapped[str | None] = mapped_column(String)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ConsentGrantRow(Base):
    """A signed consent grant held by this node (issued by it or to it)."""

    __tablename__ = "consent_grants"

    grant_id: Mapped[str] = mapped_column(String, primary_key=True)
    item_id: Mapped[str] = mapped_column(String)
    item_version: Mapped[int] = mapped_column(Integer)
    holder: Mapped[str] = mapped_column(String)
    grantee: Mapped[str] = mapped_column(String)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    transferable: Mapped[bool] = mapped_column(Boolean)
    statement: Mapped[bytes] = mapped_column(LargeBinary)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class NoticeRow(Base):
    """A signed recall, correction or revocation notice received."""

    __tablename__ = "notices"
    __table_args__ = (_one_of("kind", NoticeKind),)

    notice_id: Mapped[str] = mapped_column(String, primary_key=True)
    kind: Mapped[NoticeKind] = mapped_column(EnumText(NoticeKind))
    item_id: Mapped[str] = mapped_column(String)
    item_version: Mapped[int] = mapped_column(Integer)
    issuer: Mapped[str] = mapped_column(String)
    statement: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AuditEntryRow(Base):
    """One hash-linked audit entry: metadata and digests only, never content.

    See ``node.audit`` for the entry encoding and hash chain.
    """

    __tablename__ = "audit_log"
    # No index on entry_hash: a random key dirties an index page per append (migration 0004).
    __table_args__ = (
        Index("ix_audit_log_event_seq", "event", "seq"),
        # Auditors' pages by item, peer or reason (migration 0005).
        Index("ix_audit_log_item_id_seq", "item_id", "seq"),
        Index("ix_audit_log_peer_seq", "peer", "seq"),
        Index("ix_audit_log_reason_seq", "reason", "seq"),
    )

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    event: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String)
    peer: Mapped[str | None] = mapped_column(String)
    item_id: Mapped[str | None] = mapped_column(String)
    item_version: Mapped[int | None] = mapped_column(Integer)
    envelope_id: Mapped[str | None] = mapped_column(String)
    allowed: Mapped[bool | None] = mapped_column(Boolean)
    reason: Mapped[str | None] = mapped_column(String)
    rule: Mapped[str | None] = mapped_column(String)
    detail: Mapped[str] = mapped_column(Text)  # canonical JSON object text
    prev_hash: Mapped[str] = mapped_column(String(64))
    entry_hash: Mapped[str] = mapped_column(String(64))
    #: The entry's canonical bytes (UTF-8), exactly as ``entry_hash`` covers them: verification
    #: hashes these and compares the columns above with them (SPEC §11.4, migration 0006a).
    entry: Mapped[str] = mapped_column(Text)


class AuditHead(Base):
    """Single row (id=1) naming the last audit entry; seeded by the initial migration.

    Appenders lock this row, so concurrent writers cannot fork the chain, and verify()
    uses it to detect truncation.
    """

    __tablename__ = "audit_head"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    entry_hash: Mapped[str] = mapped_column(String(64))
    #: The node's signed checkpoint of the log at ``seq`` (SPEC §11.10.8): rewritten with the
    #: head by every commit that appends, so it costs no page of its own. None before 0009.
    checkpoint: Mapped[bytes | None] = mapped_column(LargeBinary)
    checkpoint_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AuditSubtree(Base):
    """The root of a perfect subtree of the audit log's Merkle tree (levels 8, 16, …; SPEC §11.10.1)."""

    __tablename__ = "audit_subtrees"

    level: Mapped[int] = mapped_column(Integer, primary_key=True)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary)


class AuditCheckpoint(Base):
    """A checkpoint of this node's audit log that a witness was asked to co-sign (the latest is the head's)."""

    __tablename__ = "audit_checkpoints"

    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root: Mapped[bytes] = mapped_column(LargeBinary)
    signed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: The signed note (C2SP tlog-checkpoint, SPEC §11.10.2).
    note: Mapped[bytes] = mapped_column(LargeBinary)


class AuditCosignature(Base):
    """A peer's cosignature on one of this node's checkpoints (SPEC §11.10.4)."""

    __tablename__ = "audit_cosignatures"

    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    witness: Mapped[str] = mapped_column(String, primary_key=True)
    cosigned_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: The witness's signature lines, to append to the checkpoint note.
    lines: Mapped[bytes] = mapped_column(LargeBinary)


class WitnessedCheckpoint(Base):
    """A checkpoint of a peer's log that this node witnessed and co-signed (SPEC §11.10.5)."""

    __tablename__ = "witnessed_checkpoints"

    member: Mapped[str] = mapped_column(String, primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root: Mapped[bytes] = mapped_column(LargeBinary)
    log_time: Mapped[datetime] = mapped_column(UTCDateTime)
    #: The log's note with this node's cosignature lines.
    note: Mapped[bytes] = mapped_column(LargeBinary)
    witnessed_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AgreementProposalRow(Base):
    """A proposed agreement version, sent (outgoing) or received (incoming) (SPEC §6.4)."""

    __tablename__ = "agreement_proposals"
    __table_args__ = (
        _one_of("direction", Direction),
        _one_of("state", ProposalState),
        Index("ix_agreement_proposals_agreement", "agreement_id", "version"),
    )

    proposal_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    direction: Mapped[Direction] = mapped_column(EnumText(Direction))
    agreement_id: Mapped[str] = mapped_column(String)
    version: Mapped[int] = mapped_column(Integer)
    proposer: Mapped[str] = mapped_column(String)
    counterparty: Mapped[str] = mapped_column(String)
    #: The signed AGREEMENT_PROPOSAL statement.
    proposal: Mapped[bytes] = mapped_column(LargeBinary)
    #: SHA-256 of the proposed agreement's payload: how its countersignature is matched.
    agreement_digest: Mapped[str] = mapped_column(String(64))
    note: Mapped[str] = mapped_column(Text)
    state: Mapped[ProposalState] = mapped_column(EnumText(ProposalState))
    #: The AGREEMENT statement both parties signed, once countersigned.
    countersigned: Mapped[bytes | None] = mapped_column(LargeBinary)
    #: The signed rejection, once rejected.
    rejection: Mapped[bytes | None] = mapped_column(LargeBinary)
    #: Why it was rejected or superseded.
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class NoticeAckRow(Base):
    """A holder's signed acknowledgement of a recall or correction: this node's own, or one received (SPEC §10.3)."""

    __tablename__ = "notice_acks"

    notice_digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String, primary_key=True)
    statement: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)


class RosterRow(Base):
    """A roster version this node held: from its file at start, or published to it (SPEC §11.12).

    The newest is the one the node runs under, after a restart too.
    """

    __tablename__ = "roster_history"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    #: SHA-256 of the roster payload (SPEC §4.3).
    digest: Mapped[str] = mapped_column(String(64))
    #: The signed statement's JSON, exactly as received.
    statement: Mapped[bytes] = mapped_column(LargeBinary)
    #: Who delivered it: ``file``, a member id, or a TLS identity that is no member.
    source: Mapped[str] = mapped_column(String)
    held_at: Mapped[datetime] = mapped_column(UTCDateTime)
