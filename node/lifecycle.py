"""Lifecycles of the node's stateful records, each a transition table (SPEC §11.11).

In the style of h11's ``_state.py``: a record's state is an enum, what can happen to it
is an event enum, and the table lists, for each state, the events it accepts and the
state each leads to. Every state change in ``node.services`` goes through
``Lifecycle.next``, which refuses a transition the table does not have with
``IllegalTransitionError``; nothing assigns a state string inline. A state with no
entries is final.

Stored values are the strings the schema has always used (``Mapped[...]`` columns are
typed with these enums by ``node.store``), so the enums needed no data migration.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Generic, TypeVar

from node.errors import IllegalTransitionError

__all__ = [
    "AGREEMENT_PROPOSAL",
    "CONSENT_REQUEST",
    "CONTROL_MESSAGE",
    "INBOX_ITEM",
    "ORIGINAL_ITEM",
    "OUTBOX_ENTRY",
    "ConsentRequestEvent",
    "ConsentRequestState",
    "ControlEvent",
    "ControlRpc",
    "ControlState",
    "Direction",
    "InboxEvent",
    "InboxStatus",
    "Lifecycle",
    "NoticeKind",
    "OriginalEvent",
    "OriginalState",
    "OutboxEvent",
    "OutboxKind",
    "OutboxState",
    "ProposalEvent",
    "ProposalState",
]

S = TypeVar("S", bound=StrEnum)
E = TypeVar("E", bound=StrEnum)


@dataclass(frozen=True)
class Lifecycle(Generic[S, E]):
    """A transition table: ``table[state][event]`` is the next state."""

    name: str
    table: Mapping[S, Mapping[E, S]]

    def __post_init__(self) -> None:
        frozen = {state: MappingProxyType(dict(events)) for state, events in self.table.items()}
        object.__setattr__(self, "table", MappingProxyType(frozen))

    def next(self, state: S, event: E) -> S:
        """The state ``event`` leads to from ``state``; ``IllegalTransitionError`` if none."""
        try:
            return self.table[state][event]
        except KeyError:
            raise IllegalTransitionError(self.name, state, event) from None

    def allows(self, state: S, event: E) -> bool:
        """Whether ``event`` may happen in ``state``."""
        return event in self.table.get(state, {})

    def is_final(self, state: S) -> bool:
        """A final state accepts no event."""
        return not self.table.get(state)


# --- outbox entry (SPEC §11.6) --------------------------------------------------------------


class OutboxState(StrEnum):
    """Where an envelope to a peer stands."""

    PENDING = "pending"
    DELIVERED = "delivered"
    REFUSED = "refused"
    #: Withdrawn by a recall before a receipt came. Stored as "failed" since migration 0001.
    WITHDRAWN = "failed"


class OutboxEvent(StrEnum):
    """What can happen to an outbox entry."""

    ATTEMPT_FAILED = "attempt_failed"
    RECEIPT_ACCEPTED = "receipt_accepted"
    RECEIPT_REFUSED = "receipt_refused"
    RECALLED = "recalled"
    #: The item's retention ended before a receipt came; the envelope is not sent (SPEC §11.13).
    EXPIRED = "expired"


OUTBOX_ENTRY: Lifecycle[OutboxState, OutboxEvent] = Lifecycle(
    "outbox entry",
    {
        OutboxState.PENDING: {
            OutboxEvent.ATTEMPT_FAILED: OutboxState.PENDING,  # retried after a backoff
            OutboxEvent.RECEIPT_ACCEPTED: OutboxState.DELIVERED,
            OutboxEvent.RECEIPT_REFUSED: OutboxState.REFUSED,
            OutboxEvent.RECALLED: OutboxState.WITHDRAWN,
            OutboxEvent.EXPIRED: OutboxState.WITHDRAWN,
        },
        # Withdrawn while already on the wire: the receipt still settles it (SPEC §10.1),
        # and an accepted one means the recall must follow the envelope.
        OutboxState.WITHDRAWN: {
            OutboxEvent.RECEIPT_ACCEPTED: OutboxState.DELIVERED,
            OutboxEvent.RECEIPT_REFUSED: OutboxState.REFUSED,
        },
        OutboxState.DELIVERED: {},
        OutboxState.REFUSED: {},
    },
)


class OutboxKind(StrEnum):
    """Whether an outbox entry carries this node's own item or a received one passed on."""

    ITEM = "item"
    RESHARE = "reshare"


