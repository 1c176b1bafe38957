"""Items as the logs know them: recent ones, ids by prefix, and each copy's band.

All read-only reads through ``LogSource.session()``; a member whose database does not
exist (its node never ran) simply knows nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from node.audit import AuditEvent, format_time
from node.audit.sources import AuditView
from node.audit.trace import Trace
from node.store import AuditEntryRow, InboxItem, OriginalItem
from protocol.classification import Band, parse_band

__all__ = ["RecentItem", "item_bands", "matching_items", "recent_items", "sessions"]

#: Item ids listed at most for a prefix.
MATCHES = 20


@dataclass(frozen=True)
class RecentItem:
    """An item a member originated, as its EGRESS entries say."""

    item_id: str
    originator: str
    at: str
    band: Band | None
    marking: str


@contextmanager
def _session(view: AuditView, member: str) -> Iterator[Session | None]:
    source = view.sources.get(member)
    if source is None:
        yield None
        return
    try:
        with source.session() as session:
            yield session
    except FileNotFoundError:
        yield None


def sessions(view: AuditView) -> Iterator[tuple[str, Session]]:
    """A read-only session on every member's log that exists, one at a time."""
    for member in sorted(view.sources):
        with _session(view, member) as session:
            if session is not None:
                yield member, session


def _parse(value: object) -> Band | None:
    try:
        return parse_band(value)
    except ValueError:
        return None


def _band(detail: str) -> Band | None:
    try:
        parsed = json.loads(detail)
    except ValueError:
        return None
    return _parse(parsed.get("band")) if isinstance(parsed, dict) else None


def recent_items(view: AuditView, limit: int = 12) -> list[RecentItem]:
    """The items most recently originated anywhere in the federation (by their first EGRESS entry)."""
    found: dict[str, tuple[datetime, RecentItem]] = {}
    for member, session in sessions(view):
        stmt = (
            select(AuditEntryRow.item_id, AuditEntryRow.at, AuditEntryRow.detail)
            .where(AuditEntryRow.event == AuditEvent.EGRESS.value)
            .order_by(AuditEntryRow.seq.desc())
            .limit(limit * 4)
        )
        for item_id, at, detail in session.execute(stmt):
            if item_id is None:
                continue
            band = _band(detail)
            marking = (view.roster.marking(member, band) if band is not None else None) or ""
            found[item_id] = (at, RecentItem(item_id, member, format_time(at)[:19] + "Z", band, marking))
    return [item for _, item in sorted(found.values(), key=lambda pair: pair[0], reverse=True)[:limit]]


def matching_items(view: AuditView, prefix: str) -> list[str]:
    """Item ids starting with ``prefix`` in any log (at most ``MATCHES``)."""
    found: set[str] = set()
    for _, session in sessions(view):
        found |= set(
            session.scalars(
                select(AuditEntryRow.item_id)
                .where(AuditEntryRow.item_id.startswith(prefix, autoescape=True))
                .distinct()
                .limit(MATCHES)
            )
        )
    return sorted(i for i in found if i)[:MATCHES]


def item_bands(view: AuditView, trace: Trace) -> tuple[dict[str, Band], Band | None]:
    """The band of each member's copy (its latest version), and the item's band as its entries state it."""
    bands: dict[str, Band] = {}
    for member, session in sessions(view):
        original = session.scalar(
            select(OriginalItem.band)
            .where(OriginalItem.item_id == trace.item_id)
            .order_by(OriginalItem.item_version.desc())
            .limit(1)
        )
        held = session.scalar(
            select(InboxItem.band)
            .where(InboxItem.item_id == trace.item_id)
            .order_by(InboxItem.item_version.desc())
            .limit(1)
        )
        band = original if original is not None else held
        if band is not None:
            bands[member] = Band(band)
    stated = [
        band
        for t in sorted(trace.transfers, key=lambda t: t.version or 0)
        for e in t.entries
        if (band := _parse(e.detail.get("band"))) is not None
    ]
    default = stated[-1] if stated else next(iter(bands.values()), None)
    return bands, default
