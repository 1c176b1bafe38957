"""Acknowledgements of control messages (SPEC §11.9).

A node answers ``RequestConsent``, ``SendConsentDecision`` and ``Notify`` with an
unsigned, advisory ``Ack``: accepted or not, a stable reason code and a line of detail.
A refusal carries the policy ``Reason`` that explains it; an accepted message carries an
``AckReason`` saying what the receiver did with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from protocol.policy import Reason
from protocol.statements import Signed

__all__ = ["Ack", "AckReason"]


class AckReason(StrEnum):
    """What a receiver did with a control message it accepted; stable strings (SPEC §11.9)."""

    #: A consent request, or the originator's decision, was stored.
    RECORDED = "RECORDED"
    #: A consent request waits for the originator's officer.
    PENDING = "PENDING"
    #: A consent request was decided at once by the originator's standing rules.
    DECIDED = "DECIDED"
    #: The same statement was already applied; nothing changed.
    DUPLICATE = "DUPLICATE"
    #: A recall was applied to the held copies.
    RECALLED = "RECALLED"
    #: A correction was applied: the held copies are superseded.
    SUPERSEDED = "SUPERSEDED"
    #: A consent revocation was applied.
    REVOKED = "REVOKED"
    #: The message names an item version the receiver does not hold (refused).
    UNKNOWN_ITEM = "UNKNOWN_ITEM"
    #: A roster version was applied (SPEC §11.12).
    ROSTER_HELD = "ROSTER_HELD"
    #: A roster version no newer than the one held, or of another federation (refused, SPEC §5.3).
    ROSTER_ROLLBACK = "ROSTER_ROLLBACK"
    #: A roster the secretariat's threshold did not sign, or that does not parse (refused, SPEC §5.3).
    ROSTER_INVALID = "ROSTER_INVALID"
    #: A countersigned agreement version is now held in force (SPEC §6.4).
    IN_FORCE = "IN_FORCE"
    #: A rejection of a proposal was recorded (SPEC §6.4).
    REJECTED = "REJECTED"
    #: A countersignature or rejection names no proposal pending here (refused).
    UNKNOWN_PROPOSAL = "UNKNOWN_PROPOSAL"
    #: A proposed agreement version is not newer than the one held (refused, SPEC §6.4).
    VERSION_NOT_NEWER = "VERSION_NOT_NEWER"
    #: A proposed agreement breaks a rule of SPEC §5.2 or §6.2 (refused).
    AGREEMENT_INVALID = "AGREEMENT_INVALID"
    #: A revocation names a grant the receiver does not hold (refused, SPEC §9.4.3).
    UNKNOWN_GRANT = "UNKNOWN_GRANT"


@dataclass(frozen=True)
class Ack:
    """The receiver's answer to one control message."""

    accepted: bool
    reason: AckReason | Reason
    detail: str
    #: A signed statement the answer carries: a holder's acknowledgement of a notice (SPEC §10.3).
    statement: Signed | None = None

    @classmethod
    def done(cls, reason: AckReason, detail: str, statement: Signed | None = None) -> Ack:
        """The message was accepted; ``reason`` says what was done."""
        return cls(True, reason, detail, statement)

    @classmethod
    def refused(cls, reason: Reason | AckReason, detail: str) -> Ack:
        """The message was refused (and the refusal audited)."""
        return cls(False, reason, detail)
