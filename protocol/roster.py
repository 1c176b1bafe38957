"""The federation roster: who the members are and how to reach and verify them (SPEC §5.1).

The roster is kept by the secretariat and changes only by signed, versioned updates.
A node accepts an update only if the secretariat signed it and its version is higher
than the one held (SPEC §5.3); anything else is a rollback.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from functools import cached_property
from typing import Annotated

from pydantic import Field, model_validator

from protocol._model import Digest, Marking, MemberId, Model, SortedUnique, Timestamp, Version
from protocol.classification import Band, BandField, NationalMarkings
from protocol.errors import ConfigurationError, RollbackError
from protocol.keys import HpkePublicKeys, PublicSigningKey
from protocol.label import DEFAULT_TOPICS, Topic
from protocol.statements import PayloadType, Signed, verify_and_parse

__all__ = [
    "Member",
    "MemberStatus",
    "Roster",
    "accept_roster",
]


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

    @model_validator(mode="after")
    def _unique(self) -> Roster:
        for what, values in (
            ("member id", [m.member_id for m in self.members]),
            ("TLS identity", [m.tls_identity for m in self.members]),
            ("signing key", [m.signing_key.keyid for m in self.members]),
        ):
            dupes = sorted({v for v in values if values.count(v) > 1})
            if dupes:
                raise ValueError(f"duplicate {what}: {', '.join(dupes)}")
        for member in self.members:
            try:
                member.national_markings  # noqa: B018 - validates the marking table eagerly
            except ConfigurationError as exc:  # a parse failure, so from_bytes blames the sender
                raise ValueError(str(exc)) from exc
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
        (§9.2.2, §9.2.4), so it asks ``member`` and ``is_revoked`` in turn.
        """
        member = self.member(member_id)
        return None if member is None or self.is_revoked(member.signing_key.keyid) else member

    def member_ids(self) -> tuple[str, ...]:
        """All member ids, in roster order."""
        return tuple(self._by_id)

    def marking(self, member_id: str, band: Band) -> str | None:
        """A member's national marking for a band (None if the member or marking is unknown)."""
        member = self.member(member_id)
        return None if member is None else member.national_markings.marking(band)


def accept_roster(signed: Signed, *, secretariat: Iterable[PublicSigningKey], current: Roster | None) -> Roster:
    """Verify a roster update and refuse rollback (SPEC §5.3).

    Every secretariat key must have signed. The new version MUST be higher than
    ``current.version``; an equal or lower one raises ``RollbackError``.
    """
    roster = verify_and_parse(signed, PayloadType.ROSTER, secretariat, Roster)
    if current is not None:
        if roster.federation != current.federation:
            raise RollbackError(f"roster is for federation {roster.federation!r}, not {current.federation!r}")
        if roster.version <= current.version:
            raise RollbackError(f"roster version {roster.version} is not newer than held version {current.version}")
    return roster
