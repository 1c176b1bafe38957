"""Delivery receipts signed by the receiver (SPEC §11.3)."""

from __future__ import annotations

from pydantic import Field

from protocol._model import Digest, Hex32Id, LogSeq, MemberId, Model, Timestamp

__all__ = ["Receipt"]


class Receipt(Model):
    """The receiver's signed statement of what it decided for one envelope.

    A receipt is sent only after the decision, the item (if accepted), the audit entry
    and the replay record are committed; re-delivery returns the same receipt.
    """

    envelope_id: Hex32Id
    envelope_digest: Digest
    sender: MemberId
    receiver: MemberId
    accepted: bool
    #: A reason code of SPEC §9.5 and the section behind it (carried for the sender, not checked).
    reason: str = Field(max_length=64)
    rule: str = Field(max_length=32)
    received_at: Timestamp
    #: Where the receiver's INGRESS entry for this envelope sits in its audit log, and its
    #: leaf hash: the sender holds the receiver's signed word for it (SPEC §11.3, §11.10.6).
    log_seq: LogSeq
    log_leaf: Digest
