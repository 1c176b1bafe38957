"""The audit log as a verifiable log: stored subtrees, signed checkpoints, cosignatures, witnessed logs.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02

- ``audit_subtrees``: roots of perfect subtrees of the log's Merkle tree at levels 8, 16,
  24, … (level 0 is ``audit_log.entry_hash``), so proofs cost a bounded read (SPEC §11.10.1).
- ``audit_checkpoints``: the node's own signed checkpoints, one per commit that appended.
- ``audit_cosignatures``: peers' cosignatures on them.
- ``witnessed_checkpoints``: the checkpoints of peers' logs this node witnessed.
- ``notice_acks``: holders' signed acknowledgements of recalls and corrections (SPEC §10.3).
- indexes on the audit log by item, peer and reason, for auditors' pages.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_subtrees",
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("level", "idx", name=op.f("pk_audit_subtrees")),
    )
    op.create_table(
        "audit_checkpoints",
        sa.Column("size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("root", sa.LargeBinary(), nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("note", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("size", name=op.f("pk_audit_checkpoints")),
    )
    op.create_table(
        "audit_cosignatures",
        sa.Column("size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("witness", sa.String(), nullable=False),
        sa.Column("cosigned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lines", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("size", "witness", name=op.f("pk_audit_cosignatures")),
    )
    op.create_table(
        "witnessed_checkpoints",
        sa.Column("member", sa.String(), nullable=False),
        sa.Column("size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("root", sa.LargeBinary(), nullable=False),
        sa.Column("log_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("note", sa.LargeBinary(), nullable=False),
        sa.Column("witnessed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("member", "size", name=op.f("pk_witnessed_checkpoints")),
    )
    op.create_table(
        "notice_acks",
        sa.Column("notice_digest", sa.String(64), nullable=False),
        sa.Column("holder", sa.String(), nullable=False),
        sa.Column("statement", sa.LargeBinary(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("notice_digest", "holder", name=op.f("pk_notice_acks")),
    )
    # Holders' acknowledgements travel upstream as control messages of their own.
    with op.batch_alter_table("control_outbox") as batch:
        batch.drop_constraint(op.f("ck_control_outbox_rpc"), type_="check")
        batch.create_check_constraint(
            "rpc", "rpc IN ('RequestConsent', 'SendConsentDecision', 'Notify', 'Acknowledge')"
        )
    # An auditor's page by item, peer or reason is an index range, not a scan of the log.
    for column in ("item_id", "peer", "reason"):
        op.create_index(f"ix_audit_log_{column}_seq", "audit_log", [column, "seq"])
    _store_subtrees_of_existing_entries()


def _store_subtrees_of_existing_entries() -> None:
    """A log written before this revision gets its stored subtrees (levels 8, 16, …)."""
    connection = op.get_bind()
    subtrees = sa.table(
        "audit_subtrees", sa.column("level", sa.Integer), sa.column("idx", sa.BigInteger), sa.column("hash")
    )
    hashes: list[bytes] = []  # the frontier: roots of perfect subtrees, largest first
    rows: list[dict[str, object]] = []
    entries = connection.execute(sa.text("SELECT entry_hash FROM audit_log ORDER BY seq"))
    for size, (entry_hash,) in enumerate(entries):
        value, level = bytes.fromhex(entry_hash), 0
        while size >> level & 1:  # RFC 9162: merge equal-sized subtrees at the right edge
            level += 1
            value = hashlib.sha256(b"\x01" + hashes.pop() + value).digest()
            if level % 8 == 0:
                rows.append({"level": level, "idx": ((size + 1) >> level) - 1, "hash": value})
        hashes.append(value)
        if len(rows) >= 1000:
            op.bulk_insert(subtrees, rows)
            rows = []
    if rows:
        op.bulk_insert(subtrees, rows)


def downgrade() -> None:
    with op.batch_alter_table("control_outbox") as batch:
        batch.drop_constraint(op.f("ck_control_outbox_rpc"), type_="check")
        batch.create_check_constraint("rpc", "rpc IN ('RequestConsent', 'SendConsentDecision', 'Notify')")
    op.drop_table("notice_acks")
    for column in ("item_id", "peer", "reason"):
        op.drop_index(f"ix_audit_log_{column}_seq", table_name="audit_log")
    for table in ("witnessed_checkpoints", "audit_cosignatures", "audit_checkpoints", "audit_subtrees"):
        op.drop_table(table)
