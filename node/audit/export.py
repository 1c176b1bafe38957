"""Reading the audit log: filtered keyset pages and whole-log exports (SPEC §11.4).

Pages filter by item, peer, reason, event, officer (the entry's actor) and a time range,
each on an index or the seq order, so a page of a million-entry log is one index range
scan. Exports write the fields in the order SPEC §11.4 lists them, then ``verified``:
false for an entry that does not match its hash or its link.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TextIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from node.audit.entries import FIELDS, STREAM_BATCH, AuditEvent, canonical_json, entry_payload
from node.store import AuditEntryRow

__all__ = ["EXPORT_FIELDS", "EntryFilter", "export_csv", "export_jsonl", "list_entries", "record"]

#: Exported fields: the entry's fields in SPEC order, then whether it verified.
EXPORT_FIELDS: tuple[str, ...] = (*FIELDS, "verified")


@dataclass(frozen=True)
class EntryFilter:
    """Which entries a page holds; every field that is set must match."""

    item_id: str | None = None
    peer: str | None = None
    reason: str | None = None
    event: AuditEvent | None = None
    actor: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def list_entries(
    session: Session,
    after_seq: int = 0,
    limit: int = 100,
    event: AuditEvent | str | None = None,
    *,
    where: EntryFilter | None = None,
    before_seq: int | None = None,
) -> list[AuditEntryRow]:
    """Up to ``limit`` entries with ``seq > after_seq`` in seq order (keyset paging).

    With ``before_seq``, the ``limit`` entries just before it instead, still returned in
    seq order (paging backwards).
    """
    stmt = select(AuditEntryRow).where(AuditEntryRow.seq > after_seq)
    where = where or EntryFilter()
    if event is not None:
        where = dataclasses.replace(where, event=AuditEvent(event))
    for column, value in (
        (AuditEntryRow.item_id, where.item_id),
        (AuditEntryRow.peer, where.peer),
        (AuditEntryRow.reason, where.reason),
        (AuditEntryRow.event, None if where.event is None else where.event.value),
        (AuditEntryRow.actor, where.actor),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    if where.since is not None:
        stmt = stmt.where(AuditEntryRow.at >= where.since)
    if where.until is not None:
        stmt = stmt.where(AuditEntryRow.at < where.until)
    if before_seq is not None:
        rows = list(
            session.scalars(stmt.where(AuditEntryRow.seq < before_seq).order_by(AuditEntryRow.seq.desc()).limit(limit))
        )
        return rows[::-1]
    return list(session.scalars(stmt.order_by(AuditEntryRow.seq).limit(limit)))


def record(row: AuditEntryRow, *, verified: bool) -> dict[str, Any]:
    """An entry as exported: its fields in SPEC order, then ``verified``."""
    payload = entry_payload(row)
    payload["entry_hash"] = row.entry_hash
    return {**{name: payload[name] for name in FIELDS}, "verified": verified}


def _records(session: Session, failing: Collection[int]) -> Iterator[dict[str, Any]]:
    """Every entry as exported, read from the bytes its hash covers (the ``entry`` column).

    An entry whose bytes are not a JSON object (something else wrote them) is exported from
    its columns instead, and is among ``failing`` anyway.
    """
    query = select(AuditEntryRow.seq, AuditEntryRow.entry, AuditEntryRow.entry_hash).order_by(AuditEntryRow.seq)
    loads = json.loads
    for seq, entry, entry_hash in session.execute(query.execution_options(yield_per=STREAM_BATCH)):
        try:
            fields = loads(entry)
            fields["entry_hash"] = entry_hash
            exported = {name: fields[name] for name in FIELDS}
        except (TypeError, ValueError, KeyError):
            row = session.get(AuditEntryRow, seq)
            assert row is not None  # just read, in the same transaction
            exported = record(row, verified=False)
        exported["verified"] = seq not in failing
        yield exported


def export_jsonl(session: Session, out: TextIO, *, failing: Collection[int] = ()) -> int:
    """Write one JSON object per entry (fields in :data:`EXPORT_FIELDS` order); return count.

    ``failing`` are the entries that did not verify (their ``verified`` is false).
    """
    count = 0
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    for exported in _records(session, failing):
        out.write(dumps(exported))
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


def export_csv(session: Session, out: TextIO, *, failing: Collection[int] = ()) -> int:
    """Write a header and one row per entry; ``detail`` as JSON text; return count."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EXPORT_FIELDS)
    count = 0
    for exported in _records(session, failing):
        writer.writerow([_csv_cell(exported[name]) for name in EXPORT_FIELDS])
        count += 1
    return count
