"""Roster versions a node held, and roster publication as a control message.

Revision ID: 0007
Revises: 0006a
Create Date: 2026-12-10

- ``roster_history``: every roster version the node held (from its file at start, or
  published to it while running), so a restarted node runs under the newest one it
  already applied (SPEC §11.12).
- ``control_outbox.rpc`` may be ``PublishRoster``: a node passes each roster version it
  applies on to every other member, durably (SPEC §11.12).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006a"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "roster_history",
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("statement", sa.LargeBinary(), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("held_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_roster_history")),
    )
    with op.batch_alter_table("control_outbox") as batch:
        batch.drop_constraint(op.f("ck_control_outbox_rpc"), type_="check")
        batch.create_check_constraint(
            "rpc", "rpc IN ('RequestConsent', 'SendConsentDecision', 'Notify', 'Acknowledge', 'PublishRoster')"
        )


def downgrade() -> None:
    op.execute("DELETE FROM control_outbox WHERE rpc = 'PublishRoster'")
    with op.batch_alter_table("control_outbox") as batch:
        batch.drop_constraint(op.f("ck_control_outbox_rpc"), type_="check")
        batch.create_check_constraint(
            "rpc", "rpc IN ('RequestConsent', 'SendConsentDecision', 'Notify', 'Acknowledge')"
        )
    op.drop_table("roster_history")
