"""What the servicers need from the running node: a small interface the runtime implements."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Concatenate, ParamSpec, Protocol, TypeVar

import grpc
from sqlalchemy.orm import Session

from node.codec import Undecodable
from node.config.officers import Officers
from node.services.egress import Outcome
from node.services.state import NodeState
from node.transport import PeerIdentity
from node.wire import exchange_pb2
from protocol.ack import Ack
from protocol.envelope import Suite
from protocol.roster import Member
from protocol.statements import Signed

__all__ = ["EndCall", "NodePort"]

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True)
class EndCall:
    """The runtime ends a ``DeliverBatches`` call: the servicer aborts it with ``code`` and ``detail``.

    For a batch refused whole (too large, or not decodable), an idle stream, or one stream
    too many from a peer (SPEC §11.3).
    """

    code: grpc.StatusCode
    detail: str


class NodePort(Protocol):
    """The running node as the servicers see it."""

    @property
    def state(self) -> NodeState:
        """Identity, keys, roster and agreements."""
        ...

    @property
    def default_suite(self) -> Suite:
        """The suite new envelopes are sealed with unless the officer names one."""
        ...

    @property
    def officers(self) -> Officers:
        """Who may use the desk, in which role."""
        ...

    def now(self) -> datetime:
        """The node's clock."""
        ...

    def refused(self, peer: str, what: str) -> None:
        """Count a refused request from ``peer`` for the node log (once per peer and interval)."""
        ...

    async def db(self, fn: Callable[Concatenate[Session, NodeState, P], T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a service function in the next group commit; its result once committed."""
        ...

    def hand_over(self, outcomes: Sequence[Outcome]) -> None:
        """Give committed envelopes to the delivery links."""
        ...

    def receipt_batches(
        self,
        requests: AsyncIterator[exchange_pb2.EnvelopeBatch | Undecodable],
        member: Member,
        identity: PeerIdentity,
    ) -> AsyncGenerator[exchange_pb2.ReceiptBatch | EndCall]:
        """Pipelined ingress of a ``DeliverBatches`` call from an identified peer."""
        ...

    async def ingest_batch(
        self, messages: Sequence[exchange_pb2.Envelope | Undecodable], member: Member, identity: PeerIdentity
    ) -> list[Signed]:
        """Verify, decide and durably record envelopes from an identified peer; their receipts."""
        ...

    async def await_ack(self, message_id: str, timeout: float) -> exchange_pb2.Ack | None:
        """Wait briefly for a queued control message's acknowledgement."""
        ...

    async def publish_roster(self, signed: Signed, source: str) -> Ack:
        """A roster version delivered by ``source``: verified, applied at once if newer, audited (SPEC §11.12)."""
        ...
