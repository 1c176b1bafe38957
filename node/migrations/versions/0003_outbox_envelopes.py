"""Outbox envelopes in their own table.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22

Settling an outbox entry updates a few small columns; with the sealed envelope in the
same row, SQLite rewrote the whole envelope (its overflow pages) on every settle. The
bytes move to ``outbox_envelopes``, written once.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "outbox_envelopes",
        sa.Column("envelope_id", sa.String(), nullable=False),
        sa.Column("envelope", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("envelope_id", name=op.f("pk_outbox_envelopes")),
    )
    op.execute("INSERT INTO outbox_envelopes (envelope_id, envelope) SELECT envelope_id, envelope FROM outbox")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("envelope")


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("envelope", sa.LargeBinary(), nullable=True))
    op.execute(
        "UPDATE outbox SET envelope = "
        "(SELECT e.envelope FROM outbox_envelopes e WHERE e.envelope_id = outbox.envelope_id)"
    )
    with op.batch_alter_table("outbox") as batch:
        batch.alter_column("envelope", existing_type=sa.LargeBinary(), nullable=False)
    op.drop_table("outbox_envelopes")
