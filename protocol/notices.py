"""Recall and correction notices (SPEC §10).

Signed by the originator and bound to the exact item id, version and origin digest,
so a notice for one item can never be applied to another. Holders forward the same
signed bytes downstream; anyone can verify them against the roster.
"""

from __future__ import annotations

from pydantic import Field

from protocol._model import Digest, Hex32Id, ItemId, MemberId, Model, Timestamp, Version
from protocol.errors import NoticeMismatchError, SignatureError
from protocol.roster import Roster
from protocol.statements import PayloadType, Signed, parse_unverified, verify

__all__ = [
    "Correction",
    "Recall",
    "verify_correction",
    "verify_recall",
]


class Recall(Model):
    """The originator withdraws one item version (SPEC §10.1)."""

    recall_id: Hex32Id
    item_id: ItemId
    item_version: Version
    origin_digest: Digest
    originator: MemberId
    reason: str = Field(min_length=1, max_length=1024)
    issued_at: Timestamp


class Correction(Model):
    """The originator replaces one item version with a newer one (SPEC §10.2)."""

    correction_id: Hex32Id
    item_id: ItemId
    corrected_version: Version
    corrected_digest: Digest
    new_version: Version = Field(ge=2)
    new_origin_digest: Digest
    originator: MemberId
    reason: str = Field(min_length=1, max_length=1024)
    issued_at: Timestamp


def _verify_by_originator(signed: Signed, payload_type: PayloadType, originator: str, roster: Roster) -> None:
    member = roster.trusted_signer(originator)
    if member is None:
        raise SignatureError(f"notice claims unknown or revoked originator {originator}")
    verify(signed, payload_type, [member.signing_key])


def _check_originator(claimed: str, originator: str) -> None:
    # The signer named in the notice must be the held item's originator (from its verified
    # origin attestation); otherwise any member could recall or correct anyone's item.
    if claimed != originator:
        raise SignatureError(f"notice is signed by {claimed}, not by the item's originator {originator}")


def verify_recall(
    signed: Signed,
    *,
    roster: Roster,
    item_id: str,
    item_version: int,
    origin_digest: str,
    originator: str,
) -> Recall:
    """Verify a recall against the held item (SPEC §10.1); raises on forgery or mismatch.

    ``originator`` is the held item's originator; callers MUST pass it, or a recall signed by
    any member for an item it holds would verify.
    """
    recall = parse_unverified(signed, PayloadType.RECALL, Recall)
    _check_originator(recall.originator, originator)
    _verify_by_originator(signed, PayloadType.RECALL, recall.originator, roster)
    if (recall.item_id, recall.item_version, recall.origin_digest) != (
        item_id,
        item_version,
        origin_digest,
    ):
        raise NoticeMismatchError(f"recall {recall.recall_id} is not for the held item version")
    return recall


def verify_correction(
    signed: Signed,
    *,
    roster: Roster,
    item_id: str,
    item_version: int,
    origin_digest: str,
    originator: str,
) -> Correction:
    """Verify a correction against the held item (SPEC §10.2); raises on forgery or mismatch.

    ``originator`` is the held item's originator; callers MUST pass it (see ``verify_recall``).
    """
    correction = parse_unverified(signed, PayloadType.CORRECTION, Correction)
    _check_originator(correction.originator, originator)
    _verify_by_originator(signed, PayloadType.CORRECTION, correction.originator, roster)
    bound = (correction.item_id, correction.corrected_version, correction.corrected_digest)
    if bound != (item_id, item_version, origin_digest) or correction.new_version <= item_version:
        raise NoticeMismatchError(f"correction {correction.correction_id} is not for the held item version")
    return correction
