"""The public, typed client of a node's ``Desk`` service (SPEC §11.8).

Used by the CLI, the demo, the harness and users' own programs. Every call returns a
frozen value (field names as in ``proto/intelshare/v1/desk.proto``) or raises a typed
error: the desk's refusals come back as the ``node.errors.DeskError`` subclass the node
raised (``NotFoundError``, ``InvalidRequestError``, ``FailedPreconditionError``,
``PermissionDeniedError``); a node that does not answer is ``NodeUnavailableError``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message

from node.errors import (
    DeskError,
    FailedPreconditionError,
    InvalidRequestError,
    NodeFailureError,
    NodeUnavailableError,
    NotFoundError,
    PermissionDeniedError,
    StoredDataError,
)
from node.wire import desk_pb2, desk_pb2_grpc
from protocol.errors import IntelshareError
from protocol.item import RawData, ReportTemplate
from protocol.label import Label

__all__ = [
    "ConsentAsked",
    "ConsentDecided",
    "ConsentRequest",
    "DeskClient",
    "DeskError",
    "InboxEntry",
    "ItemRead",
    "NodeStatus",
    "OutboxEntry",
    "Outcome",
    "Recalled",
    "Submitted",
]

T = TypeVar("T")

#: The desk's statuses and the errors they stand for (``node.rpc.desk.status_for``).
_ERRORS: dict[grpc.StatusCode, type[IntelshareError]] = {
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidRequestError,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPreconditionError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.DATA_LOSS: StoredDataError,
    grpc.StatusCode.UNAVAILABLE: NodeUnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: NodeUnavailableError,
}


def _flat(cls: type[T], message: Message) -> T:
    """A frozen value from a message whose fields are scalars or repeated scalars."""
    values: dict[str, Any] = {}
    for field in fields(cls):  # type: ignore[arg-type]
        value = getattr(message, field.name)
        values[field.name] = value if isinstance(value, str | bytes | int | float | bool) else tuple(value)
    return cls(**values)


@dataclass(frozen=True)
class Outcome:
    """The egress decision for one recipient."""

    recipient: str
    allowed: bool
    reason: str
    rule: str
    detail: str
    envelope_id: str
    delivery_state: str


@dataclass(frozen=True)
class Submitted:
    """A submission, correction or re-share: the item version and one outcome per recipient."""

    item_id: str
    item_version: int
    outcomes: tuple[Outcome, ...]

    @classmethod
    def from_pb(cls, message: desk_pb2.SubmitResponse) -> Submitted:
        """From the wire message."""
        return cls(message.item_id, message.item_version, tuple(_flat(Outcome, o) for o in message.outcomes))


@dataclass(frozen=True)
class InboxEntry:
    """A held item as the desk lists it (the label in both markings)."""

    item_id: str
    item_version: int
    originator: str
    sender: str
    band: str
    originator_marking: str
    reader_marking: str
    category: str
    topics: tuple[str, ...]
    received_at: str
    status: str
    envelope_id: str


@dataclass(frozen=True)
class ItemRead:
    """An officer's read of a held item (audited at the node)."""

    entry: InboxEntry
    label_json: str
    item_json: str
    consent_chain_json: tuple[str, ...]


@dataclass(frozen=True)
class ConsentAsked:
    """A consent request sent, and the originator's first answer if it came quickly."""

    request_id: str
    state: str
    reason: str


@dataclass(frozen=True)
class ConsentRequest:
    """A consent request, incoming or outgoing."""

    request_id: str
    direction: str
    item_id: str
    item_version: int
    requester: str
    third_party: str
    purpose: str
    state: str
    created_at: str
    decided_at: str
    reason: str


@dataclass(frozen=True)
class ConsentDecided:
    """The originator's decision on a request; ``grant_id`` when granted."""

    request_id: str
    state: str
    grant_id: str


@dataclass(frozen=True)
class Recalled:
    """A recall made, and who was notified."""

    recall_id: str
    notified: tuple[str, ...]


@dataclass(frozen=True)
class OutboxEntry:
    """An envelope in the node's outbox."""

    envelope_id: str
    recipient: str
    item_id: str
    state: str
    attempts: int
    reason: str
    last_error: str


@dataclass(frozen=True)
class NodeStatus:
    """The node's status line."""

    member_id: str
    roster_version: int
    audit_head: int
    outbox_pending: int


def _submit_request(
    label: Label, item: ReportTemplate | RawData, recipients: Sequence[str], suite: str = "", item_id: str = ""
) -> desk_pb2.SubmitRequest:
    return desk_pb2.SubmitRequest(
        label_json=label.model_dump_json(),
        item_json=item.model_dump_json(),
        recipients=list(recipients),
        suite=suite,
        item_id=item_id,
    )


