"""The provenance of one item across the federation, from the members' logs (SPEC §11.10.7).

``trace`` follows an item from its originator through every transfer (each recipient
with the agreement and version it went under), every re-share (with the grants it
carried, by grant id), every recall and correction (and who applied and acknowledged
it), to each holder's current state: held, recalled, superseded or purged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from node.audit.entries import AuditEvent
from node.audit.reconcile import LoggedEntry, load_entries
from node.audit.sources import AuditView
from node.store import InboxItem, OriginalItem

__all__ = ["Holding", "Trace", "Transfer", "trace"]


@dataclass(frozen=True)
class Transfer:
    """One envelope of the item from a sender to a recipient, as both logs saw it."""

    sender: str
    recipient: str
    version: int | None
    envelope_id: str | None
    #: EGRESS (the originator's own item) or RESHARE (a received one passed on).
    kind: str
    allowed: bool
    reason: str
    agreement: str
    grants: tuple[str, ...]
    #: The recipient's INGRESS decision, if its log has one.
    received: str | None
    entries: tuple[LoggedEntry, ...]


@dataclass(frozen=True)
class Holding:
    """A member's copy of one version and its state."""

    member: str
    version: int
    state: str
    sender: str


@dataclass
class Trace:
    """Everything the logs say about one item."""

    item_id: str
    originator: str | None = None
    transfers: list[Transfer] = field(default_factory=list)
    holdings: list[Holding] = field(default_factory=list)
    #: Recalls and corrections: the originator's entry, then each holder's applying entry.
    notices: list[LoggedEntry] = field(default_factory=list)
    acknowledgements: list[LoggedEntry] = field(default_factory=list)

    def holders(self) -> set[str]:
        """Members holding any version of the item."""
        return {h.member for h in self.holdings}


def _holdings(session: Session, member: str, item_id: str) -> list[Holding]:
    out = [
        Holding(member, row.item_version, row.status.value, row.sender)
        for row in session.scalars(select(InboxItem).where(InboxItem.item_id == item_id))
    ]
    out += [
        Holding(
            member,
            row.item_version,
            "original" if row.recalled_at is None and row.purged_at is None else row.state.value,
            member,
        )
        for row in session.scalars(select(OriginalItem).where(OriginalItem.item_id == item_id))
    ]
    return out


def trace(view: AuditView, item_id: str) -> Trace:
    """The item's provenance from every log in ``view``."""
    logs: dict[str, list[LoggedEntry]] = {}
    result = Trace(item_id)
    for member, source in sorted(view.sources.items()):
        try:
            with source.session() as session:
                logs[member] = load_entries(session, member, item_id=item_id)
                result.holdings += _holdings(session, member, item_id)
        except FileNotFoundError:
            logs[member] = []
    received = {e.envelope_id: e for entries in logs.values() for e in entries if e.event == AuditEvent.INGRESS.value}
    for member, entries in logs.items():
        for e in entries:
            if e.event == AuditEvent.EGRESS.value:
                result.originator = member
            if e.event in (AuditEvent.EGRESS.value, AuditEvent.RESHARE.value):
                result.transfers.append(_transfer(e, received))
            elif e.event in (
                AuditEvent.RECALL_SENT.value,
                AuditEvent.RECALL_RECEIVED.value,
                AuditEvent.CORRECTION_SENT.value,
                AuditEvent.CORRECTION_RECEIVED.value,
            ):
                result.notices.append(e)
            elif e.event == AuditEvent.NOTICE_ACKNOWLEDGED.value:
                result.acknowledgements.append(e)
    result.transfers.sort(key=lambda t: (t.version or 0, t.sender != result.originator, t.sender, t.recipient))
    return result


def _transfer(e: LoggedEntry, received: Mapping[str | None, LoggedEntry]) -> Transfer:
    ingress = received.get(e.envelope_id) if e.envelope_id else None
    return Transfer(
        sender=e.member,
        recipient=e.peer or "",
        version=e.item_version,
        envelope_id=e.envelope_id,
        kind=e.event,
        allowed=bool(e.allowed),
        reason=e.reason or "",
        agreement=str(e.detail.get("agreement", "")),
        grants=tuple(str(g) for g in e.detail.get("grants", [])),
        received=None if ingress is None else ingress.reason,
        entries=(e,) if ingress is None else (e, ingress),
    )
