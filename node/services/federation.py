"""The federation as this node holds it: start-up, and agreement files that change (SPEC §5.3, §6.2).

The node's own audit log is the durable record of the highest roster and agreement
versions it acted under: ``record_start`` refuses to run under older ones, then records
what it runs under; ``record_agreement_update`` records each changed agreement file the
runtime's watcher held or refused.
"""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from node import audit
from node.audit import AuditEvent, AuditReason
from node.services.state import NodeState
from node.store import AuditEntryRow
from protocol.agreement import AgreementBook
from protocol.errors import ConfigurationError, RollbackError

__all__ = ["ForeignLogError", "held_agreement_versions", "record_agreement_update", "record_start"]


class ForeignLogError(ConfigurationError):
    """The node's database holds another member's audit log: each node needs its own (SPEC §11.7)."""


def held_agreement_versions(book: AgreementBook) -> list[str]:
    """``agreement_id:version`` of every agreement in ``book`` (the held one: ``state.agreements``), sorted."""
    return sorted(f"{a.agreement_id}:{a.version}" for a in book.agreements())


def record_start(session: Session, state: NodeState, *, now: datetime) -> None:
    """Refuse to run under an older roster or agreement than before (SPEC §5.3), then record these."""
    roster_seen, agreements_seen = 0, dict[str, int]()
    events = (
        AuditEvent.NODE_STARTED,
        AuditEvent.AGREEMENT_UPDATED,
        AuditEvent.ROSTER_UPDATED,
        AuditEvent.AGREEMENT_COUNTERSIGNED,
    )
    for row in session.scalars(select(AuditEntryRow).where(AuditEntryRow.event.in_(events))):
        detail = json.loads(row.detail)
        roster_seen = max(roster_seen, int(detail.get("roster_version", 0)))
        if row.event == AuditEvent.ROSTER_UPDATED and row.allowed:
            roster_seen = max(roster_seen, int(detail.get("version", 0)))
        for held in detail.get("agreements", []):
            agreement_id, _, version = str(held).rpartition(":")
            agreements_seen[agreement_id] = max(agreements_seen.get(agreement_id, 0), int(version))
    if state.roster.version < roster_seen:
        raise RollbackError(f"roster version {state.roster.version} is older than version {roster_seen} already used")
    for agreement in state.agreements.agreements():
        if agreement.version < agreements_seen.get(agreement.agreement_id, 0):
            raise RollbackError(
                f"agreement {agreement.agreement_id} v{agreement.version} is older than "
                f"v{agreements_seen[agreement.agreement_id]} already used"
            )
    audit.append(
        session,
        now=now,
        event=AuditEvent.NODE_STARTED,
        actor=state.me,
        detail={"roster_version": state.roster.version, "agreements": held_agreement_versions(state.agreements)},
    )
    # Checked after the append, which waits for the log's head: two nodes starting together
    # on one empty database cannot both find it empty. The first entry is its owner's start.
    owner = session.scalar(select(AuditEntryRow.actor).where(AuditEntryRow.seq == 1))
    if owner != state.me:
        raise ForeignLogError(
            f"the database holds the audit log of {owner}, not of {state.me}: each node needs its own database "
            "or schema (put {member} in [nodes] database_url of the federation file)"
        )


def record_agreement_update(
    session: Session, state: NodeState, *, file: str, ok: bool, detail: str, now: datetime
) -> None:
    """A changed agreement file was held (``ok``) or refused; with the versions now held."""
    audit.append(
        session,
        now=now,
        event=AuditEvent.AGREEMENT_UPDATED,
        actor=state.me,
        allowed=ok,
        reason=(AuditReason.AGREEMENT_HELD if ok else AuditReason.AGREEMENT_REFUSED).value,
        detail={"file": file, "detail": detail, "agreements": held_agreement_versions(state.agreements) if ok else []},
    )
