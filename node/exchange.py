"""The inter-node ``Exchange`` servicer (SPEC §11.1). Thin: identify, translate, delegate."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import grpc

from node import core
from node.convert import signed_from_pb, signed_to_pb
from node.server import stream_receipt_batches, stream_receipts, utcnow
from node.wire import exchange_pb2, exchange_pb2_grpc
from protocol.errors import MalformedError
from protocol.policy import Reason
from protocol.statements import Signed

if TYPE_CHECKING:
    from node.server import Node

__all__ = ["ExchangeServicer"]

Context = grpc.aio.ServicerContext[Any, Any]


def _ack(result: tuple[bool, str, str]) -> exchange_pb2.Ack:
    accepted, reason, detail = result
    return exchange_pb2.Ack(accepted=accepted, reason=reason, detail=detail)


def _statement(message: exchange_pb2.Signed) -> Signed | exchange_pb2.Ack:
    try:
        return signed_from_pb(message)
    except MalformedError as exc:
        return exchange_pb2.Ack(accepted=False, reason=Reason.ENVELOPE_MALFORMED.value, detail=str(exc))


class ExchangeServicer(exchange_pb2_grpc.ExchangeServicer):  # type: ignore[misc]  # generated base
    """Node-to-node calls over mutual TLS; every call starts by identifying the peer."""

    def __init__(self, node: Node) -> None:
        self.node = node

    async def Deliver(self, request: exchange_pb2.Envelope, context: Context) -> exchange_pb2.Receipt:
        member, identity = await self.node.identify(context)
        receipt = await self.node.ingest(request, member, identity)
        return exchange_pb2.Receipt(statement=signed_to_pb(receipt))

    async def DeliverStream(
        self, request_iterator: AsyncIterator[exchange_pb2.Envelope], context: Context
    ) -> AsyncIterator[exchange_pb2.Receipt]:
        member, identity = await self.node.identify(context)
        async for receipt in stream_receipts(self.node, request_iterator, member, identity):
            yield receipt

    async def DeliverBatches(
        self, request_iterator: AsyncIterator[exchange_pb2.EnvelopeBatch], context: Context
    ) -> AsyncIterator[exchange_pb2.ReceiptBatch]:
        member, identity = await self.node.identify(context)
        async for reply in stream_receipt_batches(self.node, request_iterator, member, identity):
            if isinstance(reply, str):  # an oversized batch: refused (and audited)
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, reply)
            yield reply

    async def RequestConsent(self, request: exchange_pb2.Signed, context: Context) -> exchange_pb2.Ack:
        member, _ = await self.node.identify(context)
        signed = _statement(request)
        if isinstance(signed, exchange_pb2.Ack):
            return signed
        # A decision by standing rules is queued for the requester in the same commit.
        ack = await self.node.db(core.receive_consent_request, signed=signed, peer=member.member_id, now=utcnow())
        return _ack(ack)

    async def SendConsentDecision(self, request: exchange_pb2.Signed, context: Context) -> exchange_pb2.Ack:
        member, _ = await self.node.identify(context)
        signed = _statement(request)
        if isinstance(signed, exchange_pb2.Ack):
            return signed
        return _ack(
            await self.node.db(core.receive_consent_decision, signed=signed, peer=member.member_id, now=utcnow())
        )

    async def Notify(self, request: exchange_pb2.Signed, context: Context) -> exchange_pb2.Ack:
        member, _ = await self.node.identify(context)
        signed = _statement(request)
        if isinstance(signed, exchange_pb2.Ack):
            return signed
        # Forwarding downstream (SPEC §10.1) is queued in the same commit.
        ack = await self.node.db(core.receive_notice, signed=signed, peer=member.member_id, now=utcnow())
        return _ack(ack)
