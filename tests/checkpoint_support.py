"""Audit logs, checkpoints and witnesses for the checkpoint tests (SPEC §11.10). No I/O.

A ``Log`` is a member's audit log reduced to its leaf hashes; it signs checkpoints with
the member's key from ``support`` and builds proofs from its own leaves. A ``Witness``
keeps what ``protocol.checkpoint.witness`` tells it to keep, per origin, as a node would
in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from support import NOW, roster, signing_key

from protocol.checkpoint import (
    NoteSignature,
    WitnessDecision,
    Witnessed,
    cosigned_message,
    note_key_id,
    sign_checkpoint,
    witness,
    witness_request,
)
from protocol.keys import SigningKey
from protocol.merkle import consistency_proof, inclusion_proof, leaf_hash, memory_nodes, tree_hash
from protocol.roster import Roster

FEDERATION = "OTS"
MAX_FUTURE = timedelta(minutes=5)
#: A hybrid (Ed25519 + ML-DSA-65) identity for KZ, used with ``hybrid_roster``.
HYBRID_KZ = SigningKey.from_seeds(b"\x01" * 32, b"\x02" * 32)


def hybrid_roster(member_id: str = "KZ", key: SigningKey = HYBRID_KZ, revoked: tuple[str, ...] = ()) -> Roster:
    """The test roster with ``member_id``'s signing identity replaced by ``key``."""
    base = roster()
    members = tuple(
        m.model_copy(update={"signing_key": key.public()}) if m.member_id == member_id else m for m in base.members
    )
    return Roster(federation=base.federation, version=1, issued_at=NOW, members=members, revoked_keyids=revoked)


def ed25519_line(
    key: SigningKey,
    name: str,
    body: bytes,
    timestamp: int,
    raw_signature: bytes | None = None,
    key_id_of: SigningKey | None = None,
) -> bytes:
    """A cosignature/v1 line by ``key`` under ``name`` (its signature, or ``raw_signature``).

    ``key_id_of`` puts another key's id on the line (an attacker claiming that key).
    """
    ((_, _, signature),) = key.sign(cosigned_message(body, timestamp))
    key_id = note_key_id(name, b"\x04", (key_id_of or key).public().ed25519)
    return NoteSignature(name, key_id, timestamp.to_bytes(8, "big") + (raw_signature or signature)).line()


def entry(n: int, text: str = "allowed") -> bytes:
    """The leaf hash of a stand-in audit entry (its bytes need only be distinct)."""
    return leaf_hash(f'{{"seq":{n},"event":"INGRESS","reason":"{text}"}}'.encode())


@dataclass
class Log:
    """A member's audit log: leaf hashes, checkpoints signed with its key, proofs."""

    member_id: str = "KZ"
    leaves: list[bytes] = field(default_factory=list)
    key: SigningKey | None = None

    @classmethod
    def of(cls, n: int, member_id: str = "KZ", key: SigningKey | None = None) -> Log:
        return cls(member_id, [entry(i + 1) for i in range(n)], key)

    def append(self, count: int) -> None:
        start = len(self.leaves)
        self.leaves.extend(entry(start + i + 1) for i in range(count))

    def root(self, size: int | None = None) -> bytes:
        return tree_hash(self.leaves[: len(self.leaves) if size is None else size])

    def checkpoint(self, at: datetime, size: int | None = None) -> bytes:
        size = len(self.leaves) if size is None else size
        return sign_checkpoint(
            self.key or signing_key(self.member_id),
            federation=FEDERATION,
            member_id=self.member_id,
            size=size,
            root=self.root(size),
            now=at,
        )

    def consistency(self, old: int, new: int | None = None) -> list[bytes]:
        new = len(self.leaves) if new is None else new
        return consistency_proof(old, new, memory_nodes(self.leaves[:new]))

    def inclusion(self, index: int, size: int | None = None) -> list[bytes]:
        size = len(self.leaves) if size is None else size
        return inclusion_proof(index, size, memory_nodes(self.leaves[:size]))

    def request(self, old: int, at: datetime, size: int | None = None) -> bytes:
        """A witness request for the checkpoint at ``size``, from ``old``, with an honest proof."""
        size = len(self.leaves) if size is None else size
        return witness_request(old, self.consistency(old, size), self.checkpoint(at, size))


@dataclass
class Witness:
    """A member acting as witness: what it keeps per origin, and the decisions it made."""

    member_id: str = "TR"
    ros: Roster = field(default_factory=roster)
    key: SigningKey | None = None
    kept: dict[str, Witnessed] = field(default_factory=dict)

    def see(self, request: bytes, now: datetime = NOW) -> WitnessDecision:
        decision = witness(
            request,
            roster=self.ros,
            witness_id=self.member_id,
            key=self.key or signing_key(self.member_id),
            last=self.kept.get,
            now=now,
            max_future=MAX_FUTURE,
        )
        if decision.keep is not None:
            self.kept[decision.keep.origin] = decision.keep
        return decision


def later(seconds: int) -> datetime:
    return NOW + timedelta(seconds=seconds)
