"""A running node's identity, keys, federation view and in-memory indexes (SPEC §11).

``NodeState`` is what every service function takes after the database session. It holds
no connection and reads no clock: ``now`` is passed to each function.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from node import audit
from node.audit import AuditEvent
from node.config import ConsentPolicy, RetentionSettings
from node.errors import StoredDataError
from node.lifecycle import NoticeKind
from node.store import AuditEntryRow, ConsentGrantRow, NoticeRow, OriginalItem
from protocol.agreement import AgreementBook
from protocol.envelope import BatchKeys
from protocol.keys import HpkeKeyPair, SigningKey, VerifiedRoots
from protocol.policy import PolicyContext, TimeWindow
from protocol.roster import Roster, SecretariatKeys
from protocol.statements import Signed

__all__ = ["AtRestKey", "NodeState", "at_rest_binding", "core_table", "load_runtime_sets", "record_with_peer"]


class AtRestKey:
    """The node-local key that keeps payloads sealed in the database (SPEC §11.5).

    AES-256-GCM with a random 96-bit nonce per value; the associated data binds each
    sealed value to its row, so a ciphertext moved to another row does not open.
    """

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("the at-rest key must be 32 bytes")
        self._aead = AESGCM(key)

    def seal(self, plaintext: bytes, binding: str) -> bytes:
        """Nonce followed by ciphertext."""
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, plaintext, binding.encode())

    def open(self, sealed: bytes, binding: str, *, item: tuple[str, int] | None = None) -> bytes:
        """Inverse of ``seal``; ``StoredDataError`` (naming ``item``) if the value was damaged or moved."""
        try:
            return self._aead.decrypt(sealed[:12], sealed[12:], binding.encode())
        except (InvalidTag, ValueError) as exc:  # ValueError: shorter than a nonce and a tag
            where = f"item {item[0]} v{item[1]}" if item else binding
            raise StoredDataError(f"the stored content of {where} does not open: damaged at rest", item=item) from exc


def at_rest_binding(item_id: str, version: int, where: str) -> str:
    """What a sealed payload is bound to: the item version and its row ("original" or an envelope id)."""
    return f"{where}|{item_id}|{version}"


def core_table(model: type[object]) -> Table:
    """A model's table, for hot paths that write with Core on the session's connection."""
    table: Table = model.__table__  # type: ignore[attr-defined]
    return table


@dataclass
class NodeState:
    """A running node's identity, keys and federation view, plus in-memory indexes."""

    me: str
    signing_key: SigningKey
    hpke_keys: HpkeKeyPair
    at_rest: AtRestKey
    roster: Roster
    agreements: AgreementBook
    window: TimeWindow
    consent: ConsentPolicy
    #: When this node purges its own originals (SPEC §11.13).
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    #: (item_id, version) recalled; loaded at start, kept current by the services.
    recalled: set[tuple[str, int]] = field(default_factory=set)
    revoked_grants: set[str] = field(default_factory=set)
    #: Batch roots whose signature verified (SPEC §4.6): each batch is checked once.
    roots: VerifiedRoots = field(default_factory=VerifiedRoots)
    #: Batch keys already opened with ``hpke_keys`` (SPEC §8.2): each batch's HPKE runs once.
    batch_keys: BatchKeys = field(init=False)
    #: The trust anchor for rosters (SPEC §5.3); a held roster that declares a set overrides it.
    secretariat: SecretariatKeys | None = None
    #: The signed statement of ``roster``, as held (SPEC §11.12).
    roster_statement: Signed | None = None
    #: The node's other HPKE key pairs: what was sealed to them before a rotation still opens (SPEC §5.4.4).
    previous_hpke: tuple[HpkeKeyPair, ...] = ()

    def __post_init__(self) -> None:
        self.batch_keys = BatchKeys(self.hpke_keys)

    def policy(self, now: datetime) -> PolicyContext:
        """The policy context at ``now``."""
        return PolicyContext(
            roster=self.roster,
            agreements=self.agreements,
            now=now,
            is_recalled=lambda item_id, version: (item_id, version) in self.recalled,
            is_grant_revoked=lambda grant_id: grant_id in self.revoked_grants,
        )


def load_runtime_sets(session: Session, state: NodeState) -> None:
    """Rebuild the in-memory recall and revocation indexes from the database."""
    state.recalled = {
        (row.item_id, row.item_version)
        for row in session.scalars(select(OriginalItem).where(OriginalItem.recalled_at.is_not(None)))
    }
    state.recalled |= {
        (row.item_id, row.item_version)
        for row in session.scalars(select(NoticeRow).where(NoticeRow.kind == NoticeKind.RECALL))
    }
    state.revoked_grants = set(
        session.scalars(select(ConsentGrantRow.grant_id).where(ConsentGrantRow.revoked_at.is_not(None)))
    )
    # Revocations of grants this node holds only inside consent chains (SPEC §9.4.3).
    for statement in session.scalars(select(NoticeRow.statement).where(NoticeRow.kind == NoticeKind.REVOCATION)):
        payload = Signed.model_validate_json(statement).payload
        state.revoked_grants.add(str(json.loads(payload)["grant_id"]))


def record_with_peer(
    session: Session,
    state: NodeState,
    *,
    event: AuditEvent,
    peer: str,
    allowed: bool,
    reason: str,
    detail: Mapping[str, audit.DetailValue],
    now: datetime,
    item: tuple[str, int | None] | None = None,
) -> AuditEntryRow:
    """Audit what this node did with a peer: accepted or refused what it sent, or answered it; the entry.

    ``item`` is the item id and version the message concerned, when it names one.
    """
    item_id, item_version = item or (None, None)
    return audit.append(
        session,
        now=now,
        event=event,
        actor=state.me,
        peer=peer,
        item_id=item_id,
        item_version=item_version,
        allowed=allowed,
        reason=reason,
        detail=detail,
    )
