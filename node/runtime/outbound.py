"""Sender delivery: the outbox pump and one ``DeliverBatches`` stream per peer (SPEC §11.6).

Freshly committed envelopes are handed straight to their peer's link (``hand_over``);
the poller picks up the rest (at start, and retries when due). A link writes batches as
envelopes come, up to ``max_in_flight`` unanswered; receipt batches come back in order
and are settled concurrently (``node.services.delivery.settle_receipts``). Any failure
of the call hands every unsettled envelope back to the outbox with a backoff.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Sequence
from datetime import timedelta

import grpc

from node.codec import MAX_ENVELOPE_BATCH, signed_from_pb
from node.runtime.due import DuePoller, PumpContext
from node.services import delivery
from node.services.delivery import DueEnvelope
from node.services.egress import Outcome
from node.wire import exchange_pb2, exchange_pb2_grpc
from protocol.encoding import sha256_hex
from protocol.errors import MalformedError, RemoteProtocolError
from protocol.statements import Signed

__all__ = ["Outbound", "PeerLink"]

log = logging.getLogger("intelshare.node")
_EOF = grpc.aio.EOF  # type: ignore[attr-defined]  # end of a stream; missing from the stubs
#: A link with nothing to send closes its stream after this long.
_IDLE_SECONDS = 5.0


class Outbound:
    """Every envelope this node sends, from the outbox to a settled receipt."""

    def __init__(self, context: PumpContext) -> None:
        self.context = context
        self.settings = context.settings
        self.poller: DuePoller[DueEnvelope] = DuePoller(self._due, self._start, limit=context.settings.batch_max)
        self._links: dict[str, PeerLink] = {}

    async def _due(self, exclude: frozenset[str]) -> list[DueEnvelope]:
        context = self.context
        return await context.commit.run(
            delivery.due_outbox, limit=context.settings.batch_max, exclude=exclude, now=context.clock()
        )

    def _start(self, due: DueEnvelope) -> None:
        self.dispatch(due.envelope_id, due.recipient, due.envelope)

    def hand_over(self, outcomes: Sequence[Outcome]) -> None:
        """Give freshly committed envelopes straight to their peers' links (no database re-read)."""
        for outcome in outcomes:
            if outcome.envelope_id is not None and outcome.envelope is not None:
                self.dispatch(outcome.envelope_id, outcome.recipient, outcome.envelope)

    def dispatch(self, envelope_id: str, recipient: str, envelope: bytes) -> None:
        """Queue an envelope on its peer's link, unless it is already on its way."""
        if not self.poller.claim(envelope_id):
            return
        link = self._links.get(recipient)
        if link is None:
            link = self._links[recipient] = PeerLink(self, recipient)
        link.push(envelope_id, envelope)

    async def settle_batch(
        self,
        recipient: str,
        sent: Sequence[tuple[str, str]],
        statements: Sequence[exchange_pb2.Signed],
        peer_roster_version: int = 0,
    ) -> None:
        """Verify a receipt batch and commit it in one job (one batch root check).

        ``peer_roster_version`` is the roster version the receiver answered under (SPEC §11.12).
        """
        try:
            receipts: list[Signed] = []
            good: list[tuple[str, str]] = []
            refused: list[tuple[str, str]] = []
            for (envelope_id, digest), statement in zip(sent, statements, strict=True):
                try:
                    receipts.append(signed_from_pb(statement))
                    good.append((envelope_id, digest))
                except MalformedError as exc:
                    refused.append((envelope_id, f"bad receipt: {exc}"))
            settled = await self.context.commit.run(
                delivery.settle_receipts,
                recipient=recipient,
                sent=good,
                receipts=receipts,
                now=self.context.clock(),
                peer_roster_version=peer_roster_version,
            )
            for envelope_id in settled.unmatched:
                log.warning("receipt for %s matches no outbox entry", envelope_id)
            for envelope_id, error in refused + settled.refused:
                await self.failed([envelope_id], 0, error)
        finally:
            for envelope_id, _ in sent:
                self.poller.release(envelope_id)

    async def failed(self, envelope_ids: Sequence[str], attempts: int, error: str) -> None:
        """Schedule retries with backoff; the poller re-sends them when due."""
        seconds = self.context.backoff.delay(attempts)
        now = self.context.clock()
        await self.context.commit.run(
            delivery.record_delivery_errors,
            envelope_ids=list(envelope_ids),
            error=error,
            retry_at=now + timedelta(seconds=seconds),
            now=now,
        )
        for envelope_id in envelope_ids:
            self.poller.release(envelope_id)
        self.context.background.spawn(self.poller.wake_after(seconds))


