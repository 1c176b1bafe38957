"""The local ``Desk`` servicer for the node's own officers (SPEC §11.8).

Served on a unix socket in the node's directory (owner-only), so access control is the
file system's. An officer's request that cannot be carried out is answered with the
status its error names (``node.errors``): NOT_FOUND, INVALID_ARGUMENT,
FAILED_PRECONDITION or PERMISSION_DENIED, with a plain message; the CLI turns each
into its own exit code.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from datetime import timedelta
from enum import StrEnum
from functools import wraps
from typing import Any, TypeVar

import grpc
from pydantic import ValidationError

from node import audit
from node.audit import AuditEvent
from node.config.officers import OFFICER_HEADER, TOKEN_HEADER, Officer, OfficerRole
from node.errors import (
    DeskError,
    IllegalTransitionError,
    InvalidRequestError,
    NotAuthenticatedError,
    PermissionDeniedError,
    StoredDataError,
)
from node.lifecycle import ConsentRequestState, OutboxState
from node.rpc.port import NodePort
from node.rpc.views import grant_entry, grant_id_of, iso, proposal_entry, submit_response
from node.services import agreements, consent, egress, holdings, notices
from node.services.egress import NewItem
from node.store import ConsentGrantRow, InboxItem, OriginalItem
from node.wire import desk_pb2, desk_pb2_grpc
from protocol.agreement import Agreement
from protocol.envelope import Suite
from protocol.errors import IntelshareError
from protocol.item import item_from_bytes
from protocol.label import Label

__all__ = ["DeskServicer", "status_for"]

Context = grpc.aio.ServicerContext[Any, Any]
log = logging.getLogger("intelshare.node")
R = TypeVar("R")
E = TypeVar("E", bound=StrEnum)


def status_for(exc: Exception) -> tuple[grpc.StatusCode, str] | None:
    """The status and message an officer's failed request is answered with; None for a node fault."""
    if isinstance(exc, DeskError):
        return grpc.StatusCode[exc.status], str(exc)
    if isinstance(exc, IllegalTransitionError):
        return grpc.StatusCode.FAILED_PRECONDITION, str(exc)
    if isinstance(exc, StoredDataError):
        return grpc.StatusCode.DATA_LOSS, str(exc)
    if isinstance(exc, ValidationError):
        return grpc.StatusCode.INVALID_ARGUMENT, str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
    if isinstance(exc, IntelshareError | ValueError):
        return grpc.StatusCode.INVALID_ARGUMENT, str(exc)
    return None


#: The officer the current desk call was authenticated as (set per call, read by the handlers).
_OFFICER: ContextVar[Officer] = ContextVar("officer")

Handler = Callable[["DeskServicer", Any, Context], Awaitable[R]]


def _desk_call(*roles: OfficerRole) -> Callable[[Handler[R]], Handler[R]]:
    """Authenticate the caller as one of the officers allowed ``roles``, and answer mistakes with their status."""

    def decorate(handler: Handler[R]) -> Handler[R]:
        @wraps(handler)
        async def wrapped(self: DeskServicer, request: Any, context: Context) -> R:
            try:
                officer = self._authenticate(context)
                if officer.role not in roles:
                    raise PermissionDeniedError(
                        f"{officer.name} is an {officer.role.value}: it may not {handler.__name__}"
                    )
                _OFFICER.set(officer)
                return await handler(self, request, context)
            except Exception as exc:
                if isinstance(exc, StoredDataError):  # the call's job was rolled back: audit in one of its own
                    await self._record_damage(handler.__name__, exc)
                answer = status_for(exc)
                if answer is None:
                    raise
                await context.abort(*answer)
                raise  # unreachable: abort raises

        return wrapped

    return decorate


#: Every officer may read the log, the outbox and the requests; only ``officer`` acts or reads content.
_READ = (OfficerRole.OFFICER, OfficerRole.AUDITOR)
_ACT = (OfficerRole.OFFICER,)


def _choice(enum: type[E], text: str, what: str) -> E | None:
    """An optional filter given as its string value; unknown values are listed."""
    if not text:
        return None
    try:
        return enum(text)
    except ValueError:
        raise InvalidRequestError(
            f"unknown {what} {text!r}; expected one of {', '.join(e.value for e in enum)}"
        ) from None


