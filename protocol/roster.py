"""The federation roster: who the members are and how to reach and verify them (SPEC §5.1).

The roster is kept by the secretariat and changes only by signed, versioned updates.
A node accepts an update only if a threshold of the secretariat's keys signed it and its
version is higher than the one held (SPEC §5.3); anything else is a rollback. A member's
previous signing key stays listed for an overlap after a rotation, so what it signed
before still verifies (SPEC §5.4.3).
"""

from __future__ import annotations

from enum import StrEnum
from functools import cached_property
from typing import Annotated, Any

from pydantic import Field, model_validator

from protocol._model import Digest, Marking, MemberId, Model, SortedUnique, Timestamp, Version
from protocol.classification import Band, BandField, NationalMarkings
from protocol.encoding import canonical_json, pae
from protocol.errors import ConfigurationError, RollbackError, SignatureError
from protocol.keys import HpkePublicKeys, PublicSigningKey, VerifiedRoots
from protocol.label import DEFAULT_TOPICS, Topic
from protocol.statements import PayloadType, Signed, verify_any

__all__ = [
    "MAX_SECRETARIAT_KEYS",
    "Member",
    "MemberStatus",
    "RetiredKey",
    "Roster",
    "SecretariatKeys",
    "accept_roster",
]

#: At most this many secretariat keys: a statement carries at most 8 signatures (SPEC §4.1).
MAX_SECRETARIAT_KEYS = 8


class MemberStatus(StrEnum):
    """Full member or observer (SPEC §5.1)."""

    MEMBER = "member"
    OBSERVER = "observer"


class Member(Model):
    """One member service (SPEC §5.1)."""

    member_id: MemberId
    state: str = Field(min_length=1, max_length=128)
    service: str = Field(min_length=1, max_length=256)
    status: MemberStatus
    signing_key: PublicSigningKey
    hpke_keys: HpkePublicKeys
    #: The SAN URI its TLS certificate carries; peers are identified by it (SPEC §11.2).
    tls_identity: str = Field(pattern=r"^[a-z][a-z0-9+.-]*:\S+$", max_length=256)
    #: SHA-256 of its current TLS certificate (DER), checked in the handler (SPEC §11.2).
    tls_fingerprint: Digest | None = None
    endpoint: str = Field(min_length=1, max_length=256)
    #: One marking per band it uses, compared as exact code points (SPEC §5.2).
    markings: dict[BandField, Marking] = Field(min_length=1)

    @cached_property
    def national_markings(self) -> NationalMarkings:
        """The member's marking table, validated."""
        return NationalMarkings(self.member_id, self.markings)


class RetiredKey(Model):
    """A member's previous signing identity, still verifying during its overlap (SPEC §5.4.3).

    Never used to sign anything new; the secretariat leaves it out of the first version
    it issues after ``until``.
    """

    member_id: MemberId
    signing_key: PublicSigningKey
    until: Timestamp


class SecretariatKeys(Model):
    """The secretariat's keys and how many of them must sign a roster (SPEC §5.3)."""

    threshold: int = Field(ge=1, le=MAX_SECRETARIAT_KEYS)
    keys: tuple[PublicSigningKey, ...] = Field(min_length=1, max_length=MAX_SECRETARIAT_KEYS)

    @model_validator(mode="after")
    def _consistent(self) -> SecretariatKeys:
        keyids = [key.keyid for key in self.keys]
        if len(set(keyids)) != len(keyids):
            raise ValueError("duplicate secretariat key")
        if self.threshold > len(self.keys):
            raise ValueError(f"threshold {self.threshold} is more than the {len(self.keys)} secretariat keys")
        return self

    def signers(self, signed: Signed) -> int:
        """How many distinct keys of the set have a valid signature on ``signed`` (SPEC §5.4.1)."""
        message = pae(signed.payload_type, signed.payload)
        signatures = signed._signature_map()
        return sum(1 for key in self.keys if key.verify(message, signatures))

    def require(self, signed: Signed, what: str) -> None:
        """``SignatureError`` unless a ROSTER statement carries ``threshold`` valid signatures of the set."""
        if signed.payload_type != PayloadType.ROSTER.value:
            raise SignatureError(f"expected a ROSTER statement, got {signed.payload_type!r}")
        count = self.signers(signed)
        if count < self.threshold:
            raise SignatureError(
                f"roster signed by {count} of the {len(self.keys)} {what} secretariat keys; {self.threshold} needed"
            )


#: Fields a roster omits when they are empty, so a roster without them keeps its bytes (SPEC §5.1).
_OMITTED_WHEN_EMPTY = ("retired_keys", "secretariat")


