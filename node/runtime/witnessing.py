"""Asking peers to witness this node's audit log, on a schedule (SPEC §11.10.6).

Each agreement partner is asked to co-sign the latest checkpoint at least every
``interval_seconds`` while the log grows, and whenever ``every_entries`` entries were
added since the last round. A witness that holds an older size than this node thought
gets a second request from that size (C2SP's answer to a mismatched old size). A peer
that cannot be reached is asked again in the next round.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

import grpc

from node.config import WitnessSettings
from node.runtime.due import PumpContext
from node.services.witness import WitnessAnswer, record_cosignature, request_witnessing
from node.wire import exchange_pb2, exchange_pb2_grpc
from protocol.checkpoint import WitnessReason

__all__ = ["WitnessPump"]

log = logging.getLogger("intelshare.node")
#: How often the pump looks at the log's size between rounds.
_TICK_SECONDS = 0.5


class WitnessPump:
    """Rounds of witnessing requests to the node's peers."""

    def __init__(
        self,
        context: PumpContext,
        settings: WitnessSettings,
        peers: Callable[[], Sequence[str]],
        log_size: Callable[[], int],
    ) -> None:
        self.context = context
        self.settings = settings
        self.peers = peers
        self.log_size = log_size

    async def run(self) -> None:
        """Rounds until cancelled."""
        loop = asyncio.get_running_loop()
        # The first round comes at once: a node that was down asks for what its peers missed.
        last_round, last_size = loop.time() - self.settings.interval_seconds, -1
        while True:
            await asyncio.sleep(_TICK_SECONDS)
            size = self.log_size()
            due = loop.time() - last_round >= self.settings.interval_seconds
            if size == last_size or not (due or size - last_size >= self.settings.every_entries):
                continue
            last_round, last_size = loop.time(), size
            await asyncio.gather(*(self.witness(peer) for peer in self.peers()), return_exceptions=True)

    async def witness(self, peer: str, old_size: int | None = None) -> WitnessAnswer | None:
        """Ask ``peer`` to co-sign the latest checkpoint; its answer, kept and audited (None: nothing asked)."""
        context = self.context
        asked = await context.commit.run(request_witnessing, witness_id=peer, old_size=old_size)
        if asked is None:
            return None
        request, note = asked
        stub = exchange_pb2_grpc.ExchangeStub(context.channels.get(peer))
        try:
            reply: exchange_pb2.WitnessResponse = await stub.Witness(
                exchange_pb2.WitnessRequest(request=request), timeout=context.settings.deadline_seconds
            )
        except grpc.aio.AioRpcError as exc:
            log.info("witness %s not reached: %s", peer, exc.details())
            return None
        held = int(reply.witnessed_size) if reply.has_witnessed_size else None
        answer = WitnessAnswer(reply.cosigned, reply.reason, reply.detail, bytes(reply.cosignature), held)
        mismatched = answer.reason == WitnessReason.CHECKPOINT_OLD_SIZE_MISMATCH.value
        if mismatched and old_size is None and held is not None:
            return await self.witness(peer, held)  # the witness holds another size: prove from that one
        await context.commit.run(record_cosignature, witness_id=peer, note=note, answer=answer, now=context.clock())
        return answer
