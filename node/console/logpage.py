"""One node's audit log as pages: the filter form, keyset pages, and which entries do not verify.

A page is ``node.audit.list_entries``: entries after a seq (next) or before one
(previous), never an offset, each filter on an index or the seq order, so a page deep in
a million-entry log costs what the first one does. Every entry on the page is checked
against its own hash and its link to the entry before it (one extra read for the
predecessors not on the page); where the whole log was verified (``checks``), the
problems it found mark their entries too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from node.audit import AuditEvent, AuditReason, EntryFilter, format_time, list_entries
from node.audit.entries import hash_matches
from node.store import AuditEntryRow, AuditHead
from protocol.checkpoint import WitnessReason
from protocol.policy import Reason

__all__ = ["PAGE_SIZE", "REASONS", "LogPage", "LogQuery", "Row", "find_envelope", "parse_query", "read_page"]

PAGE_SIZE = 50
#: The form's filters, in the order they are shown.
FILTERS = ("item", "peer", "event", "reason", "officer", "since", "until")
#: Reason codes offered as suggestions in the form (any text is accepted).
REASONS: tuple[str, ...] = tuple(
    dict.fromkeys([*(r.value for r in Reason), *(r.value for r in AuditReason), *(r.value for r in WitnessReason)])
)


@dataclass(frozen=True)
class LogQuery:
    """A log page request: the filter, where the page starts, and what the form said."""

    where: EntryFilter
    after: int = 0
    before: int | None = None
    #: The form's values as typed, to fill it in again and to build links.
    form: Mapping[str, str] = field(default_factory=dict)
    errors: tuple[str, ...] = ()

    def link_params(self, **extra: int) -> dict[str, str | int]:
        """Query parameters of a link to another page of the same filtered log."""
        return {**{k: v for k, v in self.form.items() if v}, **extra}


@dataclass(frozen=True)
class Row:
    """An entry as the page shows it."""

    seq: int
    at: str
    event: str
    actor: str
    peer: str | None
    item_id: str | None
    item_version: int | None
    envelope_id: str | None
    allowed: bool | None
    reason: str | None
    rule: str | None
    #: The detail's fields as text, in the stored (sorted) order.
    detail: tuple[tuple[str, str], ...]
    #: Why the entry does not verify (empty when it does, as far as is known).
    marks: tuple[str, ...] = ()


@dataclass(frozen=True)
class LogPage:
    """A page of entries and its neighbours."""

    rows: tuple[Row, ...]
    #: The log's head (how many entries it claims).
    head: int
    #: ``after`` for the next page, ``before`` for the previous one (None: no such page).
    next_after: int | None
    previous_before: int | None


def _time(text: str, what: str, errors: list[str]) -> datetime | None:
    """A time from the form (``datetime-local`` or RFC 3339); without an offset it is UTC."""
    if not text:
        return None
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        errors.append(f"{what}: {text!r} is not a time like 2026-12-02T09:00")
        return None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _seq(text: str, what: str, errors: list[str]) -> int | None:
    if not text:
        return None
    if not text.isdigit() or len(text) > 18:
        errors.append(f"{what}: {text!r} is not an entry number")
        return None
    return int(text)


def parse_query(params: Mapping[str, str]) -> LogQuery:
    """The page a request asks for; values that do not parse are listed in ``errors`` and ignored."""
    form = {name: params.get(name, "").strip() for name in FILTERS}
    errors: list[str] = []
    event = None
    if form["event"]:
        try:
            event = AuditEvent(form["event"].upper())
        except ValueError:
            errors.append(f"event: {form['event']!r} is not an audit event")
    where = EntryFilter(
        item_id=form["item"] or None,
        peer=form["peer"].upper() or None,
        reason=form["reason"].upper() or None,
        event=event,
        actor=form["officer"] or None,
        since=_time(form["since"], "from", errors),
        until=_time(form["until"], "until", errors),
    )
    after = _seq(params.get("after", "").strip(), "after", errors) or 0
    before = _seq(params.get("before", "").strip(), "before", errors)
    return LogQuery(where, after, before, form, tuple(errors))


def _text(value: object) -> str:
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value) or "none"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _detail(text: str) -> tuple[tuple[str, str], ...]:
    """The detail's fields; a detail that is not a JSON object is shown as it is stored."""
    try:
        parsed = json.loads(text)
    except ValueError:
        return (("stored text", text),)
    if not isinstance(parsed, dict):
        return (("stored text", text),)
    return tuple((str(k), _text(v)) for k, v in parsed.items())


