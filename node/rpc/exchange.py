"""The inter-node ``Exchange`` servicer (SPEC §11.1). Thin: identify, translate, delegate.

Its request messages are decoded leniently (``add_exchange_servicer``): bytes that do not
decode reach the handler as ``node.codec.Undecodable``, which it answers as a refusal
(a receipt, an ``Ack``, a witness answer) or, on ``DeliverBatches``, by ending the call
with a status, audited either way; never an untyped error, a traceback, or a stream
ended OK with a batch unanswered. Refusals go to the node log once per peer and
interval with a count (``NodePort.refused``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from datetime import datetime
from typing import Any, Protocol

import grpc
from sqlalchemy.orm import Session

from node.codec import Undecodable, lenient, signed_from_pb, signed_to_pb
from node.rpc.desk import status_for
from node.rpc.port import EndCall, NodePort
from node.services.agreements import receive_amendment
from node.services.consent import receive_consent_decision, receive_consent_request
from node.services.evidence import held_about, prove
from node.services.ingress import record_refused_connection
from node.services.notices import receive_ack, receive_notice
from node.services.state import NodeState
from node.services.witness import witness_checkpoint
from node.transport import PeerIdentity, peer_identity
from node.wire import exchange_pb2, exchange_pb2_grpc
from protocol.ack import Ack
from protocol.checkpoint import WitnessReason
from protocol.errors import MalformedError
from protocol.policy import Reason
from protocol.roster import Member
from protocol.statements import Signed

__all__ = ["ExchangeServicer", "add_exchange_servicer", "identify"]

Context = grpc.aio.ServicerContext[Any, Any]
_SERVICE = "intelshare.v1.Exchange"


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
        port.refused(who, "a call from outside the roster")
        await port.db(record_refused_connection, who=who, peer_addr=context.peer(), now=port.now())
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, "peer is not a roster member")
    assert member is not None  # abort raised otherwise
    assert identity is not None
    return member, identity


def _ack_pb(ack: Ack, roster_version: int) -> exchange_pb2.Ack:
    answer = exchange_pb2.Ack(
        accepted=ack.accepted, reason=ack.reason.value, detail=ack.detail, roster_version=roster_version
    )
    if ack.statement is not None:
        answer.statement.CopyFrom(signed_to_pb(ack.statement))
    return answer


def _statement(message: exchange_pb2.Signed | Undecodable) -> Signed | Ack:
    if isinstance(message, Undecodable):
        return Ack.refused(Reason.ENVELOPE_MALFORMED, message.detail)
    try:
        return signed_from_pb(message)
    except MalformedError as exc:
        return Ack.refused(Reason.ENVELOPE_MALFORMED, str(exc))


class _Handlers:
    """Stands in for a server to collect the generated code's method handlers."""

    handlers: dict[str, Any]

    def add_generic_rpc_handlers(self, handlers: object) -> None:
        pass

    def add_registered_method_handlers(self, service: str, handlers: dict[str, Any]) -> None:
        self.handlers = handlers


def add_exchange_servicer(servicer: ExchangeServicer, server: grpc.aio.Server) -> None:
    """Register the servicer as the generated code does, with lenient request decoding.

    Each method keeps the generated handler (so a method added to the .proto is served as
    generated); only its request deserializer is wrapped by ``node.codec.lenient``.
    """
    collected = _Handlers()
    exchange_pb2_grpc.add_ExchangeServicer_to_server(servicer, collected)
    handlers = {
        name: handler._replace(request_deserializer=lenient(handler.request_deserializer, name))
        for name, handler in collected.handlers.items()
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(_SERVICE, handlers),))
    server.add_registered_method_handlers(_SERVICE, handlers)  # type: ignore[attr-defined]  # missing from the stubs


