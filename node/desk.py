"""The local ``Desk`` servicer for the node's own officers (SPEC §11.1).

Served on a unix socket in the node's directory (owner-only), so access control is the
file system's. Officers' mistakes come back as INVALID_ARGUMENT or NOT_FOUND with a
plain message; the CLI shows it without a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from functools import wraps
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from node import audit, core
from node.server import audit_head, utcnow
from node.storage import ConsentRequestRow, InboxItem, OutboxEntry
from node.wire import desk_pb2, desk_pb2_grpc
from protocol.envelope import Suite
from protocol.errors import IntelshareError
from protocol.item import item_from_bytes
from protocol.label import Label
from protocol.policy import Decision

if TYPE_CHECKING:
    from node.server import Node

__all__ = ["DeskServicer"]

Context = grpc.aio.ServicerContext[Any, Any]
R = TypeVar("R")


def _officer_errors(
    handler: Callable[[DeskServicer, Any, Context], Awaitable[R]],
) -> Callable[[DeskServicer, Any, Context], Awaitable[R]]:
    """Turn an officer's mistake into a clear status instead of a server error."""

    @wraps(handler)
    async def wrapped(self: DeskServicer, request: Any, context: Context) -> R:
        try:
            return await handler(self, request, context)
        except (IntelshareError, ValidationError, ValueError) as exc:
            message = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, message)
            raise  # unreachable: abort raises

    return wrapped


def _outcome(outcome: core.Outcome) -> desk_pb2.Outcome:
    d: Decision = outcome.decision
    return desk_pb2.Outcome(
        recipient=outcome.recipient,
        allowed=d.allowed,
        reason=d.reason.value,
        rule=d.rule,
        detail=d.detail,
        envelope_id=outcome.envelope_id or "",
        delivery_state="pending" if d.allowed else "not sent",
    )


def _submit_response(result: core.SubmitResult) -> desk_pb2.SubmitResponse:
    return desk_pb2.SubmitResponse(
        item_id=result.item_id, item_version=result.item_version, outcomes=[_outcome(o) for o in result.outcomes]
    )


def _iso(at: datetime | None) -> str:
    return "" if at is None else audit.format_time(at)


