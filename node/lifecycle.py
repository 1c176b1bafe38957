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


OUTBOX_ENTRY: Lifecycle[OutboxState, OutboxEvent] = Lifecycle(
    "outbox entry",
    {
        OutboxState.PENDING: {
            OutboxEvent.ATTEMPT_FAILED: OutboxState.PENDING,  # retried after a backoff
            OutboxEvent.RECEIPT_ACCEPTED: OutboxState.DELIVERED,
            OutboxEvent.RECEIPT_REFUSED: OutboxState.REFUSED,
            OutboxEvent.RECALLED: OutboxState.WITHDRAWN,
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


class InboxEvent(StrEnum):
    """Notices from the originator that change a held copy."""

    RECALLED = "recalled"
    CORRECTED = "corrected"


INBOX_ITEM: Lifecycle[InboxStatus, InboxEvent] = Lifecycle(
    "inbox item",
    {
        InboxStatus.HELD: {InboxEvent.RECALLED: InboxStatus.RECALLED, InboxEvent.CORRECTED: InboxStatus.SUPERSEDED},
        InboxStatus.SUPERSEDED: {
            InboxEvent.RECALLED: InboxStatus.RECALLED,
            InboxEvent.CORRECTED: InboxStatus.SUPERSEDED,
        },
        # A recall is final: a later notice of either kind leaves the copy recalled (SPEC §10.2).
        InboxStatus.RECALLED: {InboxEvent.RECALLED: InboxStatus.RECALLED, InboxEvent.CORRECTED: InboxStatus.RECALLED},
    },
)


# --- original item (SPEC §10.1) ------------------------------------------------------------


class OriginalState(StrEnum):
    """An item version this node originated; kept as ``recalled_at`` (null or not)."""

    ACTIVE = "active"
    RECALLED = "recalled"


class OriginalEvent(StrEnum):
    """What the originator can do to its own item version."""

    RECALLED = "recalled"


ORIGINAL_ITEM: Lifecycle[OriginalState, OriginalEvent] = Lifecycle(
    "original item",
    {
        OriginalState.ACTIVE: {OriginalEvent.RECALLED: OriginalState.RECALLED},
        # Recalling again re-sends a fresh notice; the item stays recalled.
        OriginalState.RECALLED: {OriginalEvent.RECALLED: OriginalState.RECALLED},
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
    """A signed notice this node issued or received (SPEC §10)."""

    RECALL = "recall"
    CORRECTION = "correction"
    #: Allowed by the schema since migration 0001; no row of this kind is written yet.
    REVOCATION = "revocation"
