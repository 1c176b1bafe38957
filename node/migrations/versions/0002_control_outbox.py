"""Durable outbox for control messages: consent requests and decisions, notices.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22

A recall, correction or consent message is committed together with the change it
announces and delivered with retry, like envelopes (SPEC §11.9).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "control_outbox",
        sa.Column("message_id", sa.String(), nullable=False),
        sa.Column("recipient", sa.String(), nullable=False),
        sa.Column("rpc", sa.String(32), nullable=False),
        sa.Column("statement", sa.LargeBinary(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("ack", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "rpc IN ('RequestConsent', 'SendConsentDecision', 'Notify')", name=op.f("ck_control_outbox_rpc")
        ),
        sa.CheckConstraint("state IN ('pending', 'acknowledged')", name=op.f("ck_control_outbox_state")),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_control_outbox")),
    )
    op.create_index("ix_control_outbox_state_due", "control_outbox", ["state", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_control_outbox_state_due", table_name="control_outbox")
    op.drop_table("control_outbox")
