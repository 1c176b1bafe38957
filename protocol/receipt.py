"""Delivery receipts signed by the receiver (SPEC §11.3)."""

from __future__ import annotations

from pydantic import Field

from protocol._model import Digest, MemberId, Model, Timestamp

__all__ = ["Receipt"]


class Receipt(Model):
    """The receiver's signed statement of what it decided for one envelope.

    A receipt is sent only after the decision, the item (if accepted), the audit entry
    and the replay record are committed; re-delivery returns the same receipt.
    """

    envelope_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    envelope_digest: Digest
    sender: MemberId
    receiver: MemberId
    accepted: bool
    reason: str = Field(max_length=64)
    rule: str = Field(max_length=32)
    received_at: Timestamp
