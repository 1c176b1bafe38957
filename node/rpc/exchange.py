"""The inter-node ``Exchange`` servicer (SPEC §11.1). Thin: identify, translate, delegate."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, Protocol

import grpc
from sqlalchemy.orm import Session

from node.codec import signed_from_pb, signed_to_pb
from node.rpc.port import NodePort, Oversized
from node.services.agreements import receive_amendment
from node.services.consent import receive_consent_decision, receive_consent_request
from node.services.ingress import record_refused_connection
from node.services.notices import receive_ack, receive_notice
from node.services.state import NodeState
from node.services.witness import witness_checkpoint
from node.transport import PeerIdentity, peer_identity
from node.wire import exchange_pb2, exchange_pb2_grpc
from protocol.ack import Ack
from protocol.errors import MalformedError
from protocol.policy import Reason
from protocol.roster import Member
from protocol.statements import Signed

__all__ = ["ExchangeServicer", "identify"]

Context = grpc.aio.ServicerContext[Any, Any]


class ReceiveControl(Protocol):
    """A service function that applies one control message from a peer and answers it."""

    def __call__(self, session: Session, state: NodeState, /, *, signed: Signed, peer: str, now: datetime) -> Ack: ...


def _member_for(port: NodePort, identity: PeerIdentity | None) -> Member | None:
    """The roster member whose TLS identity the certificate carries, fingerprint checked (SPEC §11.2)."""
    if identity is None:
        return None
    for member in port.state.roster.members:
        if member.tls_identity in identity.san_uris:
            fingerprint_ok = member.tls_fingerprint is None or member.tls_fingerprint == identity.fingerprint
            return member if fingerprint_ok else None
    return None


async def identify(port: NodePort, context: Context) -> tuple[Member, PeerIdentity]:
    """The roster member behind this TLS connection, or abort (and audit the refusal)."""
    identity = peer_identity(context)
    member = _member_for(port, identity)
    if member is None or identity is None:
        who = ",".join(identity.san_uris) if identity else "no certificate"
        await port.db(record_refused_connection, who=who, peer_addr=context.peer(), now=port.now())
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, "peer is not a roster member")
    assert member is not None  # abort raised otherwise
    assert identity is not None
    return member, identity


def _ack_pb(ack: Ack) -> exchange_pb2.Ack:
    answer = exchange_pb2.Ack(accepted=ack.accepted, reason=ack.reason.value, detail=ack.detail)
    if ack.statement is not None:
        answer.statement.CopyFrom(signed_to_pb(ack.statement))
    return answer


def _statement(message: exchange_pb2.Signed) -> Signed | Ack:
    try:
        return signed_from_pb(message)
    except MalformedError as exc:
        return Ack.refused(Reason.ENVELOPE_MALFORMED, str(exc))


class ExchangeServicer(exchange_pb2_grpc.ExchangeServicer):  # type: ignore[misc]  # generated base
    """Node-to-node calls over mutual TLS; every call starts by identifying the peer."""

    def __init__(self, port: NodePort) -> None:
        self.port = port

    async def Deliver(self, request: exchange_pb2.Envelope, context: Context) -> exchange_pb2.Receipt:
        member, identity = await identify(self.port, context)
        (receipt,) = await self.port.ingest_batch([request], member, identity)
        return exchange_pb2.Receipt(statement=signed_to_pb(receipt))

    async def DeliverBatches(
        self, request_iterator: AsyncIterator[exchange_pb2.EnvelopeBatch], context: Context
    ) -> AsyncIterator[exchange_pb2.ReceiptBatch]:
        member, identity = await identify(self.port, context)
        async for reply in self.port.receipt_batches(request_iterator, member, identity):
            if isinstance(reply, Oversized):  # refused (and audited): end the call
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, reply.detail)
            else:
                yield reply

    async def _control(
        self, receive: ReceiveControl, request: exchange_pb2.Signed, context: Context
    ) -> exchange_pb2.Ack:
        """One control message (SPEC §11.9): identify, convert, apply in one committed job, answer."""
        member, _ = await identify(self.port, context)
        signed = _statement(request)
        if isinstance(signed, Ack):
            return _ack_pb(signed)
        return _ack_pb(await self.port.db(receive, signed=signed, peer=member.member_id, now=self.port.now()))

    async def RequestConsent(self, request: exchange_pb2.Signed, context: Context) -> exchange_pb2.Ack:
        # A decision by standing rules is queued for the requester in the same commit.
        return await self._control(receive_consent_request, request, context)

    async def SendConsentDecision(self, request: exchange_pb2.Signed, context: Context) -> exchange_pb2.Ack:
        return await self._control(receive_consent_decision, request, context)

    async def Notify(self, request: exchange_pb2.Signed, context: Context) -> exchange_pb2.Ack:
        # Forwarding downstream (SPEC §10.1) is queued in the same commit.
        return await self._control(receive_notice, request, context)

    async def Acknowledge(self, request: exchange_pb2.Signed, context: Context) -> exchange_pb2.Ack:
        # A holder's signed word that it applied a notice, passed on towards the originator (SPEC §10.3).
        return await self._control(receive_ack, request, context)

    async def AmendAgreement(self, request: exchange_pb2.Signed, context: Context) -> exchange_pb2.Ack:
        # A proposal, countersignature or rejection from the other party of an agreement (SPEC §6.4).
        return await self._control(receive_amendment, request, context)

    async def Witness(self, request: exchange_pb2.WitnessRequest, context: Context) -> exchange_pb2.WitnessResponse:
        member, _ = await identify(self.port, context)
        answer = await self.port.db(
            witness_checkpoint, request=request.request, peer=member.member_id, now=self.port.now()
        )
        return exchange_pb2.WitnessResponse(
            cosigned=answer.cosigned,
            reason=answer.reason,
            detail=answer.detail,
            cosignature=answer.cosignature,
            witnessed_size=answer.witnessed_size or 0,
            has_witnessed_size=answer.witnessed_size is not None,
        )
