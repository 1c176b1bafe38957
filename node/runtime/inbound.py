"""Inbound pipelining of ``DeliverBatches``, and the bounds on inbound streams (SPEC §11.3, §11.6).

The servicer hands the call's request stream here. Each batch becomes one job of the
group commit as soon as it is read (``node.services.ingress.receive_batch`` verifies,
decides and records it), so a peer's batches are verified and committed concurrently
with the ones before them; the receipt batches go back in request order, each after its
job has committed.

A call whose client set no deadline could stay open for ever: ``InboundStreams`` ends a
stream that has had nothing to answer for ``idle_seconds`` and refuses a peer's stream
beyond ``max_per_peer`` open at once (SPEC §11.3, "Stream bounds").
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from contextlib import aclosing

import grpc

from node.codec import MAX_ENVELOPE_BATCH, Undecodable, signed_to_pb
from node.config.settings import InboundSettings
from node.rpc.port import EndCall
from node.wire import exchange_pb2
from protocol.statements import Signed

__all__ = ["InboundStreams", "receipt_batches"]

#: Batches read ahead of the oldest unanswered one.
_READ_AHEAD = 16

Requests = AsyncIterator[exchange_pb2.EnvelopeBatch | Undecodable]


async def receipt_batches(
    requests: Requests,
    *,
    ingest: Callable[[Sequence[exchange_pb2.Envelope]], Awaitable[list[Signed]]],
    refuse_batch: Callable[[str], Awaitable[None]],
    idle_seconds: float,
    roster_version: Callable[[], int],
) -> AsyncGenerator[exchange_pb2.ReceiptBatch | EndCall]:
    """One ``ReceiptBatch`` per batch read, in order; an ``EndCall`` ends the stream.

    ``ingest`` commits one batch and returns its receipts; ``refuse_batch`` audits a batch
    refused whole (over ``MAX_ENVELOPE_BATCH``, or not decodable) before the call is ended
    with INVALID_ARGUMENT. A stream with every batch answered and none read for
    ``idle_seconds`` is ended with DEADLINE_EXCEEDED. Each ``ReceiptBatch`` names the
    roster version the node holds (SPEC §11.12).
    """
    pending: asyncio.Queue[asyncio.Future[list[Signed]] | EndCall | None] = asyncio.Queue(maxsize=_READ_AHEAD)

    async def read() -> None:
        try:
            async for batch in requests:
                if isinstance(batch, Undecodable):
                    detail = batch.detail
                elif len(batch.envelopes) > MAX_ENVELOPE_BATCH:
                    detail = f"a batch of {len(batch.envelopes)} envelopes exceeds {MAX_ENVELOPE_BATCH}"
                else:
                    await pending.put(asyncio.ensure_future(ingest(batch.envelopes)))
                    continue
                await refuse_batch(detail)
                await pending.put(EndCall(grpc.StatusCode.INVALID_ARGUMENT, detail))
                return
        finally:
            await pending.put(None)

    reader = asyncio.ensure_future(read())
    try:
        while True:
            try:
                # Waiting here means every batch read so far is answered: the stream is idle.
                future = await asyncio.wait_for(pending.get(), timeout=idle_seconds)
            except TimeoutError:
                yield EndCall(grpc.StatusCode.DEADLINE_EXCEEDED, f"stream idle for {idle_seconds:g} s")
                return
            if future is None:
                return
            if isinstance(future, EndCall):
                yield future
                return
            receipts = await future
            yield exchange_pb2.ReceiptBatch(
                receipts=[exchange_pb2.Receipt(statement=signed_to_pb(r)) for r in receipts],
                roster_version=roster_version(),
            )
    finally:
        reader.cancel()


class InboundStreams:
    """The ``DeliverBatches`` calls open per peer, and their bounds (SPEC §11.3)."""

    def __init__(self, settings: InboundSettings) -> None:
        self.settings = settings
        self._open: collections.Counter[str] = collections.Counter()

    async def serve(
        self,
        peer: str,
        requests: Requests,
        *,
        ingest: Callable[[Sequence[exchange_pb2.Envelope]], Awaitable[list[Signed]]],
        refuse_batch: Callable[[str], Awaitable[None]],
        roster_version: Callable[[], int],
    ) -> AsyncGenerator[exchange_pb2.ReceiptBatch | EndCall]:
        """``receipt_batches`` for one call, unless ``peer`` already has the most streams open."""
        limit = self.settings.max_streams_per_peer
        if self._open[peer] >= limit:
            yield EndCall(grpc.StatusCode.RESOURCE_EXHAUSTED, f"{peer} already has {limit} streams open")
            return
        self._open[peer] += 1
        idle = self.settings.stream_idle_seconds
        try:
            async with aclosing(
                receipt_batches(
                    requests, ingest=ingest, refuse_batch=refuse_batch, idle_seconds=idle, roster_version=roster_version
                )
            ) as replies:
                async for reply in replies:
                    yield reply
        finally:
            self._open[peer] -= 1
