"""Initial node schema: items, inbox, deliveries, outbox, consent, notices, audit log.

Revision ID: 0001
Revises:
Create Date: 2026-05-09

Hand-written to match ``node.store`` exactly (``alembic check`` reports no changes).
Types are spelled out here rather than imported from ``node.store`` so this revision
keeps working after the models move on. ``UTCDateTime`` is ``DateTime(timezone=True)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GENESIS_HASH = "0" * 64


def _ts(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _ck(table: str, column: str, *values: str) -> sa.CheckConstraint:
    listed = ", ".join(f"'{v}'" for v in values)
    return sa.CheckConstraint(f"{column} IN ({listed})", name=op.f(f"ck_{table}_{column}"))


def upgrade() -> None:
    op.create_table(
        "original_items",
        sa.Column("item_id", sa.String(), nullable=False),
        sa.Column("item_version", sa.Integer(), nullable=False),
        sa.Column("origin_statement", sa.LargeBinary(), nullable=False),
        sa.Column("origin_digest", sa.String(64), nullable=False),
        sa.Column("sealed_content", sa.LargeBinary(), nullable=False),
        sa.Column("band", sa.Integer(), nullable=False),
        _ts("created_at"),
        _ts("recalled_at", nullable=True),
        sa.PrimaryKeyConstraint("item_id", "item_version", name=op.f("pk_original_items")),
    )

    op.create_table(
        "inbox_items",
        sa.Column("envelope_id", sa.String(), nullable=False),
        sa.Column("item_id", sa.String(), nullable=False),
        sa.Column("item_version", sa.Integer(), nullable=False),
        sa.Column("originator", sa.String(), nullable=False),
        sa.Column("sender", sa.String(), nullable=False),
        sa.Column("origin_digest", sa.String(64), nullable=False),
        sa.Column("band", sa.Integer(), nullable=False),
        sa.Column("category", sa.String(), nullable=False),
        sa.Column("topics", sa.Text(), nullable=False),
        sa.Column("label_json", sa.Text(), nullable=False),
        sa.Column("origin_statement", sa.LargeBinary(), nullable=False),
        sa.Column("consent_chain", sa.LargeBinary(), nullable=False),
        sa.Column("sealed_content", sa.LargeBinary(), nullable=False),
        _ts("received_at"),
        sa.Column("status", sa.String(16), nullable=False),
        _ck("inbox_items", "status", "held", "recalled", "superseded"),
        sa.PrimaryKeyConstraint("envelope_id", name=op.f("pk_inbox_items")),
    )
    op.create_index("ix_inbox_items_item", "inbox_items", ["item_id", "item_version"])

    op.create_table(
        "deliveries",
        sa.Column("envelope_id", sa.String(), nullable=False),
        sa.Column("envelope_digest", sa.String(64), nullable=False),
        sa.Column("sender", sa.String(), nullable=False),
        sa.Column("nonce", sa.String(), nullable=False),
        sa.Column("accepted", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("receipt", sa.LargeBinary(), nullable=False),
        _ts("received_at"),
        sa.PrimaryKeyConstraint("envelope_id", name=op.f("pk_deliveries")),
        sa.UniqueConstraint("sender", "nonce", name=op.f("uq_deliveries_sender_nonce")),
    )

    op.create_table(
        "outbox",
        sa.Column("envelope_id", sa.String(), nullable=False),
        sa.Column("recipient", sa.String(), nullable=False),
        sa.Column("item_id", sa.String(), nullable=False),
        sa.Column("item_version", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("envelope", sa.LargeBinary(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _ts("next_attempt_at"),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("reason", sa.String(), nullable=True),
        sa.Column("receipt", sa.LargeBinary(), nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        _ck("outbox", "kind", "item", "reshare"),
        _ck("outbox", "state", "pending", "delivered", "refused", "failed"),
        sa.PrimaryKeyConstraint("envelope_id", name=op.f("pk_outbox")),
    )
    op.create_index("ix_outbox_state_due", "outbox", ["state", "next_attempt_at"])

    op.create_table(
        "consent_requests",
        sa.Column("request_id", sa.String(), nullable=False),
        sa.Column("direction", sa.String(16), nullable=False),
        sa.Column("item_id", sa.String(), nullable=False),
        sa.Column("item_version", sa.Integer(), nullable=False),
        sa.Column("requester", sa.String(), nullable=False),
        sa.Column("third_party", sa.String(), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("statement", sa.LargeBinary(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("decision", sa.LargeBinary(), nullable=True),
        sa.Column("reason", sa.String(), nullable=True),
        _ts("created_at"),
        _ts("decided_at", nullable=True),
        _ck("consent_requests", "direction", "incoming", "outgoing"),
        _ck("consent_requests", "state", "pending", "granted", "denied"),
        sa.PrimaryKeyConstraint("request_id", name=op.f("pk_consent_requests")),
    )

    op.create_table(
        "consent_grants",
        sa.Column("grant_id", sa.String(), nullable=False),
        sa.Column("item_id", sa.String(), nullable=False),
        sa.Column("item_version", sa.Integer(), nullable=False),
        sa.Column("holder", sa.String(), nullable=False),
        sa.Column("grantee", sa.String(), nullable=False),
        _ts("expires_at"),
        sa.Column("transferable", sa.Boolean(), nullable=False),
        sa.Column("statement", sa.LargeBinary(), nullable=False),
        _ts("revoked_at", nullable=True),
        sa.PrimaryKeyConstraint("grant_id", name=op.f("pk_consent_grants")),
    )

    op.create_table(
        "notices",
        sa.Column("notice_id", sa.String(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("item_id", sa.String(), nullable=False),
        sa.Column("item_version", sa.Integer(), nullable=False),
        sa.Column("issuer", sa.String(), nullable=False),
        sa.Column("statement", sa.LargeBinary(), nullable=False),
        _ts("received_at"),
        _ck("notices", "kind", "recall", "correction", "revocation"),
        sa.PrimaryKeyConstraint("notice_id", name=op.f("pk_notices")),
    )

    op.create_table(
        "audit_log",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        _ts("at"),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("peer", sa.String(), nullable=True),
        sa.Column("item_id", sa.String(), nullable=True),
        sa.Column("item_version", sa.Integer(), nullable=True),
        sa.Column("envelope_id", sa.String(), nullable=True),
        sa.Column("allowed", sa.Boolean(), nullable=True),
        sa.Column("reason", sa.String(), nullable=True),
        sa.Column("rule", sa.String(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("entry_hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_log")),
    )
    op.create_index("ix_audit_log_event_seq", "audit_log", ["event", "seq"])
    op.create_index("ix_audit_log_entry_hash", "audit_log", ["entry_hash"])

    audit_head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("entry_hash", sa.String(64), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_audit_head_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_head")),
    )
    # Seed the head so appenders always have a row to lock (SELECT ... FOR UPDATE).
    op.bulk_insert(audit_head, [{"id": 1, "seq": 0, "entry_hash": GENESIS_HASH}])


def downgrade() -> None:
    op.drop_table("audit_head")
    op.drop_index("ix_audit_log_entry_hash", table_name="audit_log")
    op.drop_index("ix_audit_log_event_seq", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_table("notices")
    op.drop_table("consent_grants")
    op.drop_table("consent_requests")
    op.drop_index("ix_outbox_state_due", table_name="outbox")
    op.drop_table("outbox")
    op.drop_table("deliveries")
    op.drop_index("ix_inbox_items_item", table_name="inbox_items")
    op.drop_table("inbox_items")
    op.drop_table("original_items")