class DeskServicer(desk_pb2_grpc.DeskServicer):  # type: ignore[misc]  # generated base
    """Officer operations; each one calls a plain function in ``node.services``."""

    def __init__(self, port: NodePort) -> None:
        self.port = port

    @property
    def _officer(self) -> str:
        """How entries name the officer of this call: ``name@MEMBER``."""
        return f"{_OFFICER.get().name}@{self.port.state.me}"

    def _authenticate(self, context: Context) -> Officer:
        metadata = dict(context.invocation_metadata() or ())
        name, token = metadata.get(OFFICER_HEADER), metadata.get(TOKEN_HEADER)
        officer = None if not name or not token else self.port.officers.authenticate(str(name), str(token))
        if officer is None:
            raise NotAuthenticatedError("the desk call names no officer of this node, or not with their token")
        return officer

    async def _record_damage(self, operation: str, error: StoredDataError) -> None:
        """Audit stored data that failed a desk call (SPEC §11.5); the officer still gets DATA_LOSS."""
        try:
            await self.port.db(
                holdings.record_stored_data_error,
                operation=operation,
                error=error,
                actor=self._officer,
                now=self.port.now(),
            )
        except Exception:  # a log that refuses appends (LogTamperedError) must not hide the first error
            log.exception("could not audit stored data that failed %s", operation)

    async def _item_id(self, prefix: str) -> str:
        """The held item a request names by its id or a unique prefix of it (``holdings.resolve_item_id``)."""
        return await self.port.db(holdings.resolve_item_id, prefix=prefix)

    def _suite(self, name: str) -> Suite:
        return Suite(name) if name else self.port.default_suite

    def _new_item(self, request: desk_pb2.SubmitRequest) -> NewItem:
        return NewItem(
            Label.model_validate_json(request.label_json),
            item_from_bytes(request.item_json.encode()),
            tuple(request.recipients),
            self._suite(request.suite),
        )

    @_desk_call(*_ACT)
    async def Submit(self, request: desk_pb2.SubmitRequest, context: Context) -> desk_pb2.SubmitResponse:
        new = self._new_item(request)
        if request.item_id:  # a correction needs the version it supersedes: one database step
            result = await self.port.db(
                egress.submit_correction,
                item_id=request.item_id,
                label=new.label,
                item=new.item,
                recipients=new.recipients,
                suite=new.suite,
                now=self.port.now(),
                reason=request.reason,
            )
        else:
            (result,) = await self.port.db(egress.submit_many, requests=[new], now=self.port.now())
        self.port.hand_over(result.outcomes)
        return submit_response(result)

    @_desk_call(*_ACT)
    async def SubmitBatch(self, request: desk_pb2.SubmitBatchRequest, context: Context) -> desk_pb2.SubmitBatchResponse:
        if any(item.item_id for item in request.items):
            raise InvalidRequestError("corrections are submitted one at a time")
        # One database job: the batch's attestations share one batch signature, and so do
        # its headers (SPEC §4.6).
        items = [self._new_item(r) for r in request.items]
        results = await self.port.db(egress.submit_many, requests=items, now=self.port.now())
        for result in results:
            self.port.hand_over(result.outcomes)
        return desk_pb2.SubmitBatchResponse(results=[submit_response(r) for r in results])

    @_desk_call(*_ACT)
    async def Reshare(self, request: desk_pb2.ReshareRequest, context: Context) -> desk_pb2.SubmitResponse:
        result = await self.port.db(
            egress.reshare,
            item_id=await self._item_id(request.item_id),
            item_version=request.item_version or 1,
            recipients=list(request.recipients),
            suite=self._suite(request.suite),
            now=self.port.now(),
        )
        self.port.hand_over(result.outcomes)
        return submit_response(result)

    @_desk_call(*_READ)
    async def ListInbox(self, request: desk_pb2.ListInboxRequest, context: Context) -> desk_pb2.ListInboxResponse:
        rows = await self.port.db(holdings.inbox, limit=request.limit or 100)
        return desk_pb2.ListInboxResponse(entries=[self._entry(row) for row in rows])

    def _entry(self, row: InboxItem) -> desk_pb2.InboxEntry:
        # The signed label only (SPEC §11.5): the unsigned columns beside it serve queries.
        attestation = holdings.attestation_of(row)
        label = attestation.label
        state = self.port.state
        return desk_pb2.InboxEntry(
            item_id=row.item_id,
            item_version=row.item_version,
            originator=attestation.originator,
            sender=row.sender,
            band=label.band.title,
            originator_marking=label.originator_marking,
            reader_marking=state.roster.marking(state.me, label.band) or "",
            category=label.category.value,
            topics=list(label.topics),
            received_at=iso(row.received_at),
            status=row.status.value,
            envelope_id=row.envelope_id,
        )

    def _original_entry(self, row: OriginalItem, label: Label) -> desk_pb2.InboxEntry:
        me = self.port.state.me
        return desk_pb2.InboxEntry(
            item_id=row.item_id,
            item_version=row.item_version,
            originator=me,
            sender=me,
            band=label.band.title,
            originator_marking=label.originator_marking,
            reader_marking=label.originator_marking,
            category=label.category.value,
            topics=list(label.topics),
            received_at=iso(row.created_at),
            status=row.state.value if row.recalled_at or row.purged_at else "original",
        )

    @_desk_call(*_ACT)
    async def ReadItem(self, request: desk_pb2.ReadItemRequest, context: Context) -> desk_pb2.ReadItemResponse:
        read = await self.port.db(
            holdings.read_item,
            item_id=await self._item_id(request.item_id),
            item_version=request.item_version,  # 0: the newest version held
            officer=self._officer,
            now=self.port.now(),
        )
        row = read.row
        entry = self._entry(row) if isinstance(row, InboxItem) else self._original_entry(row, read.label)
        return desk_pb2.ReadItemResponse(
            entry=entry,
            label_json=read.label.model_dump_json(),
            item_json=read.item.model_dump_json(),
            consent_chain_json=[c.payload.decode() for c in read.chain],
        )

    @_desk_call(*_ACT)
    async def AskConsent(self, request: desk_pb2.AskConsentRequest, context: Context) -> desk_pb2.AskConsentResponse:
        signed, originator = await self.port.db(
            consent.ask_consent,
            item_id=await self._item_id(request.item_id),
            item_version=request.item_version or 1,
            third_party=request.third_party,
            purpose=request.purpose or "not stated",
            now=self.port.now(),
        )
        request_id = json.loads(signed.payload)["request_id"]
        # Queued durably with the request; wait briefly so the officer sees a quick answer.
        ack = await self.port.await_ack(f"{signed.digest}:{originator}", timeout=5.0)
        if ack is None:
            return desk_pb2.AskConsentResponse(
                request_id=request_id, state="pending", reason="originator not reached yet; the request will be retried"
            )
        return desk_pb2.AskConsentResponse(
            request_id=request_id, state=ack.reason.lower() or "pending", reason=ack.detail
        )

    @_desk_call(*_READ)
    async def ListConsentRequests(
        self, request: desk_pb2.ListConsentRequestsRequest, context: Context
    ) -> desk_pb2.ListConsentRequestsResponse:
        state_filter = _choice(ConsentRequestState, request.state, "consent request state")
        rows = await self.port.db(holdings.consent_requests, state_filter=state_filter)
        return desk_pb2.ListConsentRequestsResponse(
            requests=[
                desk_pb2.ConsentRequestEntry(
                    request_id=r.request_id,
                    direction=r.direction.value,
                    item_id=r.item_id,
                    item_version=r.item_version,
                    requester=r.requester,
                    third_party=r.third_party,
                    purpose=r.purpose,
                    state=r.state.value,
                    created_at=iso(r.created_at),
                    decided_at=iso(r.decided_at),
                    reason=r.reason or "",
                    grant_id=grant_id_of(r.decision),
                )
                for r in rows
            ]
        )

    @_desk_call(*_ACT)
    async def DecideConsent(
        self, request: desk_pb2.DecideConsentRequest, context: Context
    ) -> desk_pb2.DecideConsentResponse:
        request_id = await self.port.db(holdings.resolve_request_id, prefix=request.request_id)
        decision = await self.port.db(
            consent.decide_consent,
            request_id=request_id,
            grant=request.grant,
            reason=request.reason,
            transferable=request.transferable,
            valid_for=timedelta(days=request.valid_days or 30),
            conditions=tuple(request.conditions),
            now=self.port.now(),
            by=self._officer,
        )
        grant_id = json.loads(decision.payload).get("grant_id", "") if request.grant else ""
        return desk_pb2.DecideConsentResponse(
            request_id=request_id, state="granted" if request.grant else "denied", grant_id=grant_id
        )

    @_desk_call(*_ACT)
    async def Recall(self, request: desk_pb2.RecallRequest, context: Context) -> desk_pb2.RecallResponse:
        notice, recipients = await self.port.db(
            notices.recall,
            item_id=await self._item_id(request.item_id),
            item_version=request.item_version or 1,
            reason=request.reason or "recalled by the originator",
            now=self.port.now(),
        )
        return desk_pb2.RecallResponse(recall_id=json.loads(notice.payload)["recall_id"], notified=recipients)

    @_desk_call(*_READ)
    async def QueryAudit(self, request: desk_pb2.QueryAuditRequest, context: Context) -> desk_pb2.QueryAuditResponse:
        event = _choice(AuditEvent, request.event, "audit event")
        rows = await self.port.db(
            holdings.audit_page,
            after_seq=request.after_seq,
            limit=request.limit or 100,
            event=event,
            item_id=request.item_id or None,
        )
        out = []
        for row in rows:
            record = {field: getattr(row, field) for field in audit.FIELDS if field not in ("at", "detail")}
            record["detail"] = json.loads(row.detail)
            out.append(
                desk_pb2.AuditRow(
                    seq=row.seq,
                    at=audit.format_time(row.at),
                    event=row.event,
                    json=json.dumps(record, ensure_ascii=False),
                )
            )
        return desk_pb2.QueryAuditResponse(rows=out)

    @_desk_call(*_READ)
    async def Outbox(self, request: desk_pb2.OutboxRequest, context: Context) -> desk_pb2.OutboxResponse:
        state_filter = _choice(OutboxState, request.state, "outbox state")
        rows = await self.port.db(holdings.outbox, state_filter=state_filter)
        return desk_pb2.OutboxResponse(
            entries=[
                desk_pb2.OutboxEntry(
                    envelope_id=r.envelope_id,
                    recipient=r.recipient,
                    item_id=r.item_id,
                    state=r.state.value,
                    attempts=r.attempts,
                    reason=r.reason or "",
                    last_error=r.last_error or "",
                )
                for r in rows
            ]
        )

    @_desk_call(*_READ)
    async def Status(self, request: desk_pb2.StatusRequest, context: Context) -> desk_pb2.StatusResponse:
        status = await self.port.db(holdings.node_status)
        return desk_pb2.StatusResponse(
            member_id=self.port.state.me,
            roster_version=self.port.state.roster.version,
            audit_head=status.audit_head,
            outbox_pending=status.outbox_pending,
        )

    # --- agreements (SPEC §6.4) --------------------------------------------------------

    @_desk_call(*_ACT)
    async def ProposeAgreement(
        self, request: desk_pb2.ProposeAgreementRequest, context: Context
    ) -> desk_pb2.AgreementProposalEntry:
        agreement = Agreement.model_validate_json(request.agreement_json)
        now = self.port.now()
        row = await self.port.db(agreements.propose_agreement, agreement=agreement, note=request.note, now=now)
        return proposal_entry(row)

    @_desk_call(*_READ)
    async def ListAgreements(
        self, request: desk_pb2.ListAgreementsRequest, context: Context
    ) -> desk_pb2.ListAgreementsResponse:
        held, proposals = await self.port.db(agreements.list_agreements, now=self.port.now())
        return desk_pb2.ListAgreementsResponse(
            agreements=[
                desk_pb2.HeldAgreement(
                    agreement_id=h.agreement.agreement_id,
                    version=h.agreement.version,
                    parties=list(h.agreement.parties),
                    in_force=h.in_force,
                    agreement_json=h.agreement.model_dump_json(),
                )
                for h in held
            ],
            proposals=[proposal_entry(row) for row in proposals],
        )

    @_desk_call(*_ACT)
    async def DecideAgreement(
        self, request: desk_pb2.DecideAgreementRequest, context: Context
    ) -> desk_pb2.AgreementProposalEntry:
        if request.countersign:
            row = await self.port.db(
                agreements.countersign_proposal,
                proposal_id=request.proposal_id,
                officer=self._officer,
                now=self.port.now(),
            )
        else:
            row = await self.port.db(
                agreements.reject_proposal,
                proposal_id=request.proposal_id,
                reason=request.reason,
                officer=self._officer,
                now=self.port.now(),
            )
        return proposal_entry(row)

    # --- consent: revocation and onward grants (SPEC §9.4.3, §9.4.4) --------------------

    @_desk_call(*_ACT)
    async def RevokeGrant(self, request: desk_pb2.RevokeGrantRequest, context: Context) -> desk_pb2.RevokeGrantResponse:
        signed, told = await self.port.db(
            consent.revoke_grant,
            grant_id=request.grant_id,
            reason=request.reason or "revoked by the grantor",
            officer=self._officer,
            now=self.port.now(),
        )
        return desk_pb2.RevokeGrantResponse(revocation_id=json.loads(signed.payload)["revocation_id"], notified=told)

    @_desk_call(*_ACT)
    async def GrantOnward(self, request: desk_pb2.GrantOnwardRequest, context: Context) -> desk_pb2.GrantEntry:
        signed = await self.port.db(
            consent.grant_onward,
            item_id=request.item_id,
            item_version=request.item_version or 1,
            grantee=request.grantee,
            valid_for=timedelta(days=request.valid_days or 30),
            transferable=request.transferable,
            conditions=tuple(request.conditions),
            officer=self._officer,
            now=self.port.now(),
        )
        return grant_entry(signed.model_dump_json().encode(), None)

    @_desk_call(*_READ)
    async def ListGrants(self, request: desk_pb2.ListGrantsRequest, context: Context) -> desk_pb2.ListGrantsResponse:
        rows: list[ConsentGrantRow] = await self.port.db(consent.grants)
        return desk_pb2.ListGrantsResponse(grants=[grant_entry(r.statement, r.revoked_at) for r in rows])
