"""Recall and correction notices (SPEC §10).

Signed by the originator and bound to the exact item id, version and origin digest,
so a notice for one item can never be applied to another. Holders forward the same
signed bytes downstream; anyone can verify them against the roster.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from protocol._model import MAX_INT, Digest, Hex32Id, ItemId, LogSeq, MemberId, Model, Timestamp, Version
from protocol.errors import NoticeMismatchError, SignatureError
from protocol.roster import Roster
from protocol.statements import PayloadType, Signed, parse_unverified

__all__ = [
    "Correction",
    "NoticeAck",
    "NoticeKind",
    "Recall",
    "verify_correction",
    "verify_notice_ack",
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


class NoticeKind(StrEnum):
    """What a notice is (SPEC §10)."""

    RECALL = "recall"
    CORRECTION = "correction"


class NoticeAck(Model):
    """A holder's signed word that it applied a recall or correction (SPEC §10.3).

    Sent back to whoever passed the notice on, and forwarded upstream by every holder that
    re-shared the item, so the originator holds the word of every holder, downstream too.
    Names where the holder's entry applying the notice sits in its audit log.
    """

    notice_digest: Digest
    kind: NoticeKind
    item_id: ItemId
    item_version: Version
    originator: MemberId
    holder: MemberId
    #: The member the holder received the notice from.
    received_from: MemberId
    #: How many copies of the version the holder held.
    copies: int = Field(ge=0, le=MAX_INT)
    applied_at: Timestamp
    log_seq: LogSeq
    log_leaf: Digest


def verify_notice_ack(signed: Signed, *, roster: Roster) -> NoticeAck:
    """Verify a notice acknowledgement against its holder's roster key (SPEC §10.3).

    ``MalformedError`` if it does not parse; ``SignatureError`` if its holder is unknown or
    revoked, or did not sign it.
    """
    ack = parse_unverified(signed, PayloadType.NOTICE_ACK, NoticeAck)
    holder = roster.trusted_signer(ack.holder)
    if holder is None:
        raise SignatureError(f"acknowledgement claims unknown or revoked holder {ack.holder}")
    roster.verify_member(signed, PayloadType.NOTICE_ACK, holder.member_id)
    return ack


def _verify_by_originator(signed: Signed, payload_type: PayloadType, originator: str, roster: Roster) -> None:
    member = roster.trusted_signer(originator)
    if member is None:
        raise SignatureError(f"notice claims unknown or revoked originator {originator}")
    roster.verify_member(signed, payload_type, member.member_id)


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
