"""The public, typed client of a node's ``Desk`` service (SPEC §11.8).

Used by the CLI, the demo, the harness and users' own programs. Every call returns the
``Desk`` service's own typed messages (``node.wire.desk_pb2``, described once, in
``proto/intelshare/v1/desk.proto``) or raises a typed error: the desk's refusals come
back as the ``node.errors.DeskError`` subclass the node raised (``NotFoundError``,
``InvalidRequestError``, ``FailedPreconditionError``, ``PermissionDeniedError``); a
node that does not answer is ``NodeUnavailableError``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.message import Message

from node.config.officers import OFFICER_HEADER, TOKEN_HEADER, token_path
from node.errors import (
    DeskError,
    FailedPreconditionError,
    InvalidRequestError,
    NodeFailureError,
    NodeUnavailableError,
    NotAuthenticatedError,
    NotFoundError,
    PermissionDeniedError,
    StoredDataError,
)
from node.wire import desk_pb2, desk_pb2_grpc
from protocol.agreement import Agreement
from protocol.errors import IntelshareError
from protocol.item import RawData, ReportTemplate
from protocol.label import Label

__all__ = ["DeskClient", "DeskError"]

#: The desk's statuses and the errors they stand for (``node.rpc.desk.status_for``).
_ERRORS: dict[grpc.StatusCode, type[IntelshareError]] = {
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidRequestError,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPreconditionError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.UNAUTHENTICATED: NotAuthenticatedError,
    grpc.StatusCode.DATA_LOSS: StoredDataError,
    grpc.StatusCode.UNAVAILABLE: NodeUnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: NodeUnavailableError,
}


def _submit_request(
    label: Label,
    item: ReportTemplate | RawData,
    recipients: Sequence[str],
    suite: str = "",
    item_id: str = "",
    reason: str = "",
) -> desk_pb2.SubmitRequest:
    return desk_pb2.SubmitRequest(
        label_json=label.model_dump_json(),
        item_json=item.model_dump_json(),
        recipients=list(recipients),
        suite=suite,
        item_id=item_id,
        reason=reason,
    )


class DeskClient:
    """A node officer's client over the node's unix socket."""

    def __init__(self, socket_path: Path, *, officer: str, token: str, deadline: float = 15.0) -> None:
        self.channel = grpc.insecure_channel(f"unix:{socket_path}")
        self._stub = desk_pb2_grpc.DeskStub(self.channel)
        self.deadline = deadline
        self.officer = officer
        # Every call names the officer and carries the token the node checks (SPEC §11.8).
        self._metadata = ((OFFICER_HEADER, officer), (TOKEN_HEADER, token))

    @classmethod
    def for_officer(cls, node_dir: Path, socket_path: Path, officer: str, **kwargs: float) -> DeskClient:
        """A client for ``officer``, with the token kept in the node's directory."""
        path = token_path(node_dir, officer)
        try:
            token = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise NotAuthenticatedError(f"no token for officer {officer!r} at {path}: {exc.strerror}") from exc
        return cls(socket_path, officer=officer, token=token, **kwargs)

    def close(self) -> None:
        """Close the channel."""
        self.channel.close()

    def __enter__(self) -> DeskClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, request: Message) -> Any:
        try:
            return getattr(self._stub, method)(request, timeout=self.deadline, metadata=self._metadata)
        except grpc.RpcError as exc:
            code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
            details = (exc.details() if hasattr(exc, "details") else "") or code.name
            error = _ERRORS.get(code)
            if error is None:
                raise NodeFailureError(f"the node failed: {code.name}: {details}") from exc
            raise error(details) from exc

    def submit(
        self, label: Label, item: ReportTemplate | RawData, recipients: Sequence[str], suite: str = ""
    ) -> desk_pb2.SubmitResponse:
        """Share a new item, each recipient under its own agreement."""
        reply: desk_pb2.SubmitResponse = self._call("Submit", _submit_request(label, item, recipients, suite))
        return reply

    def submit_batch(
        self, items: Sequence[tuple[Label, ReportTemplate | RawData, Sequence[str]]]
    ) -> list[desk_pb2.SubmitResponse]:
        """Share several new items in one step (one batch signature over them, SPEC §4.6)."""
        return self.submit_requests([_submit_request(*item) for item in items])

    def submit_requests(self, requests: Sequence[desk_pb2.SubmitRequest]) -> list[desk_pb2.SubmitResponse]:
        """Submit wire requests built once, in one ``SubmitBatch`` (a program that sends one item many times)."""
        reply: desk_pb2.SubmitBatchResponse = self._call("SubmitBatch", desk_pb2.SubmitBatchRequest(items=requests))
        return list(reply.results)

    def correct(
        self,
        item_id: str,
        label: Label,
        item: ReportTemplate | RawData,
        recipients: Sequence[str],
        reason: str = "",
    ) -> desk_pb2.SubmitResponse:
        """Issue the next version of an item this node originated (SPEC §10.2); ``reason`` goes to its holders."""
        request = _submit_request(label, item, recipients, item_id=item_id, reason=reason)
        reply: desk_pb2.SubmitResponse = self._call("Submit", request)
        return reply

    def reshare(self, item_id: str, recipients: Sequence[str], version: int = 1) -> desk_pb2.SubmitResponse:
        """Pass a held item on."""
        request = desk_pb2.ReshareRequest(item_id=item_id, item_version=version, recipients=list(recipients))
        reply: desk_pb2.SubmitResponse = self._call("Reshare", request)
        return reply

    def inbox(self, limit: int = 100) -> list[desk_pb2.InboxEntry]:
        """Held items, newest first."""
        reply: desk_pb2.ListInboxResponse = self._call("ListInbox", desk_pb2.ListInboxRequest(limit=limit))
        return list(reply.entries)

    def read(self, item_id: str, version: int = 1) -> desk_pb2.ReadItemResponse:
        """Read a held item (audited as an officer read); version 0 is the newest held."""
        request = desk_pb2.ReadItemRequest(item_id=item_id, item_version=version)
        reply: desk_pb2.ReadItemResponse = self._call("ReadItem", request)
        return reply

    def ask_consent(
        self, item_id: str, third_party: str, purpose: str, version: int = 1
    ) -> desk_pb2.AskConsentResponse:
        """Ask the originator for consent to pass an item to ``third_party``."""
        request = desk_pb2.AskConsentRequest(
            item_id=item_id, item_version=version, third_party=third_party, purpose=purpose
        )
        reply: desk_pb2.AskConsentResponse = self._call("AskConsent", request)
        return reply

    def consent_requests(self, state: str = "") -> list[desk_pb2.ConsentRequestEntry]:
        """Consent requests, incoming and outgoing."""
        request = desk_pb2.ListConsentRequestsRequest(state=state)
        reply: desk_pb2.ListConsentRequestsResponse = self._call("ListConsentRequests", request)
        return list(reply.requests)

    def decide(
        self,
        request_id: str,
        *,
        grant: bool,
        reason: str = "",
        transferable: bool = False,
        valid_days: int = 30,
        conditions: Sequence[str] = (),
    ) -> desk_pb2.DecideConsentResponse:
        """Grant or deny an incoming consent request; a grant may carry conditions (SPEC §9.4.4)."""
        request = desk_pb2.DecideConsentRequest(
            request_id=request_id,
            grant=grant,
            reason=reason,
            transferable=transferable,
            valid_days=valid_days,
            conditions=list(conditions),
        )
        reply: desk_pb2.DecideConsentResponse = self._call("DecideConsent", request)
        return reply

    def recall(self, item_id: str, reason: str, version: int = 1) -> desk_pb2.RecallResponse:
        """Recall an item this node originated."""
        request = desk_pb2.RecallRequest(item_id=item_id, item_version=version, reason=reason)
        reply: desk_pb2.RecallResponse = self._call("Recall", request)
        return reply

    def audit(self, after_seq: int = 0, limit: int = 1000, event: str = "", item_id: str = "") -> list[dict[str, Any]]:
        """Audit entries as JSON objects (fields as in SPEC §11.4, ``at`` as RFC 3339 UTC), of one item if given."""
        request = desk_pb2.QueryAuditRequest(after_seq=after_seq, limit=limit, event=event, item_id=item_id)
        reply: desk_pb2.QueryAuditResponse = self._call("QueryAudit", request)
        return [json.loads(row.json) | {"at": row.at} for row in reply.rows]

    def outbox(self, state: str = "") -> list[desk_pb2.OutboxEntry]:
        """Outbox entries, oldest first."""
        reply: desk_pb2.OutboxResponse = self._call("Outbox", desk_pb2.OutboxRequest(state=state))
        return list(reply.entries)

    def status(self) -> desk_pb2.StatusResponse:
        """The node's status line."""
        reply: desk_pb2.StatusResponse = self._call("Status", desk_pb2.StatusRequest())
        return reply

    def wait_decided(self, request_id: str, timeout: float = 10.0) -> desk_pb2.ConsentRequestEntry | None:
        """Wait until an outgoing consent request is granted or denied; None if not within ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            for entry in self.consent_requests():
                if entry.request_id == request_id and entry.direction == "outgoing" and entry.state != "pending":
                    return entry
            if time.monotonic() > deadline:
                return None
            time.sleep(0.05)

    def grants(self) -> list[desk_pb2.GrantEntry]:
        """The grants this node signed or was given (not those only inside received chains)."""
        reply: desk_pb2.ListGrantsResponse = self._call("ListGrants", desk_pb2.ListGrantsRequest())
        return list(reply.grants)

    def grant_onward(
        self,
        item_id: str,
        grantee: str,
        *,
        version: int = 1,
        valid_days: int = 30,
        transferable: bool = False,
        conditions: Sequence[str] = (),
    ) -> desk_pb2.GrantEntry:
        """Sign the onward grant that lets this node pass a received item to ``grantee`` (SPEC §9.4.4)."""
        request = desk_pb2.GrantOnwardRequest(
            item_id=item_id,
            item_version=version,
            grantee=grantee,
            valid_days=valid_days,
            transferable=transferable,
            conditions=list(conditions),
        )
        reply: desk_pb2.GrantEntry = self._call("GrantOnward", request)
        return reply

    def revoke_grant(self, grant_id: str, reason: str) -> desk_pb2.RevokeGrantResponse:
        """Revoke a grant this node signed; the revocation follows the item to every holder (SPEC §9.4.3)."""
        reply: desk_pb2.RevokeGrantResponse = self._call(
            "RevokeGrant", desk_pb2.RevokeGrantRequest(grant_id=grant_id, reason=reason)
        )
        return reply

    def agreements(self) -> desk_pb2.ListAgreementsResponse:
        """The agreements this node holds and every proposal sent or received (SPEC §6.4)."""
        reply: desk_pb2.ListAgreementsResponse = self._call("ListAgreements", desk_pb2.ListAgreementsRequest())
        return reply

    def held_agreement(self, other: str) -> desk_pb2.HeldAgreement | None:
        """The agreement held with ``other``, if any."""
        return next((a for a in self.agreements().agreements if other in a.parties), None)

    def propose_agreement(self, agreement: Agreement, note: str = "") -> desk_pb2.AgreementProposalEntry:
        """Propose a new version to the agreement's other party; this node signs it (SPEC §6.4)."""
        request = desk_pb2.ProposeAgreementRequest(agreement_json=agreement.model_dump_json(), note=note)
        reply: desk_pb2.AgreementProposalEntry = self._call("ProposeAgreement", request)
        return reply

    def countersign(self, proposal_id: str) -> desk_pb2.AgreementProposalEntry:
        """Countersign a proposal received: the version takes effect on both nodes."""
        request = desk_pb2.DecideAgreementRequest(proposal_id=proposal_id, countersign=True)
        reply: desk_pb2.AgreementProposalEntry = self._call("DecideAgreement", request)
        return reply

    def reject_agreement(self, proposal_id: str, reason: str) -> desk_pb2.AgreementProposalEntry:
        """Reject a proposal received, with a reason the proposer is sent."""
        request = desk_pb2.DecideAgreementRequest(proposal_id=proposal_id, countersign=False, reason=reason)
        reply: desk_pb2.AgreementProposalEntry = self._call("DecideAgreement", request)
        return reply

    def wait_settled(self, envelope_ids: Sequence[str], timeout: float = 20.0) -> dict[str, desk_pb2.OutboxEntry]:
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