class DeskClient:
    """A node officer's client over the node's unix socket."""

    def __init__(self, socket_path: Path, *, deadline: float = 15.0) -> None:
        self.channel = grpc.insecure_channel(f"unix:{socket_path}")
        self._stub = desk_pb2_grpc.DeskStub(self.channel)
        self.deadline = deadline

    def close(self) -> None:
        """Close the channel."""
        self.channel.close()

    def __enter__(self) -> DeskClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, request: Message) -> Any:
        try:
            return getattr(self._stub, method)(request, timeout=self.deadline)
        except grpc.RpcError as exc:
            code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
            details = (exc.details() if hasattr(exc, "details") else "") or code.name
            error = _ERRORS.get(code)
            if error is None:
                raise NodeFailureError(f"the node failed: {code.name}: {details}") from exc
            raise error(details) from exc

    def submit(
        self, label: Label, item: ReportTemplate | RawData, recipients: Sequence[str], suite: str = ""
    ) -> Submitted:
        """Share a new item, each recipient under its own agreement."""
        return Submitted.from_pb(self._call("Submit", _submit_request(label, item, recipients, suite)))

    def submit_batch(self, items: Sequence[tuple[Label, ReportTemplate | RawData, Sequence[str]]]) -> list[Submitted]:
        """Share several new items in one step (one batch signature over them, SPEC §4.6)."""
        request = desk_pb2.SubmitBatchRequest(items=[_submit_request(*item) for item in items])
        return [Submitted.from_pb(r) for r in self._call("SubmitBatch", request).results]

    def submit_requests(self, requests: Sequence[desk_pb2.SubmitRequest]) -> list[Submitted]:
        """Submit wire requests built once, in one ``SubmitBatch`` (a program that sends one item many times)."""
        reply = self._call("SubmitBatch", desk_pb2.SubmitBatchRequest(items=list(requests)))
        return [Submitted.from_pb(r) for r in reply.results]

    def correct(
        self, item_id: str, label: Label, item: ReportTemplate | RawData, recipients: Sequence[str]
    ) -> Submitted:
        """Issue the next version of an item this node originated (SPEC §10.2)."""
        return Submitted.from_pb(self._call("Submit", _submit_request(label, item, recipients, item_id=item_id)))

    def reshare(self, item_id: str, recipients: Sequence[str], version: int = 1) -> Submitted:
        """Pass a held item on."""
        request = desk_pb2.ReshareRequest(item_id=item_id, item_version=version, recipients=list(recipients))
        return Submitted.from_pb(self._call("Reshare", request))

    def inbox(self, limit: int = 100) -> list[InboxEntry]:
        """Held items, newest first."""
        return [_flat(InboxEntry, e) for e in self._call("ListInbox", desk_pb2.ListInboxRequest(limit=limit)).entries]

    def read(self, item_id: str, version: int = 1) -> ItemRead:
        """Read a held item (audited as an officer read)."""
        reply = self._call("ReadItem", desk_pb2.ReadItemRequest(item_id=item_id, item_version=version))
        return ItemRead(
            _flat(InboxEntry, reply.entry), reply.label_json, reply.item_json, tuple(reply.consent_chain_json)
        )

    def ask_consent(self, item_id: str, third_party: str, purpose: str, version: int = 1) -> ConsentAsked:
        """Ask the originator for consent to pass an item to ``third_party``."""
        request = desk_pb2.AskConsentRequest(
            item_id=item_id, item_version=version, third_party=third_party, purpose=purpose
        )
        return _flat(ConsentAsked, self._call("AskConsent", request))

    def consent_requests(self, state: str = "") -> list[ConsentRequest]:
        """Consent requests, incoming and outgoing."""
        reply = self._call("ListConsentRequests", desk_pb2.ListConsentRequestsRequest(state=state))
        return [_flat(ConsentRequest, r) for r in reply.requests]

    def decide(
        self, request_id: str, *, grant: bool, reason: str = "", transferable: bool = False, valid_days: int = 30
    ) -> ConsentDecided:
        """Grant or deny an incoming consent request."""
        request = desk_pb2.DecideConsentRequest(
            request_id=request_id, grant=grant, reason=reason, transferable=transferable, valid_days=valid_days
        )
        return _flat(ConsentDecided, self._call("DecideConsent", request))

    def recall(self, item_id: str, reason: str, version: int = 1) -> Recalled:
        """Recall an item this node originated."""
        request = desk_pb2.RecallRequest(item_id=item_id, item_version=version, reason=reason)
        return _flat(Recalled, self._call("Recall", request))

    def audit(self, after_seq: int = 0, limit: int = 1000, event: str = "") -> list[dict[str, Any]]:
        """Audit entries as JSON objects (fields as in SPEC §11.4, ``at`` as RFC 3339 UTC)."""
        request = desk_pb2.QueryAuditRequest(after_seq=after_seq, limit=limit, event=event)
        return [json.loads(row.json) | {"at": row.at} for row in self._call("QueryAudit", request).rows]

    def outbox(self, state: str = "") -> list[OutboxEntry]:
        """Outbox entries, oldest first."""
        return [_flat(OutboxEntry, e) for e in self._call("Outbox", desk_pb2.OutboxRequest(state=state)).entries]

    def status(self) -> NodeStatus:
        """The node's status line."""
        return _flat(NodeStatus, self._call("Status", desk_pb2.StatusRequest()))

    def wait_settled(self, envelope_ids: Sequence[str], timeout: float = 20.0) -> dict[str, OutboxEntry]:
        """Wait until each envelope left ``pending``; its outbox entry by id."""
        wanted = {e for e in envelope_ids if e}
        deadline = time.monotonic() + timeout
        while True:
            entries = {e.envelope_id: e for e in self.outbox() if e.envelope_id in wanted}
            if all(e.state != "pending" for e in entries.values()) and len(entries) == len(wanted):
                return entries
            if time.monotonic() > deadline:
                raise TimeoutError(f"deliveries still pending: {sorted(wanted)}")
            time.sleep(0.05)
