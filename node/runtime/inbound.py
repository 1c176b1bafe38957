"""Inbound pipelining of ``DeliverBatches`` (SPEC §11.3, §11.6).

The servicer hands the call's request stream here. Each batch becomes one job of the
group commit as soon as it is read (``node.services.ingress.receive_batch`` verifies,
decides and records it), so a peer's batches are verified and committed concurrently
with the ones before them; the receipt batches go back in request order, each after its
job has committed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from node.codec import MAX_ENVELOPE_BATCH, signed_to_pb
from node.rpc.port import Oversized
from node.wire import exchange_pb2
from protocol.statements import Signed

__all__ = ["receipt_batches"]

#: Batches read ahead of the oldest unanswered one.
_READ_AHEAD = 16


async def receipt_batches(
    requests: AsyncIterator[exchange_pb2.EnvelopeBatch],
    *,
    ingest: Callable[[Sequence[exchange_pb2.Envelope]], Awaitable[list[Signed]]],
    refuse_oversized: Callable[[str], Awaitable[None]],
    roster_version: Callable[[], int],
) -> AsyncIterator[exchange_pb2.ReceiptBatch | Oversized]:
    """One ``ReceiptBatch`` per batch read, in order; an ``Oversized`` ends the stream.

    ``ingest`` commits one batch and returns its receipts; ``refuse_oversized`` audits a
    batch over ``MAX_ENVELOPE_BATCH`` before the call is ended. Each ``ReceiptBatch``
    names the roster version the node holds (SPEC §11.12).
    """
    pending: asyncio.Queue[asyncio.Future[list[Signed]] | Oversized | None] = asyncio.Queue(maxsize=_READ_AHEAD)

    async def read() -> None:
        try:
            async for batch in requests:
                if len(batch.envelopes) > MAX_ENVELOPE_BATCH:
                    detail = f"a batch of {len(batch.envelopes)} envelopes exceeds {MAX_ENVELOPE_BATCH}"
                    await refuse_oversized(detail)
                    await pending.put(Oversized(detail))
                    return
                await pending.put(asyncio.ensure_future(ingest(batch.envelopes)))
        finally:
            await pending.put(None)

    reader = asyncio.ensure_future(read())
    try:
        while (future := await pending.get()) is not None:
            if isinstance(future, Oversized):
                yield future
                return
            receipts = await future
            yield exchange_pb2.ReceiptBatch(
                receipts=[exchange_pb2.Receipt(statement=signed_to_pb(r)) for r in receipts],
                roster_version=roster_version(),
            )
    finally:
        reader.cancel()
