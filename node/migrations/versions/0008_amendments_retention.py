"""Agreement amendments between the parties, consent revocations, retention and purging.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-10

- ``agreement_proposals``: agreement versions proposed to or by this node, with their
  countersignature or rejection (SPEC §6.4);
- ``control_outbox.rpc`` may be ``AmendAgreement``, the Exchange call that carries them;
- ``inbox_items`` and ``original_items`` get ``retain_until`` (when their retention
  ends, from the label; filled in for existing rows) and ``purged_at``, and an inbox
  copy's status may be ``purged``, with an index for the retention pump (SPEC §11.13).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_RPCS_BEFORE = ("RequestConsent", "SendConsentDecision", "Notify", "Acknowledge", "PublishRoster")
_STATUSES_BEFORE = ("held", "recalled", "superseded")


def _one_of(column: str, values: Sequence[str]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _timestamp(text: str) -> datetime:
    """A label's ``retain_until`` (``YYYY-MM-DDTHH:MM:SS[.ffffff]Z``, SPEC §4.4.2), as naive UTC for the column."""
    at = datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
    return at if op.get_bind().dialect.name != "sqlite" else at.replace(tzinfo=None)


def _origin_retain_until(statement: bytes) -> datetime:
    """The label's ``retain_until`` inside a stored origin statement (the JSON of a ``Signed``)."""
    payload = base64.urlsafe_b64decode(json.loads(statement)["payload"])
    return _timestamp(json.loads(payload)["label"]["retain_until"])


def upgrade() -> None:
    op.create_table(
        "agreement_proposals",
        sa.Column("proposal_id", sa.String(32), nullable=False),
        sa.Column("direction", sa.String(16), nullable=False),
        sa.Column("agreement_id", sa.String(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("proposer", sa.String(), nullable=False),
        sa.Column("counterparty", sa.String(), nullable=False),
        sa.Column("proposal", sa.LargeBinary(), nullable=False),
        sa.Column("agreement_digest", sa.String(64), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("countersigned", sa.LargeBinary(), nullable=True),
        sa.Column("rejection", sa.LargeBinary(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            _one_of("direction", ("incoming", "outgoing")), name=op.f("ck_agreement_proposals_direction")
        ),
        sa.CheckConstraint(
            _one_of("state", ("proposed", "countersigned", "rejected", "superseded")),
            name=op.f("ck_agreement_proposals_state"),
        ),
        sa.PrimaryKeyConstraint("proposal_id", name=op.f("pk_agreement_proposals")),
    )
    op.create_index("ix_agreement_proposals_agreement", "agreement_proposals", ["agreement_id", "version"])
    with op.batch_alter_table("control_outbox") as batch:
        batch.drop_constraint(op.f("ck_control_outbox_rpc"), type_="check")
        batch.create_check_constraint("rpc", _one_of("rpc", (*_RPCS_BEFORE, "AmendAgreement")))

    for table in ("inbox_items", "original_items"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("retain_until", sa.DateTime(timezone=True), nullable=True))
            batch.add_column(sa.Column("purged_at", sa.DateTime(timezone=True), nullable=True))
    _fill_retain_until()
    with op.batch_alter_table("inbox_items") as batch:
        batch.alter_column("retain_until", existing_type=sa.DateTime(timezone=True), nullable=False)
        batch.drop_constraint(op.f("ck_inbox_items_status"), type_="check")
        batch.create_check_constraint("status", _one_of("status", (*_STATUSES_BEFORE, "purged")))
    with op.batch_alter_table("original_items") as batch:
        batch.alter_column("retain_until", existing_type=sa.DateTime(timezone=True), nullable=False)
    op.create_index("ix_inbox_items_due", "inbox_items", ["purged_at", "retain_until"])
    op.create_index("ix_original_items_due", "original_items", ["purged_at", "retain_until"])


def _fill_retain_until() -> None:
    """Existing copies take their label's ``retain_until`` (the origin statement holds the label)."""
    connection = op.get_bind()
    for table in ("inbox_items", "original_items"):
        key = "envelope_id" if table == "inbox_items" else "item_id, item_version"
        rows = connection.execute(sa.text(f"SELECT {key}, origin_statement FROM {table}")).all()  # noqa: S608
        for row in rows:
            *ids, statement = row
            where = "envelope_id = :a" if table == "inbox_items" else "item_id = :a AND item_version = :b"
            params = {"at": _origin_retain_until(bytes(statement)), "a": ids[0], "b": ids[-1]}
            connection.execute(sa.text(f"UPDATE {table} SET retain_until = :at WHERE {where}"), params)  # noqa: S608


def downgrade() -> None:
    op.drop_index("ix_original_items_due", table_name="original_items")
    op.drop_index("ix_inbox_items_due", table_name="inbox_items")
    op.execute("DELETE FROM inbox_items WHERE status = 'purged'")
    with op.batch_alter_table("inbox_items") as batch:
        batch.drop_constraint(op.f("ck_inbox_items_status"), type_="check")
        batch.create_check_constraint("status", _one_of("status", _STATUSES_BEFORE))
    for table in ("inbox_items", "original_items"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("purged_at")
            batch.drop_column("retain_until")
    op.execute("DELETE FROM control_outbox WHERE rpc = 'AmendAgreement'")
    with op.batch_alter_table("control_outbox") as batch:
        batch.drop_constraint(op.f("ck_control_outbox_rpc"), type_="check")
        batch.create_check_constraint("rpc", _one_of("rpc", _RPCS_BEFORE))
    op.drop_index("ix_agreement_proposals_agreement", table_name="agreement_proposals")
    op.drop_table("agreement_proposals")
