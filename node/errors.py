"""Typed errors of the node, grouped by who is at fault (SPEC §3.4).

``protocol.errors`` says whether bytes from someone else failed (``RemoteProtocolError``)
or this side asked for something forbidden (``LocalProtocolError``). The node adds the
errors an officer's request can meet at the desk, each with the gRPC status it is
answered with and the CLI exit code it becomes (README, "Exit codes"), and the error a
record's lifecycle raises on an illegal transition (``node.lifecycle``).
"""

from __future__ import annotations

from enum import Enum
from typing import ClassVar

from protocol.errors import IntelshareError, LocalProtocolError, RemoteProtocolError

__all__ = [
    "DeskError",
    "FailedPreconditionError",
    "IllegalTransitionError",
    "InvalidRequestError",
    "LogTamperedError",
    "NodeFailureError",
    "NodeUnavailableError",
    "NotAuthenticatedError",
    "NotFoundError",
    "PermissionDeniedError",
    "StoredDataError",
]


class DeskError(LocalProtocolError):
    """An officer's request cannot be carried out; the message says why.

    ``status`` names the gRPC status code the desk answers with; the desk client turns
    it back into the same subclass, so a program (and the CLI) can tell them apart.
    """

    status: ClassVar[str] = "INVALID_ARGUMENT"


class InvalidRequestError(DeskError):
    """The request itself is wrong: a bad field, a value out of range, a forbidden ask."""

    status = "INVALID_ARGUMENT"


class NotFoundError(DeskError):
    """The request names something this node does not have (an item, a request, an entry)."""

    status = "NOT_FOUND"


class FailedPreconditionError(DeskError):
    """The request is well formed but the record is not in a state that allows it."""

    status = "FAILED_PRECONDITION"


class PermissionDeniedError(DeskError):
    """This node may not do that (e.g. originate an item in another member's name)."""

    status = "PERMISSION_DENIED"


class NotAuthenticatedError(DeskError):
    """The desk call names no officer, or the officer's token is not theirs."""

    status = "UNAUTHENTICATED"


class IllegalTransitionError(LocalProtocolError):
    """A record was asked to move along a transition its lifecycle does not have.

    Raised by ``node.lifecycle.Lifecycle.next``; the desk answers it as a failed
    precondition (the record is in a state that does not allow the request).
    """

    def __init__(self, machine: str, state: Enum, event: Enum) -> None:
        super().__init__(f"{machine}: no transition from {state.value!r} on {event.name.lower()}")
        self.machine = machine
        self.state = state
        self.event = event


class StoredDataError(RemoteProtocolError):
    """Bytes this node stored earlier no longer verify or open (damage or tampering at rest).

    ``item`` names the item version whose stored copy failed, where there is one; the desk
    audits the failure (SPEC §11.5) and answers DATA_LOSS, which the CLI exits 9 with.
    """

    def __init__(self, message: str, *, item: tuple[str, int] | None = None) -> None:
        super().__init__(message)
        self.item = item


class LogTamperedError(StoredDataError):
    """The audit log is not the one this node wrote: it appends nothing more to it (SPEC §11.10.6)."""


class NodeUnavailableError(IntelshareError):
    """The node's desk did not answer: the node is not running, or not reachable in time."""


class NodeFailureError(IntelshareError):
    """The node failed while answering (a fault of the node, not of the request)."""
