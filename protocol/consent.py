"""Originator consent: requests, grants, denials, revocations (SPEC §9.4).

No item reaches a third party without a chain of valid grants rooted at the
originator. The first grant is signed by the originator; a later one is signed by the
previous grantee, and only if the previous grant was transferable.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, Field, StringConstraints

from protocol._model import Digest, Hex32Id, ItemId, MemberId, Model, Timestamp, Version
from protocol.encoding import parse_timestamp
from protocol.errors import LocalProtocolError, NoticeMismatchError, SignatureError
from protocol.roster import Roster
from protocol.statements import PayloadType, Signed, parse_unverified, verify

__all__ = [
    "ONWARD_TO",
    "RETAIN_UNTIL",
    "ConsentDenial",
    "ConsentGrant",
    "ConsentRequest",
    "ConsentRevocation",
    "chain_retain_until",
    "check_conditions",
    "check_onward",
    "verify_revocation",
]

#: The grant conditions the policy engine enforces (SPEC §9.4.4).
ONWARD_TO = "onward-to"
RETAIN_UNTIL = "retain-until"
_MEMBER = re.compile(r"^[A-Z]{2}(-[A-Z0-9]{1,16})?$")


def _condition(text: str) -> str:
    """One condition, ``onward-to:<member>`` or ``retain-until:<timestamp>`` (SPEC §9.4.4)."""
    kind, sep, value = text.partition(":")
    if not sep:
        raise ValueError(f"a condition is {ONWARD_TO}:<member> or {RETAIN_UNTIL}:<timestamp>, not {text!r}")
    if kind == ONWARD_TO:
        if not _MEMBER.fullmatch(value):
            raise ValueError(f"{ONWARD_TO} names a member id, not {value!r}")
    elif kind == RETAIN_UNTIL:
        parse_timestamp(value)
    else:
        raise ValueError(f"unknown condition {kind!r}: the conditions are {ONWARD_TO} and {RETAIN_UNTIL}")
    return text


#: One condition of a grant, which the policy engine enforces (SPEC §9.4.4).
Condition = Annotated[str, StringConstraints(min_length=1, max_length=1024), AfterValidator(_condition)]


class ConsentRequest(Model):
    """A holder asks the originator to let an item pass to a named third party."""

    request_id: Hex32Id
    item_id: ItemId
    item_version: Version
    origin_digest: Digest
    requester: MemberId
    third_party: MemberId
    purpose: str = Field(min_length=1, max_length=1024)
    requested_at: Timestamp


class ConsentGrant(Model):
    """Signed permission for ``holder`` to pass one item version to ``grantee`` (SPEC §9.4.1)."""

    grant_id: Hex32Id
    request_id: Hex32Id | None = None
    item_id: ItemId
    item_version: Version
    origin_digest: Digest
    #: Who signs: the originator, or the grantee of a transferable earlier grant.
    grantor: MemberId
    holder: MemberId
    grantee: MemberId
    expires_at: Timestamp
    #: May the grantee pass it on (by signing a further grant)? Default no.
    transferable: bool = False
    #: Limits every later holder is held to (SPEC §9.4.4), in the grantor's order.
    conditions: tuple[Condition, ...] = Field(default=(), max_length=16)
    issued_at: Timestamp

    @property
    def onward_to(self) -> frozenset[str] | None:
        """The members an onward grant may name, if the grant limits them (``onward-to``)."""
        named = [c.partition(":")[2] for c in self.conditions if c.partition(":")[0] == ONWARD_TO]
        return frozenset(named) if named else None

    @property
    def retain_until(self) -> datetime | None:
        """The earliest ``retain-until`` condition: no holder keeps the item after it."""
        times = [parse_timestamp(c.partition(":")[2]) for c in self.conditions if c.partition(":")[0] == RETAIN_UNTIL]
        return min(times) if times else None


class ConsentDenial(Model):
    """Signed refusal of a consent request, with the originator's reason."""

    request_id: Hex32Id
    item_id: ItemId
    item_version: Version
    origin_digest: Digest
    denier: MemberId
    reason: str = Field(min_length=1, max_length=1024)
    issued_at: Timestamp


