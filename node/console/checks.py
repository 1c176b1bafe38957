"""Each node's verification state, latest signed checkpoint and witnesses, cached between requests.

Verifying a log reads all of it (``node.audit.verify``, with what the other members hold
about it: ``pins_for``), so results are kept until the logs change. A SQLite database
has a cheap fingerprint (its file's and its write-ahead log's size and time); any change
to any member's files drops every result, since one node's pins live in the others'
databases. A source without a fingerprint (PostgreSQL, or a bundle) keeps its result
until the auditor asks again (the page's "verify again" button). Logs above
``AUTO_VERIFY_ENTRIES`` entries are verified only when asked, so a page never waits for
a million-entry scan it did not ask for.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from sqlalchemy import make_url, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from node.audit import AuditProblem, verify
from node.audit.checkpoints import checkpoint_at, latest_checkpoint
from node.audit.reconcile import Mismatch, reconcile
from node.audit.sources import AuditView, LogSource, pins_for
from node.store import AuditCosignature, AuditHead
from protocol.checkpoint import verify_checkpoint, verify_cosigned
from protocol.errors import RemoteProtocolError

__all__ = ["AUTO_VERIFY_ENTRIES", "Checks", "NodeCheck", "Witnessed", "sqlite_file"]

#: Logs up to this many entries are verified when a page needs them; larger ones on request.
AUTO_VERIFY_ENTRIES = 100_000

State = Literal["verifies", "broken", "not_checked"]


@dataclass(frozen=True)
class Witness:
    """A member's verified cosignature on a checkpoint."""

    member: str
    at: datetime


@dataclass(frozen=True)
class Witnessed:
    """The largest checkpoint of a log that peers co-signed, and who did (each signature verified)."""

    size: int
    witnesses: tuple[Witness, ...]


@dataclass(frozen=True)
class NodeCheck:
    """What the console knows about one member's log."""

    member: str
    state: State
    #: Entries in the log (the head's seq when not verified).
    entries: int = 0
    first_altered: int | None = None
    problems: tuple[AuditProblem, ...] = ()
    #: Comparisons with checkpoints, witnessed checkpoints and receipts.
    compared: int = 0
    #: The latest checkpoint the node signed whose signature verifies, and when it was signed.
    checkpoint: int | None = None
    checkpoint_at: datetime | None = None
    witnessed: Witnessed | None = None
    #: Why the log was not checked.
    note: str = ""
    checked_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def failing(self) -> frozenset[int]:
        """Entries named by a problem."""
        return frozenset(p.seq for p in self.problems)


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL; None for any other database."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def _fingerprint(sources: Iterable[LogSource]) -> tuple[object, ...] | None:
    """Sizes and times of every SQLite file and write-ahead log; None if a source has no files."""
    out: list[object] = []
    for source in sources:
        path = sqlite_file(source.url)
        if path is None:
            return None
        for part in (path, path.with_name(path.name + "-wal")):
            try:
                stat = part.stat()
            except FileNotFoundError:
                out.append(None)
            else:
                out.append((stat.st_size, stat.st_mtime_ns))
    return tuple(out)


def _head(session: Session) -> int:
    head = session.get(AuditHead, 1)
    return 0 if head is None else int(head.seq)


def _checkpoint_time(session: Session, size: int | None) -> datetime | None:
    if size is None:
        return None
    row = checkpoint_at(session, size)
    return None if row is None else row.signed_at


def witnessed(session: Session, view: AuditView, member: str) -> Witnessed | None:
    """The largest checkpoint of ``member``'s log with cosignatures that verify, and by whom."""
    sizes = session.scalars(
        select(AuditCosignature.size).group_by(AuditCosignature.size).order_by(AuditCosignature.size.desc()).limit(8)
    )
    for size in sizes:
        checkpoint = checkpoint_at(session, size)
        if checkpoint is None:
            continue
        lines = session.scalars(select(AuditCosignature.lines).where(AuditCosignature.size == size))
        note = checkpoint.note + b"".join(bytes(line) for line in lines)
        try:
            verify_checkpoint(checkpoint.note, roster=view.roster, member_id=member)
            cosigned = verify_cosigned(note, roster=view.roster, member_id=member, quorum=1)
        except RemoteProtocolError:
            continue
        return Witnessed(size, tuple(Witness(w.witness, w.time) for w in cosigned.witnesses))
    return None


def check(view: AuditView, member: str, *, force: bool = False) -> NodeCheck:
    """Verify ``member``'s log (see the module doc for when a large one is left unchecked)."""
    source = view.sources.get(member)
    if source is None:
        return NodeCheck(member, "not_checked", note="no log of this member here")
    try:
        with source.session() as session:
            entries = _head(session)
            seen = witnessed(session, view, member)
            if entries > AUTO_VERIFY_ENTRIES and not force:
                newest = latest_checkpoint(session)
                latest = None if newest is None else newest.size
                return NodeCheck(
                    member,
                    "not_checked",
                    entries=entries,
                    checkpoint=latest,
                    checkpoint_at=_checkpoint_time(session, latest),
                    witnessed=seen,
                    note=f"{entries:,} entries: verified on request",
                )
        pins = pins_for(view, member)
        with source.session() as session:
            report = verify(session, roster=view.roster, member=member, pins=pins)
            at = _checkpoint_time(session, report.checkpoint)
    except FileNotFoundError:
        return NodeCheck(member, "not_checked", note="no database: the node never ran")
    except SQLAlchemyError as exc:
        return NodeCheck(member, "not_checked", note=f"the database could not be read: {exc.__class__.__name__}")
    return NodeCheck(
        member,
        "verifies" if report.ok else "broken",
        entries=report.entries,
        first_altered=report.first_altered,
        problems=report.problems,
        compared=report.compared,
        checkpoint=report.checkpoint,
        checkpoint_at=at,
        witnessed=seen,
    )


class Checks:
    """Results of :func:`check` per member and the reconciliation, kept while the logs are unchanged (thread-safe)."""

    def __init__(self, view: AuditView) -> None:
        self.view = view
        self._lock = threading.Lock()
        self._results: dict[str, NodeCheck] = {}
        self._mismatches: list[Mismatch] | None = None
        self._seen: tuple[object, ...] | None = None

    def _current(self) -> None:
        """Drop every result if a database changed (a source without a fingerprint never drops them)."""
        now = _fingerprint(self.view.sources.values())
        if now is not None and now != self._seen:
            self._results.clear()
            self._mismatches = None
        self._seen = now

    def get(self, member: str, *, force: bool = False) -> NodeCheck:
        """The member's result, checked now if none is current (or if ``force``: a large log too)."""
        with self._lock:
            self._current()
            known = self._results.get(member)
            if known is None or force:
                known = check(self.view, member, force=force)
                self._results[member] = known
            return known

    def cached(self, member: str) -> NodeCheck | None:
        """The member's result if one is known and current; never checks."""
        with self._lock:
            self._current()
            return self._results.get(member)

    def mismatches(self) -> list[Mismatch]:
        """The federation's reconciliation (``node.audit.reconcile``), kept while the logs are unchanged."""
        with self._lock:
            self._current()
            if self._mismatches is None:
                self._mismatches = reconcile(self.view)
            return self._mismatches

    def forget(self) -> None:
        """Drop every result: the next page checks again."""
        with self._lock:
            self._results.clear()
            self._mismatches = None