# --- inbox item (SPEC §10) -----------------------------------------------------------------


class InboxStatus(StrEnum):
    """A received copy's standing."""

    HELD = "held"
    RECALLED = "recalled"
    SUPERSEDED = "superseded"
    #: Its retention ended: the content is destroyed, the metadata kept (SPEC §11.13).
    PURGED = "purged"


class InboxEvent(StrEnum):
    """Notices from the originator that change a held copy, and the end of its retention."""

    RECALLED = "recalled"
    CORRECTED = "corrected"
    PURGED = "purged"


INBOX_ITEM: Lifecycle[InboxStatus, InboxEvent] = Lifecycle(
    "inbox item",
    {
        InboxStatus.HELD: {
            InboxEvent.RECALLED: InboxStatus.RECALLED,
            InboxEvent.CORRECTED: InboxStatus.SUPERSEDED,
            InboxEvent.PURGED: InboxStatus.PURGED,
        },
        InboxStatus.SUPERSEDED: {
            InboxEvent.RECALLED: InboxStatus.RECALLED,
            InboxEvent.CORRECTED: InboxStatus.SUPERSEDED,
            InboxEvent.PURGED: InboxStatus.PURGED,
        },
        # A recall is final: a later notice of either kind leaves the copy recalled (SPEC §10.2);
        # only the end of its retention destroys its content.
        InboxStatus.RECALLED: {
            InboxEvent.RECALLED: InboxStatus.RECALLED,
            InboxEvent.CORRECTED: InboxStatus.RECALLED,
            InboxEvent.PURGED: InboxStatus.PURGED,
        },
        # Purged is final: a notice that arrives afterwards is applied to nothing (SPEC §11.13).
        InboxStatus.PURGED: {InboxEvent.RECALLED: InboxStatus.PURGED, InboxEvent.CORRECTED: InboxStatus.PURGED},
    },
)


# --- original item (SPEC §10.1) ------------------------------------------------------------


class OriginalState(StrEnum):
    """An item version this node originated; kept as ``recalled_at`` and ``purged_at`` (null or not)."""

    ACTIVE = "active"
    RECALLED = "recalled"
    PURGED = "purged"


class OriginalEvent(StrEnum):
    """What the originator can do to its own item version, and the end of its retention."""

    RECALLED = "recalled"
    PURGED = "purged"


ORIGINAL_ITEM: Lifecycle[OriginalState, OriginalEvent] = Lifecycle(
    "original item",
    {
        OriginalState.ACTIVE: {
            OriginalEvent.RECALLED: OriginalState.RECALLED,
            OriginalEvent.PURGED: OriginalState.PURGED,
        },
        # Recalling again re-sends a fresh notice; the item stays recalled.
        OriginalState.RECALLED: {
            OriginalEvent.RECALLED: OriginalState.RECALLED,
            OriginalEvent.PURGED: OriginalState.PURGED,
        },
        # A purged version can still be recalled: the notice reaches holders that keep it longer.
        OriginalState.PURGED: {OriginalEvent.RECALLED: OriginalState.PURGED},
    },
)


# --- consent request (SPEC §9.4.1) ---------------------------------------------------------


class Direction(StrEnum):
    """A consent request this node sent or received."""

    INCOMING = "incoming"
    OUTGOING = "outgoing"


class ConsentRequestState(StrEnum):
    """Where a consent request stands, on either side."""

    PENDING = "pending"
    GRANTED = "granted"
    DENIED = "denied"


