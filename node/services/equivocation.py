"""Equivocation at ingress: one item version under two origin attestations (SPEC §9.2.9 step 7).

The originator signs one origin attestation per item version (SPEC §8.1). A second one
for the same item id and version (another label, another content) is evidence that the
originator equivocated, whoever forwarded it. Like replay (SPEC §9.2.8), the reference
node decides it inside the transaction that stores the decision
(``node.services.ingress.commit_ingress_batch``): against what the node already holds
(its own originals and the copies it accepted, earlier jobs of the same group commit
included) and against what earlier envelopes of the same batch were accepted under.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from node.services.state import core_table
from node.store import InboxItem, OriginalItem
from protocol.envelope import OriginAttestation
from protocol.policy import Decision, Reason, equivocation_detail

__all__ = ["HeldOrigins"]

_INBOX, _ORIGINALS = core_table(InboxItem), core_table(OriginalItem)
# Built once (SQLAlchemy memoises a statement's cache key); both use an index on (item_id, item_version).
_HELD = [
    select(table.c.item_id, table.c.item_version, table.c.origin_digest).where(
        table.c.item_id.in_(bindparam("ids", expanding=True))
    )
    for table in (_INBOX, _ORIGINALS)
]


class HeldOrigins:
    """The origin digest each item version of a batch is held under, then what the batch accepts."""

    def __init__(self, session: Session, attestations: Sequence[OriginAttestation]) -> None:
        self._held: dict[tuple[str, int], str] = {}
        ids = sorted({a.item_id for a in attestations})
        if not ids:
            return
        connection = session.connection()
        wanted = {(a.item_id, a.item_version) for a in attestations}
        for query in _HELD:
            for row in connection.execute(query, {"ids": ids}):
                key = (row.item_id, row.item_version)
                if key in wanted:
                    self._held.setdefault(key, row.origin_digest)

    def decide(self, attestation: OriginAttestation, origin_digest: str, decision: Decision) -> Decision:
        """``decision``, or EQUIVOCATION if the item version is held under another origin digest."""
        held = self._held.get((attestation.item_id, attestation.item_version))
        if held is None or held == origin_digest:
            return decision
        return Decision.refuse(Reason.EQUIVOCATION, equivocation_detail(attestation, held, origin_digest))

    def accepted(self, attestation: OriginAttestation, origin_digest: str) -> None:
        """An envelope of this batch was accepted: later ones are compared with it too."""
        self._held.setdefault((attestation.item_id, attestation.item_version), origin_digest)