class DeskServicer(desk_pb2_grpc.DeskServicer):  # type: ignore[misc]  # generated base
    """Officer operations; each one is a plain function in ``node.core`` or a query here."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def _suite(self, name: str) -> Suite:
        return Suite(name) if name else self.node.cfg.suite

    @_officer_errors
    async def Submit(self, request: desk_pb2.SubmitRequest, context: Context) -> desk_pb2.SubmitResponse:
        if request.item_id:  # a correction needs the version it supersedes: one database step
            result = await self.node.db(
                core.submit,
                label=Label.model_validate_json(request.label_json),
                item=item_from_bytes(request.item_json.encode()),
                recipients=list(request.recipients),
                suite=self._suite(request.suite),
                now=utcnow(),
                item_id=request.item_id,
            )
        else:
            result = (await self._submit_new([request]))[0]
        self.node.hand_over(result.outcomes)
        return _submit_response(result)

    @_officer_errors
    async def SubmitBatch(self, request: desk_pb2.SubmitBatchRequest, context: Context) -> desk_pb2.SubmitBatchResponse:
        if any(item.item_id for item in request.items):
            raise core.DeskError("corrections are submitted one at a time")
        results = await self._submit_new(list(request.items))
        for result in results:
            self.node.hand_over(result.outcomes)
        return desk_pb2.SubmitBatchResponse(results=[_submit_response(r) for r in results])

    async def _submit_new(self, requests: list[desk_pb2.SubmitRequest]) -> list[core.SubmitResult]:
        """Attest, decide, seal and store new items in one database job (``core.submit_many``).

        The batch's attestations share one batch signature, and so do its headers (SPEC §4.6).
        """
        items = [
            core.NewItem(
                Label.model_validate_json(r.label_json),
                item_from_bytes(r.item_json.encode()),
                tuple(r.recipients),
                self._suite(r.suite),
            )
            for r in requests
        ]
        return await self.node.db(core.submit_many, requests=items, now=utcnow())

    @_officer_errors
    async def Reshare(self, request: desk_pb2.ReshareRequest, context: Context) -> desk_pb2.SubmitResponse:
        result = await self.node.db(
            core.reshare,
            item_id=request.item_id,
            item_version=request.item_version or 1,
            recipients=list(request.recipients),
            suite=self._suite(request.suite),
            now=utcnow(),
        )
        self.node.hand_over(result.outcomes)
        return _submit_response(result)

    @_officer_errors
    async def ListInbox(self, request: desk_pb2.ListInboxRequest, context: Context) -> desk_pb2.ListInboxResponse:
        rows = await self.node.db(_inbox, limit=request.limit or 100)
        return desk_pb2.ListInboxResponse(entries=[self._entry(row) for row in rows])

    def _entry(self, row: InboxItem) -> desk_pb2.InboxEntry:
        label = Label.model_validate_json(row.label_json)
        roster = self.node.state.roster
        return desk_pb2.InboxEntry(
            item_id=row.item_id,
            item_version=row.item_version,
            originator=row.originator,
            sender=row.sender,
            band=label.band.title,
            originator_marking=label.originator_marking,
            reader_marking=roster.marking(self.node.state.me, label.band) or "",
            category=row.category,
            topics=list(label.topics),
            received_at=_iso(row.received_at),
            status=row.status,
            envelope_id=row.envelope_id,
        )

    @_officer_errors
    async def ReadItem(self, request: desk_pb2.ReadItemRequest, context: Context) -> desk_pb2.ReadItemResponse:
        officer = f"officer@{self.node.state.me}"
        row, label, item, chain = await self.node.db(
            core.read_item,
            item_id=request.item_id,
            item_version=request.item_version or 1,
            officer=officer,
            now=utcnow(),
        )
        entry = (
            self._entry(row)
            if isinstance(row, InboxItem)
            else desk_pb2.InboxEntry(
                item_id=row.item_id,
                item_version=row.item_version,
                originator=self.node.state.me,
                sender=self.node.state.me,
                band=label.band.title,
                originator_marking=label.originator_marking,
                reader_marking=label.originator_marking,
                category=label.category.value,
                topics=list(label.topics),
                received_at=_iso(row.created_at),
                status="recalled" if row.recalled_at else "original",
            )
        )
        return desk_pb2.ReadItemResponse(
            entry=entry,
            label_json=label.model_dump_json(),
            item_json=item.model_dump_json(),
            consent_chain_json=[c.payload.decode() for c in chain],
        )

    @_officer_errors
    async def AskConsent(self, request: desk_pb2.AskConsentRequest, context: Context) -> desk_pb2.AskConsentResponse:
        signed, originator = await self.node.db(
            core.ask_consent,
            item_id=request.item_id,
            item_version=request.item_version or 1,
            third_party=request.third_party,
            purpose=request.purpose or "not stated",
            now=utcnow(),
        )
        request_id = json.loads(signed.payload)["request_id"]
        # Queued durably with the request; wait briefly so the officer sees a quick answer.
        ack = await self.node.await_ack(f"{signed.digest}:{originator}", timeout=5.0)
        if ack is None:
            return desk_pb2.AskConsentResponse(
                request_id=request_id, state="pending", reason="originator not reached yet; the request will be retried"
            )
        return desk_pb2.AskConsentResponse(
            request_id=request_id, state=ack.reason.lower() or "pending", reason=ack.detail
        )

    @_officer_errors
    async def ListConsentRequests(
        self, request: desk_pb2.ListConsentRequestsRequest, context: Context
    ) -> desk_pb2.ListConsentRequestsResponse:
        rows = await self.node.db(_consent_requests, state_filter=request.state)
        return desk_pb2.ListConsentRequestsResponse(
            requests=[
                desk_pb2.ConsentRequestEntry(
                    request_id=r.request_id,
                    direction=r.direction,
                    item_id=r.item_id,
                    item_version=r.item_version,
                    requester=r.requester,
                    third_party=r.third_party,
                    purpose=r.purpose,
                    state=r.state,
                    created_at=_iso(r.created_at),
                    decided_at=_iso(r.decided_at),
                    reason=r.reason or "",
                )
                for r in rows
            ]
        )

    @_officer_errors
    async def DecideConsent(
        self, request: desk_pb2.DecideConsentRequest, context: Context
    ) -> desk_pb2.DecideConsentResponse:
        decision = await self.node.db(
            core.decide_consent,
            request_id=request.request_id,
            grant=request.grant,
            reason=request.reason,
            transferable=request.transferable,
            valid_for=timedelta(days=request.valid_days or 30),
            conditions=tuple(request.conditions),
            now=utcnow(),
            by=f"officer@{self.node.state.me}",
        )
        grant_id = json.loads(decision.payload).get("grant_id", "") if request.grant else ""
        return desk_pb2.DecideConsentResponse(
            request_id=request.request_id, state="granted" if request.grant else "denied", grant_id=grant_id
        )

    @_officer_errors
    async def Recall(self, request: desk_pb2.RecallRequest, context: Context) -> desk_pb2.RecallResponse:
        notice, recipients = await self.node.db(
            core.recall,
            item_id=request.item_id,
            item_version=request.item_version or 1,
            reason=request.reason or "recalled by the originator",
            now=utcnow(),
        )
        return desk_pb2.RecallResponse(recall_id=json.loads(notice.payload)["recall_id"], notified=recipients)

    @_officer_errors
    async def QueryAudit(self, request: desk_pb2.QueryAuditRequest, context: Context) -> desk_pb2.QueryAuditResponse:
        rows = await self.node.db(
            _audit_rows, after_seq=request.after_seq, limit=request.limit or 100, event=request.event or None
        )
        return desk_pb2.QueryAuditResponse(rows=rows)

    @_officer_errors
    async def Outbox(self, request: desk_pb2.OutboxRequest, context: Context) -> desk_pb2.OutboxResponse:
        rows = await self.node.db(_outbox, state_filter=request.state)
        return desk_pb2.OutboxResponse(
            entries=[
                desk_pb2.OutboxEntry(
                    envelope_id=r.envelope_id,
                    recipient=r.recipient,
                    item_id=r.item_id,
                    state=r.state,
                    attempts=r.attempts,
                    reason=r.reason or "",
                    last_error=r.last_error or "",
                )
                for r in rows
            ]
        )

    @_officer_errors
    async def Status(self, request: desk_pb2.StatusRequest, context: Context) -> desk_pb2.StatusResponse:
        head, pending = await self.node.db(_status)
        return desk_pb2.StatusResponse(
            member_id=self.node.state.me,
            roster_version=self.node.state.roster.version,
            audit_head=head,
            outbox_pending=pending,
        )


def _inbox(session: Session, state: core.NodeState, *, limit: int) -> list[InboxItem]:
    return list(session.scalars(select(InboxItem).order_by(InboxItem.received_at.desc()).limit(limit)))


def _consent_requests(session: Session, state: core.NodeState, *, state_filter: str) -> list[ConsentRequestRow]:
    query = select(ConsentRequestRow).order_by(ConsentRequestRow.created_at)
    if state_filter:
        query = query.where(ConsentRequestRow.state == state_filter)
    return list(session.scalars(query))


def _outbox(session: Session, state: core.NodeState, *, state_filter: str) -> list[OutboxEntry]:
    query = select(OutboxEntry).order_by(OutboxEntry.created_at)
    if state_filter:
        query = query.where(OutboxEntry.state == state_filter)
    return list(session.scalars(query))


def _audit_rows(
    session: Session, state: core.NodeState, *, after_seq: int, limit: int, event: str | None
) -> list[desk_pb2.AuditRow]:
    buffer = []
    for row in audit.list_entries(session, after_seq=after_seq, limit=limit, event=event):
        record = {field: getattr(row, field) for field in audit.FIELDS if field not in ("at", "detail")}
        record["detail"] = json.loads(row.detail)
        buffer.append(
            desk_pb2.AuditRow(
                seq=row.seq, at=audit.format_time(row.at), event=row.event, json=json.dumps(record, ensure_ascii=False)
            )
        )
    return buffer


def _status(session: Session, state: core.NodeState) -> tuple[int, int]:
    pending = session.scalar(select(func.count()).select_from(OutboxEntry).where(OutboxEntry.state == "pending"))
    return audit_head(session), int(pending or 0)