class ConsentRequestEvent(StrEnum):
    """The originator's decision (made here, or received from it)."""

    GRANTED = "granted"
    DENIED = "denied"


CONSENT_REQUEST: Lifecycle[ConsentRequestState, ConsentRequestEvent] = Lifecycle(
    "consent request",
    {
        ConsentRequestState.PENDING: {
            ConsentRequestEvent.GRANTED: ConsentRequestState.GRANTED,
            ConsentRequestEvent.DENIED: ConsentRequestState.DENIED,
        },
        ConsentRequestState.GRANTED: {},
        ConsentRequestState.DENIED: {},
    },
)


# --- control message (SPEC §11.9) ----------------------------------------------------------


class ControlRpc(StrEnum):
    """The Exchange call a control message travels by."""

    REQUEST_CONSENT = "RequestConsent"
    SEND_CONSENT_DECISION = "SendConsentDecision"
    NOTIFY = "Notify"
    #: A holder's signed acknowledgement of a notice, passed upstream (SPEC §10.3).
    ACKNOWLEDGE = "Acknowledge"
    #: A roster version this node applied, passed on to every other member (SPEC §11.12).
    PUBLISH_ROSTER = "PublishRoster"
    #: An agreement proposal, countersignature or rejection, to the other party (SPEC §6.4).
    AMEND_AGREEMENT = "AmendAgreement"


class ControlState(StrEnum):
    """Whether the peer has acknowledged a control message."""

    PENDING = "pending"
    ACKNOWLEDGED = "acknowledged"


class ControlEvent(StrEnum):
    """What can happen to a control message."""

    ATTEMPT_FAILED = "attempt_failed"
    ACKNOWLEDGED = "acknowledged"
    #: Asked to send it again (a recall following an envelope that landed after it).
    REARMED = "rearmed"


CONTROL_MESSAGE: Lifecycle[ControlState, ControlEvent] = Lifecycle(
    "control message",
    {
        ControlState.PENDING: {
            ControlEvent.ATTEMPT_FAILED: ControlState.PENDING,
            ControlEvent.ACKNOWLEDGED: ControlState.ACKNOWLEDGED,
            ControlEvent.REARMED: ControlState.PENDING,
        },
        ControlState.ACKNOWLEDGED: {ControlEvent.REARMED: ControlState.PENDING},
    },
)


class NoticeKind(StrEnum):
    """A signed notice this node issued or received (SPEC §10, §9.4.3)."""

    RECALL = "recall"
    CORRECTION = "correction"
    #: A consent revocation this node issued or applied (SPEC §9.4.3).
    REVOCATION = "revocation"


# --- agreement proposal (SPEC §6.4) --------------------------------------------------------


class ProposalState(StrEnum):
    """Where a proposed agreement version stands, at the proposer and at the counterparty."""

    PROPOSED = "proposed"
    COUNTERSIGNED = "countersigned"
    REJECTED = "rejected"
    #: A newer version was proposed or took effect before this one was decided.
    SUPERSEDED = "superseded"


class ProposalEvent(StrEnum):
    """What the counterparty decided, or that the pair moved past the proposal."""

    COUNTERSIGNED = "countersigned"
    REJECTED = "rejected"
    SUPERSEDED = "superseded"


AGREEMENT_PROPOSAL: Lifecycle[ProposalState, ProposalEvent] = Lifecycle(
    "agreement proposal",
    {
        ProposalState.PROPOSED: {
            ProposalEvent.COUNTERSIGNED: ProposalState.COUNTERSIGNED,
            ProposalEvent.REJECTED: ProposalState.REJECTED,
            ProposalEvent.SUPERSEDED: ProposalState.SUPERSEDED,
        },
        ProposalState.COUNTERSIGNED: {},
        ProposalState.REJECTED: {},
        ProposalState.SUPERSEDED: {},
    },
)