def _marks(row: AuditEntryRow, previous: Mapping[int, str], known: Mapping[int, tuple[str, ...]]) -> tuple[str, ...]:
    marks = list(known.get(row.seq, ()))
    if not hash_matches(row):
        marks.append(f"entry {row.seq} does not match its hash")
    elif row.seq in previous and previous[row.seq] != row.prev_hash:
        marks.append(f"entry {row.seq} does not link to entry {row.seq - 1}")
    return tuple(dict.fromkeys(marks))


def _predecessors(session: Session, rows: list[AuditEntryRow]) -> dict[int, str]:
    """seq -> entry_hash of the entry before it, for every row on the page (one read for those not on it)."""
    on_page = {r.seq: r.entry_hash for r in rows}
    wanted = [r.seq - 1 for r in rows if r.seq > 1 and r.seq - 1 not in on_page]
    found = dict(on_page)
    if wanted:
        stmt = select(AuditEntryRow.seq, AuditEntryRow.entry_hash).where(AuditEntryRow.seq.in_(wanted))
        found.update((int(seq), str(h)) for seq, h in session.execute(stmt))
    out = {r.seq: found[r.seq - 1] for r in rows if r.seq - 1 in found}
    out.update({r.seq: "0" * 64 for r in rows if r.seq == 1})
    return out


def read_page(
    session: Session,
    query: LogQuery,
    *,
    problems: Mapping[int, tuple[str, ...]] | None = None,
    limit: int = PAGE_SIZE,
) -> LogPage:
    """The page ``query`` asks for, each entry checked; ``problems`` are whole-log findings by seq."""
    if query.before is not None:
        rows = list_entries(session, limit=limit + 1, where=query.where, before_seq=query.before)
        more_before = len(rows) > limit
        rows = rows[-limit:]
        more_after = bool(rows) and bool(list_entries(session, after_seq=rows[-1].seq, limit=1, where=query.where))
    else:
        rows = list_entries(session, after_seq=query.after, limit=limit + 1, where=query.where)
        more_before, more_after = query.after > 0, len(rows) > limit
        rows = rows[:limit]
    if rows and query.after > 0 and query.before is None:
        more_before = bool(list_entries(session, limit=1, where=query.where, before_seq=rows[0].seq))
    head = session.get(AuditHead, 1)
    previous = _predecessors(session, rows)
    shown = tuple(
        Row(
            seq=r.seq,
            at=format_time(r.at)[:23] + "Z",
            event=r.event,
            actor=r.actor,
            peer=r.peer,
            item_id=r.item_id,
            item_version=r.item_version,
            envelope_id=r.envelope_id,
            allowed=r.allowed,
            reason=r.reason,
            rule=r.rule,
            detail=_detail(r.detail),
            marks=_marks(r, previous, problems or {}),
        )
        for r in rows
    )
    return LogPage(
        rows=shown,
        head=0 if head is None else int(head.seq),
        next_after=rows[-1].seq if rows and more_after else None,
        previous_before=rows[0].seq if rows and more_before else None,
    )


def find_envelope(session: Session, envelope_id: str, *, item_id: str | None, peer: str | None) -> list[int]:
    """Entries of this log about ``envelope_id`` (with ``peer`` as the other side, if given).

    With the item id the search is an index range of that item's entries; without it,
    a scan of the log.
    """
    stmt: Any = select(AuditEntryRow.seq).where(AuditEntryRow.envelope_id == envelope_id)
    if item_id:
        stmt = stmt.where(AuditEntryRow.item_id == item_id)
    if peer:
        stmt = stmt.where(AuditEntryRow.peer == peer)
    return [int(seq) for seq in session.scalars(stmt.order_by(AuditEntryRow.seq).limit(20))]
