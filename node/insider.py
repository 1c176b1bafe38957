"""An insider at one node, for the trainers' demo and the accountable-audit tests (SPEC §11.10.7, §12.10).

The insider has what an administrator of a node's host has: write access to its
database and its key files, with the node stopped. It rewrites the audit log the way
someone covering their tracks would: makes its change, re-links every later entry,
moves the head, rebuilds the stored subtrees, drops the node's own checkpoints and
cosignatures that no longer fit, and signs a fresh checkpoint of the result with the
node's own key. So nothing inside the node's database contradicts the rewrite; only what
the other members hold (checkpoints they witnessed, receipts and acknowledgements the
node signed) can. Like the demo's forged delivery, it is an attack kept beside the node so that trainers
can show what the audit catches; nothing in the node calls it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from node.audit.checkpoints import record_checkpoint
from node.audit.entries import GENESIS_HASH, entry_bytes, hash_hex
from node.audit.tree import completed_rows
from node.config import load_material, load_node_config
from node.store import (
    AuditCheckpoint,
    AuditCosignature,
    AuditEntryRow,
    AuditHead,
    AuditSubtree,
    make_engine,
    make_sessionmaker,
)
from protocol.checkpoint import sign_checkpoint
from protocol.merkle import Frontier

__all__ = ["Insider", "Rewrite"]

Entry = dict[str, Any]
_COLUMNS = [column.key for column in AuditEntryRow.__table__.columns]


@dataclass(frozen=True)
class Rewrite:
    """What a rewrite did: the first entry that is no longer as the node wrote it, and the new size."""

    first_altered: int
    size: int


class Insider:
    """Write access to one stopped node's database and keys."""

    def __init__(self, federation: Path, member: str) -> None:
        self.member = member
        self.material = load_material(load_node_config(federation / "nodes" / member / "node.toml"))
        self.url = self.material.config.database_url

    def entries(self) -> list[Entry]:
        """The log as stored, one dict of columns per entry."""
        with self._session() as session:
            rows = session.scalars(select(AuditEntryRow).order_by(AuditEntryRow.seq))
            return [{key: getattr(row, key) for key in _COLUMNS} for row in rows]

    def rewrite(self, change: Callable[[list[Entry]], list[Entry]], *, sign: bool = True) -> Rewrite:
        """Apply ``change`` to the entries and cover it up (see the module doc); without the key if not ``sign``."""
        before = self.entries()
        after = change([dict(e) for e in before])
        first = next(
            (i for i, (old, new) in enumerate(zip(before, after, strict=False)) if old != new),
            min(len(before), len(after)),
        )
        prev = GENESIS_HASH if first == 0 else before[first - 1]["entry_hash"]
        rows = []
        for position, entry in enumerate(after[first:], start=first + 1):
            row = AuditEntryRow(**(entry | {"seq": position, "prev_hash": prev}))
            row.entry = entry_bytes(row).decode("utf-8")
            row.entry_hash = prev = hash_hex(row)
            rows.append(row)
        with self._session() as session:
            session.execute(delete(AuditEntryRow).where(AuditEntryRow.seq > first))
            session.add_all(rows)
            session.flush()
            session.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=len(after), entry_hash=prev))
            self._rebuild_tree(session, first, len(after), sign=sign)
            session.commit()
        return Rewrite(first + 1, len(after))

    def append_forged(self, entry: Entry, *, sign: bool = True) -> Rewrite:
        """Append an entry the node never wrote, linked like a genuine one (and signed over, if ``sign``)."""
        return self.rewrite(lambda entries: [*entries, entry], sign=sign)

    def _rebuild_tree(self, session: Session, kept: int, size: int, *, sign: bool) -> None:
        """Subtrees from scratch; the node's checkpoints and cosignatures up to ``kept`` stay; one new is signed."""
        session.execute(delete(AuditSubtree))
        frontier = Frontier()
        for (leaf,) in session.execute(select(AuditEntryRow.entry_hash).order_by(AuditEntryRow.seq)):
            for subtree in completed_rows(frontier.append(bytes.fromhex(leaf))):
                session.add(AuditSubtree(**subtree))
        session.execute(delete(AuditCheckpoint).where(AuditCheckpoint.size > kept))
        session.execute(delete(AuditCosignature).where(AuditCosignature.size > kept))
        if not sign:
            return
        now = datetime.now(UTC)
        note = sign_checkpoint(
            self.material.signing_key,
            federation=self.material.roster.federation,
            member_id=self.member,
            size=size,
            root=frontier.root(),
            now=now,
        )
        record_checkpoint(session, note, now)  # where the node keeps its latest

    @contextmanager
    def _session(self) -> Iterator[Session]:
        engine = make_engine(self.url)
        try:
            with make_sessionmaker(engine)() as session:
                yield session
        finally:
            engine.dispose()