class ExchangeServicer(exchange_pb2_grpc.ExchangeServicer):  # type: ignore[misc]  # generated base
    """Node-to-node calls over mutual TLS; every call starts by identifying the peer."""

    def __init__(self, port: NodePort) -> None:
        self.port = port

    async def Deliver(self, request: exchange_pb2.Envelope | Undecodable, context: Context) -> exchange_pb2.Receipt:
        member, identity = await identify(self.port, context)
        if isinstance(request, Undecodable):  # refused like an envelope that does not parse (SPEC §11.3)
            self.port.refused(member.member_id, f"an undecodable {request.what}")
        (receipt,) = await self.port.ingest_batch([request], member, identity)
        return exchange_pb2.Receipt(statement=signed_to_pb(receipt), roster_version=self.port.state.roster.version)

    async def DeliverBatches(
        self, request_iterator: AsyncIterator[exchange_pb2.EnvelopeBatch | Undecodable], context: Context
    ) -> AsyncIterator[exchange_pb2.ReceiptBatch]:
        member, identity = await identify(self.port, context)
        # Closed on the way out, so the stream stops counting against the peer's bound at once.
        async with aclosing(self.port.receipt_batches(request_iterator, member, identity)) as replies:
            async for reply in replies:
                if isinstance(reply, EndCall):  # refused (and audited), idle, or over the cap: end the call
                    self.port.refused(member.member_id, f"a DeliverBatches call ({reply.code.name})")
                    await context.abort(reply.code, reply.detail)
                else:
                    yield reply

    async def _control(
        self, receive: ReceiveControl, request: exchange_pb2.Signed | Undecodable, context: Context
    ) -> exchange_pb2.Ack:
        """One control message (SPEC §11.9): identify, convert, apply in one committed job, answer."""
        member, _ = await identify(self.port, context)
        signed = _statement(request)
        if isinstance(signed, Ack):
            self.port.refused(member.member_id, "a malformed statement")
            return _ack_pb(signed, self.port.state.roster.version)
        ack = await self.port.db(receive, signed=signed, peer=member.member_id, now=self.port.now())
        return _ack_pb(ack, self.port.state.roster.version)

    async def RequestConsent(self, request: exchange_pb2.Signed | Undecodable, context: Context) -> exchange_pb2.Ack:
        # A decision by standing rules is queued for the requester in the same commit.
        return await self._control(receive_consent_request, request, context)

    async def SendConsentDecision(
        self, request: exchange_pb2.Signed | Undecodable, context: Context
    ) -> exchange_pb2.Ack:
        return await self._control(receive_consent_decision, request, context)

    async def Notify(self, request: exchange_pb2.Signed | Undecodable, context: Context) -> exchange_pb2.Ack:
        # Forwarding downstream (SPEC §10.1) is queued in the same commit.
        return await self._control(receive_notice, request, context)

    async def Acknowledge(self, request: exchange_pb2.Signed | Undecodable, context: Context) -> exchange_pb2.Ack:
        # A holder's signed word that it applied a notice, passed on towards the originator (SPEC §10.3).
        return await self._control(receive_ack, request, context)

    async def AmendAgreement(self, request: exchange_pb2.Signed | Undecodable, context: Context) -> exchange_pb2.Ack:
        # A proposal, countersignature or rejection from the other party of an agreement (SPEC §6.4).
        return await self._control(receive_amendment, request, context)

    async def Witness(
        self, request: exchange_pb2.WitnessRequest | Undecodable, context: Context
    ) -> exchange_pb2.WitnessResponse:
        member, _ = await identify(self.port, context)
        if isinstance(request, Undecodable):
            self.port.refused(member.member_id, f"an undecodable {request.what}")
            return exchange_pb2.WitnessResponse(reason=WitnessReason.CHECKPOINT_MALFORMED.value, detail=request.detail)
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

    async def Evidence(
        self, request: exchange_pb2.EvidenceRequest | Undecodable, context: Context
    ) -> AsyncIterator[exchange_pb2.EvidenceItem]:
        # Only what commits to the caller's own log (SPEC §11.10.9).
        member, _ = await identify(self.port, context)
        if isinstance(request, Undecodable):
            self.port.refused(member.member_id, f"an undecodable {request.what}")
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.detail)
        assert not isinstance(request, Undecodable)  # abort raised
        try:
            held = await self.port.db(held_about, member=member.member_id, limit=request.limit or 1000)
        except Exception as exc:
            answer = status_for(exc)
            if answer is None:
                raise
            await context.abort(*answer)
        for note in held.witnessed:
            yield exchange_pb2.EvidenceItem(witnessed_checkpoint=note)
        for statement in held.statements:
            yield exchange_pb2.EvidenceItem(statement=signed_to_pb(statement))

    async def Prove(
        self, request: exchange_pb2.ProofRequest | Undecodable, context: Context
    ) -> exchange_pb2.ProofResponse:
        member, _ = await identify(self.port, context)
        if isinstance(request, Undecodable):
            self.port.refused(member.member_id, f"an undecodable {request.what}")
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.detail)
        assert not isinstance(request, Undecodable)  # abort raised
        try:
            proof = await self.port.db(prove, size=request.size, index=request.index, consistency=request.consistency)
        except Exception as exc:
            answer = status_for(exc)
            if answer is None:
                raise
            await context.abort(*answer)
        return exchange_pb2.ProofResponse(hashes=proof.hashes, leaf=proof.leaf, checkpoint=proof.checkpoint)

    async def PublishRoster(self, request: exchange_pb2.Signed | Undecodable, context: Context) -> exchange_pb2.Ack:
        # SPEC §11.12: any peer the federation CA certified may deliver a roster (the
        # secretariat's tool, or a member passing it on): the statement carries its own
        # authority, the secretariat's threshold of signatures. A peer whose roster entry
        # this node does not know yet (a member the new roster adds) is named by its SAN.
        identity = peer_identity(context)
        if identity is None:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "no client certificate")
        assert identity is not None
        member = _member_for(self.port, identity)
        source = member.member_id if member is not None else ",".join(identity.san_uris) or "no SAN URI"
        signed = _statement(request)
        if isinstance(signed, Ack):
            return _ack_pb(signed, self.port.state.roster.version)
        ack = await self.port.publish_roster(signed, source)
        return _ack_pb(ack, self.port.state.roster.version)
