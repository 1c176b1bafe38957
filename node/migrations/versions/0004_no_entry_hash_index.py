"""No index on the audit log's entry hashes.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

``entry_hash`` is a SHA-256: as a key it is random, so every appended entry dirtied a
page of its index somewhere in the tree. At ten thousand entries that was about half of
the pages a commit wrote (and a checkpoint copied back). Only ``audit verify`` looked
entries up by hash, to tell a moved entry from an edited one, and only on a log that
fails verification; it now finds them with a streamed scan (SPEC §11.4).
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_audit_log_entry_hash", table_name="audit_log")


def downgrade() -> None:
    op.create_index("ix_audit_log_entry_hash", "audit_log", ["entry_hash"])