class PeerLink:
    """Delivery to one member over one ``DeliverBatches`` call (SPEC §11.6)."""

    def __init__(self, outbound: Outbound, recipient: str) -> None:
        self.outbound = outbound
        self.recipient = recipient
        self.queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        self.failures = 0
        self.task: asyncio.Task[None] | None = None

    def push(self, envelope_id: str, envelope: bytes) -> None:
        """Queue an envelope; opens the stream if it is not open."""
        self.queue.put_nowait((envelope_id, envelope))
        if self.task is None or self.task.done():
            self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        try:
            await self._stream()
        finally:
            # Envelopes pushed while this call was closing must not wait for the next push.
            if not self.queue.empty():
                self.task = asyncio.ensure_future(self._run())

    async def _stream(self) -> None:
        settings = self.outbound.settings
        capacity = settings.max_in_flight
        batch_limit = max(1, min(capacity, settings.batch_max, MAX_ENVELOPE_BATCH))
        in_flight = 0
        room = asyncio.Event()
        loop = asyncio.get_running_loop()
        #: One entry per batch written and not yet answered: when, and (envelope id, digest) each.
        sent: collections.deque[tuple[float, list[tuple[str, str]]]] = collections.deque()
        channels = self.outbound.context.channels
        channel = channels.get(self.recipient)
        call = exchange_pb2_grpc.ExchangeStub(channel).DeliverBatches()

        async def write() -> None:
            nonlocal in_flight
            while True:
                # Wait for room before taking anything off the queue: an envelope taken
                # and then abandoned by a failing call would be handed back to no one.
                while in_flight >= capacity:
                    room.clear()
                    await room.wait()
                try:
                    first = await asyncio.wait_for(self.queue.get(), timeout=_IDLE_SECONDS)
                except TimeoutError:
                    if not sent:
                        break  # idle: close the stream; the next push opens a new one
                    continue
                # Everything already queued goes in this batch, up to the room left.
                batch = [first]
                while len(batch) < min(batch_limit, capacity - in_flight) and not self.queue.empty():
                    batch.append(self.queue.get_nowait())
                in_flight += len(batch)
                message = exchange_pb2.EnvelopeBatch()
                ids = []
                for envelope_id, envelope in batch:
                    # The stored bytes are the wire encoding: sent as they are, never rebuilt.
                    added = message.envelopes.add()
                    added.MergeFromString(envelope)
                    ids.append((envelope_id, sha256_hex(added.header.payload)))
                sent.append((loop.time(), ids))
                await call.write(message)
            await call.done_writing()

        async def read() -> None:
            nonlocal in_flight
            reading = asyncio.ensure_future(call.read())
            try:
                while True:
                    # The deadline runs from the oldest unanswered batch, however long
                    # the call sat idle before it was written (SPEC §11.6).
                    wait = sent[0][0] + settings.deadline_seconds - loop.time() if sent else 1.0
                    if wait <= 0:
                        raise TimeoutError(f"no receipts within {settings.deadline_seconds} s")
                    done, _ = await asyncio.wait({reading}, timeout=min(wait, 1.0))
                    if not done:
                        continue
                    reply = reading.result()
                    if reply is _EOF:
                        if sent:  # a clean end with batches unanswered is still a failed call (SPEC §11.6)
                            raise RemoteProtocolError(f"call ended with {len(sent)} batches unanswered")
                        return
                    ids = sent[0][1]
                    if len(reply.receipts) != len(ids):
                        raise RemoteProtocolError(f"{len(reply.receipts)} receipts for a batch of {len(ids)}")
                    sent.popleft()
                    in_flight -= len(ids)
                    room.set()
                    statements = [receipt.statement for receipt in reply.receipts]
                    settle = self.outbound.settle_batch(self.recipient, ids, statements, reply.roster_version)
                    self.outbound.context.background.spawn(settle)
                    reading = asyncio.ensure_future(call.read())
            finally:
                reading.cancel()

        writer = asyncio.ensure_future(write())
        try:
            await asyncio.gather(writer, read())
            self.failures = 0
        except Exception as exc:  # any failure of the call: hand everything unsettled back
            writer.cancel()
            call.cancel()
            if isinstance(exc, TimeoutError):  # no receipts in time: the connection may be dead, dial anew
                await channels.reset(self.recipient, channel)
            detail = exc.details() if isinstance(exc, grpc.aio.AioRpcError) else f"{type(exc).__name__}: {exc}"
            unsettled = [envelope_id for _, ids in sent for envelope_id, _ in ids]
            while not self.queue.empty():
                unsettled.append(self.queue.get_nowait()[0])
            self.failures += 1
            await self.outbound.failed(unsettled, self.failures, str(detail))