class ConsentRevocation(Model):
    """Signed withdrawal of an earlier grant by its grantor (SPEC §9.4.3)."""

    revocation_id: Hex32Id
    grant_id: Hex32Id
    item_id: ItemId
    revoker: MemberId
    reason: str = Field(default="", max_length=1024)
    issued_at: Timestamp


def chain_retain_until(chain: Sequence[ConsentGrant]) -> datetime | None:
    """The earliest ``retain-until`` condition of a consent chain (SPEC §9.4.4), if any."""
    times = [t for grant in chain if (t := grant.retain_until) is not None]
    return min(times) if times else None


def check_conditions(chain: Sequence[ConsentGrant], now: datetime) -> str | None:
    """Why a chain breaks a condition of one of its grants at ``now``, or None (SPEC §9.4.4).

    Every grant's conditions bind every later link: a grant's ``onward-to`` names the only
    members any later grant of the chain may name as grantee, and its ``retain-until`` is
    when the chain stops carrying consent.
    """
    for position, grant in enumerate(chain, start=1):
        limit = grant.retain_until
        if limit is not None and limit <= now:
            return f"grant {position} ({grant.grant_id}) lets the item be held only until {limit}"
        allowed = grant.onward_to
        if allowed is None:
            continue
        for later, onward in enumerate(chain[position:], start=position + 1):
            if onward.grantee not in allowed:
                return (
                    f"grant {later} names {onward.grantee}; grant {position} lets the item go on only to "
                    f"{', '.join(sorted(allowed))}"
                )
    return None


def check_onward(
    chain: Sequence[ConsentGrant], *, holder: str, grantee: str, expires_at: datetime, now: datetime
) -> ConsentGrant:
    """The grant an onward grant by ``holder`` for ``grantee`` rests on; raises if outside its scope (SPEC §9.4.4).

    The chain's last grant must name ``holder`` as grantee, be transferable and live at
    ``now``; the onward grant must not outlast it, and its grantee must be one every
    earlier grant's ``onward-to`` allows. ``LocalProtocolError`` says which rule fails.
    """
    if not chain or chain[-1].grantee != holder:
        raise LocalProtocolError(f"{holder} holds no grant naming it as grantee: it cannot grant onward")
    parent = chain[-1]
    if not parent.transferable:
        raise LocalProtocolError(f"grant {parent.grant_id} is not transferable: {holder} may not pass the item on")
    if parent.expires_at <= now:
        raise LocalProtocolError(f"grant {parent.grant_id} expired {parent.expires_at}")
    if expires_at > parent.expires_at:
        raise LocalProtocolError(f"an onward grant may not outlast grant {parent.grant_id} ({parent.expires_at})")
    if grantee in (holder, chain[0].grantor):
        raise LocalProtocolError(f"{grantee} needs no consent from {holder}")
    probe = ConsentGrant(
        grant_id="0" * 32,
        item_id=parent.item_id,
        item_version=parent.item_version,
        origin_digest=parent.origin_digest,
        grantor=holder,
        holder=holder,
        grantee=grantee,
        expires_at=expires_at,
        issued_at=now,
    )
    broken = check_conditions([*chain, probe], now)
    if broken is not None:
        raise LocalProtocolError(broken)
    return parent


def verify_revocation(signed: Signed, *, roster: Roster, grant: ConsentGrant) -> ConsentRevocation:
    """Verify a revocation of ``grant`` (SPEC §9.4.3).

    ``MalformedError`` if it does not parse; ``SignatureError`` unless the grant's grantor,
    a roster member with an unrevoked key, signed it; ``NoticeMismatchError`` if it names
    another grant or item.
    """
    revocation = parse_unverified(signed, PayloadType.CONSENT_REVOCATION, ConsentRevocation)
    if revocation.revoker != grant.grantor:
        raise SignatureError(f"revocation is signed by {revocation.revoker}, not the grantor {grant.grantor}")
    member = roster.trusted_signer(revocation.revoker)
    if member is None:
        raise SignatureError(f"revocation claims unknown or revoked member {revocation.revoker}")
    verify(signed, PayloadType.CONSENT_REVOCATION, [member.signing_key])
    if (revocation.grant_id, revocation.item_id) != (grant.grant_id, grant.item_id):
        raise NoticeMismatchError(f"revocation {revocation.revocation_id} is not for grant {grant.grant_id}")
    return revocation
