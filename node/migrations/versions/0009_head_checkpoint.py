"""The latest signed checkpoint lives in the audit head row.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02

Every commit that appends signs a checkpoint (SPEC §11.10.8). Kept as a row of its own,
each one wrote a page of ``audit_checkpoints`` and one of its key's index to the
write-ahead log besides those the commit wrote anyway, which was most of what
checkpoints cost the exchange. The head row, which every such commit rewrites already,
now carries the latest checkpoint (``checkpoint``, ``checkpoint_at``); ``audit_checkpoints``
keeps those a witness was asked to co-sign. Existing rows stay: a head without a
checkpoint defers to the table.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("audit_head") as batch:
        batch.add_column(sa.Column("checkpoint", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("checkpoint_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    # The code before this revision reads the latest checkpoint from the table: put it there.
    conn = op.get_bind()
    row = conn.execute(sa.text("SELECT checkpoint, checkpoint_at FROM audit_head WHERE id = 1")).first()
    if row is not None and row[0] is not None:
        note = bytes(row[0])
        _origin, size, root = note.split(b"\n")[:3]
        at = row[1] if row[1] is not None else datetime.now(UTC)
        exists = conn.execute(sa.text("SELECT 1 FROM audit_checkpoints WHERE size = :s"), {"s": int(size)}).first()
        if exists is None:
            conn.execute(
                sa.text("INSERT INTO audit_checkpoints (size, root, signed_at, note) VALUES (:s, :r, :t, :n)"),
                {"s": int(size), "r": base64.b64decode(root), "t": at, "n": note},
            )
    with op.batch_alter_table("audit_head") as batch:
        batch.drop_column("checkpoint_at")
        batch.drop_column("checkpoint")