class Roster(Model):
    """A version of the federation roster (SPEC §5.1)."""

    federation: str = Field(min_length=1, max_length=128)
    version: Version
    issued_at: Timestamp
    #: In the order the secretariat lists them; unique by member id, TLS identity and key.
    members: tuple[Member, ...] = Field(min_length=1, max_length=256)
    #: The topic vocabulary: the defaults plus any the federation added (SPEC §7.1).
    topics: Annotated[tuple[Topic, ...], SortedUnique] = Field(default=DEFAULT_TOPICS, min_length=1, max_length=256)
    #: Key ids (signing keys) that MUST NOT be trusted any more (SPEC §12.8).
    revoked_keyids: Annotated[tuple[Digest, ...], SortedUnique] = Field(default=(), max_length=1024)
    #: Members' previous signing keys in their overlap after a rotation (SPEC §5.4.3); omitted when empty.
    retired_keys: tuple[RetiredKey, ...] = Field(default=(), max_length=256)
    #: The keys that signed this version and sign the next (SPEC §5.3); omitted when absent.
    secretariat: SecretariatKeys | None = None

    def to_bytes(self) -> bytes:
        """The canonical encoding, without the optional fields that are empty (SPEC §5.1)."""
        doc: dict[str, Any] = self.model_dump(mode="json")
        for name in _OMITTED_WHEN_EMPTY:
            if doc[name] in (None, []):
                del doc[name]
        return canonical_json(doc)

    @model_validator(mode="after")
    def _unique(self) -> Roster:
        for what, values in (
            ("member id", [m.member_id for m in self.members]),
            ("TLS identity", [m.tls_identity for m in self.members]),
            (
                "signing key",
                [m.signing_key.keyid for m in self.members] + [r.signing_key.keyid for r in self.retired_keys],
            ),
        ):
            dupes = sorted({v for v in values if values.count(v) > 1})
            if dupes:
                raise ValueError(f"duplicate {what}: {', '.join(dupes)}")
        for member in self.members:
            try:
                member.national_markings  # noqa: B018 - validates the marking table eagerly
            except ConfigurationError as exc:  # a parse failure, so from_bytes blames the sender
                raise ValueError(str(exc)) from exc
        ids = {m.member_id for m in self.members}
        strangers = sorted({r.member_id for r in self.retired_keys} - ids)
        if strangers:
            raise ValueError(f"retired keys of members not in the roster: {', '.join(strangers)}")
        return self

    @cached_property
    def _by_id(self) -> dict[str, Member]:
        return {m.member_id: m for m in self.members}

    def member(self, member_id: str) -> Member | None:
        """The member with this id, or None."""
        return self._by_id.get(member_id)

    def is_revoked(self, keyid: str) -> bool:
        """True if the key id was revoked (SPEC §12.8)."""
        return keyid in self.revoked_keyids

    def trusted_signer(self, member_id: str) -> Member | None:
        """The member whose signature counts: in the roster, its signing key not revoked (SPEC §12.8).

        None for an unknown member and for a revoked key alike, for the checks that refuse
        both the same way (grants §9.4.2 step 5, notices §10). Ingress tells them apart
        (§9.2.2, §9.2.4), so it asks ``member`` and ``is_revoked`` in turn. The statement
        itself is then checked with ``verify_member``.
        """
        member = self.member(member_id)
        return None if member is None or self.is_revoked(member.signing_key.keyid) else member

    def verification_keys(self, member_id: str) -> tuple[PublicSigningKey, ...]:
        """The keys a member's signature may be under: its key, then its retired keys; none revoked (SPEC §5.4.3)."""
        member = self.member(member_id)
        if member is None:
            return ()
        keys = (member.signing_key, *(r.signing_key for r in self.retired_keys if r.member_id == member_id))
        return tuple(key for key in keys if not self.is_revoked(key.keyid))

    def signed_with_revoked_key(self, signed: Signed) -> bool:
        """Whether a signature of ``signed`` names a revoked key id (SPEC §9.2.4)."""
        return any(self.is_revoked(signature.keyid) for signature in signed.signatures)

    def verify_member(
        self, signed: Signed, payload_type: PayloadType, member_id: str, roots: VerifiedRoots | None = None
    ) -> PublicSigningKey:
        """``SignatureError`` unless one of the member's verification keys signed ``signed``; that key (SPEC §5.4.3)."""
        keys = self.verification_keys(member_id)
        if not keys:
            raise SignatureError(f"{member_id} has no usable signing key in the roster")
        return verify_any(signed, payload_type, keys, roots)

    def member_ids(self) -> tuple[str, ...]:
        """All member ids, in roster order."""
        return tuple(self._by_id)

    def marking(self, member_id: str, band: Band) -> str | None:
        """A member's national marking for a band (None if the member or marking is unknown)."""
        member = self.member(member_id)
        return None if member is None else member.national_markings.marking(band)


def accept_roster(signed: Signed, *, secretariat: SecretariatKeys, current: Roster | None) -> Roster:
    """Verify a roster update and refuse rollback (SPEC §5.3).

    ``secretariat`` is the node's configured trust anchor: the keys and threshold it
    trusts for a roster when it holds none, or holds one that declares no secretariat
    set. Once ``current`` declares its own set, that set and its threshold are the ones
    that must sign; the anchor is not consulted. A roster that declares a set other than
    the one that signed it must also carry its own set's threshold of signatures. The
    new version MUST be higher than ``current.version``; an equal or lower one, or one
    for another federation, raises ``RollbackError``.
    """
    trusted = current.secretariat if current is not None and current.secretariat is not None else secretariat
    trusted.require(signed, "trusted")
    roster = Roster.from_bytes(signed.payload)
    if roster.secretariat is not None and roster.secretariat != trusted:
        roster.secretariat.require(signed, "new")
    if current is not None:
        if roster.federation != current.federation:
            raise RollbackError(f"roster is for federation {roster.federation!r}, not {current.federation!r}")
        if roster.version <= current.version:
            raise RollbackError(f"roster version {roster.version} is not newer than held version {current.version}")
    return roster
