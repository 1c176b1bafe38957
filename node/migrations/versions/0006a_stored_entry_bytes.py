"""Each audit entry keeps the exact bytes its hash covers.

Revision ID: 0006a
Revises: 0005
Create Date: 2026-12-02

``audit verify`` re-hashes every entry. Rebuilding each entry's canonical bytes from
its fourteen columns cost most of the time of verifying a million entries; hashing
stored bytes costs a fraction of it, and the columns are then only compared with the
bytes, in SQL (SPEC §11.4). Entries written before this revision get their bytes from
their columns, as the writer encoded them.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any, cast

import sqlalchemy as sa
from alembic import op

revision: str = "0006a"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CHUNK = 5_000


def upgrade() -> None:
    with op.batch_alter_table("audit_log") as batch:
        batch.add_column(sa.Column("entry", sa.Text(), nullable=True))
    _store_entry_bytes()
    with op.batch_alter_table("audit_log") as batch:
        batch.alter_column("entry", existing_type=sa.Text(), nullable=False)


def _store_entry_bytes() -> None:
    # The SPEC §11.4 encoding; imported, not copied, so there is one definition of it.
    from node.audit.entries import entry_bytes
    from node.store import AuditEntryRow

    connection = op.get_bind()
    table = cast(sa.Table, AuditEntryRow.__table__)
    columns = [c for c in table.columns if c.key != "entry"]
    update = sa.update(table).where(table.c.seq == sa.bindparam("at_seq")).values(entry=sa.bindparam("bytes"))
    after = 0
    while True:
        rows = connection.execute(
            sa.select(*columns).where(table.c.seq > after).order_by(table.c.seq).limit(_CHUNK)
        ).all()
        if not rows:
            return
        values: list[dict[str, Any]] = []
        for row in rows:
            fields = SimpleNamespace(**row._mapping)
            values.append({"at_seq": row.seq, "bytes": entry_bytes(fields).decode("utf-8")})  # type: ignore[arg-type]
        connection.execute(update, values)
        after = rows[-1].seq


def downgrade() -> None:
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_column("entry")
