"""Reading the audit log: keyset pages and whole-log exports (SPEC §11.4)."""

from __future__ import annotations

import csv
from typing import Any, TextIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from node.audit.entries import FIELDS, AuditEvent, canonical_json, entry_payload, stream_rows
from node.store import AuditEntryRow

__all__ = ["export_csv", "export_jsonl", "list_entries"]


def list_entries(
    session: Session,
    after_seq: int = 0,
    limit: int = 100,
    event: AuditEvent | str | None = None,
) -> list[AuditEntryRow]:
    """Up to ``limit`` entries with ``seq > after_seq`` in seq order (keyset paging)."""
    stmt = select(AuditEntryRow).where(AuditEntryRow.seq > after_seq)
    if event is not None:
        stmt = stmt.where(AuditEntryRow.event == str(AuditEvent(event)))
    return list(session.scalars(stmt.order_by(AuditEntryRow.seq).limit(limit)))


def _export_record(row: AuditEntryRow) -> dict[str, Any]:
    record = entry_payload(row)
    record["entry_hash"] = row.entry_hash
    return {name: record[name] for name in FIELDS}


def export_jsonl(session: Session, out: TextIO) -> int:
    """Write one canonical JSON object per entry (fields in :data:`FIELDS`); return count."""
    count = 0
    for row in stream_rows(session):
        out.write(canonical_json(_export_record(row)))
        out.write("\n")
        count += 1
    return count


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return canonical_json(value)
    return str(value)


def export_csv(session: Session, out: TextIO) -> int:
    """Write a header and one row per entry; ``detail`` as JSON text; return count."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(FIELDS)
    count = 0
    for row in stream_rows(session):
        record = _export_record(row)
        writer.writerow([_csv_cell(record[name]) for name in FIELDS])
        count += 1
    return count
