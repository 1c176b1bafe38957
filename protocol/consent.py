"""Originator consent: requests, grants, denials, revocations (SPEC §9.4).

No item reaches a third party without a chain of valid grants rooted at the
originator. The first grant is signed by the originator; a later one is signed by the
previous grantee, and only if the previous grant was transferable.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from protocol._model import Digest, Hex32Id, ItemId, MemberId, Model, Timestamp, Version

__all__ = [
    "ConsentDenial",
    "ConsentGrant",
    "ConsentRequest",
    "ConsentRevocation",
]

#: One condition of a grant, for the humans (SPEC §9.4.1).
Condition = Annotated[str, StringConstraints(min_length=1, max_length=1024)]


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
    conditions: tuple[Condition, ...] = Field(default=(), max_length=16)
    issued_at: Timestamp


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
