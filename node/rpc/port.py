"""What the servicers need from the running node: a small interface the runtime implements."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Concatenate, ParamSpec, Protocol, TypeVar

from sqlalchemy.orm import Session

from node.config.officers import Officers
from node.services.egress import Outcome
from node.services.state import NodeState
from node.transport import PeerIdentity
from node.wire import exchange_pb2
from protocol.ack import Ack
from protocol.envelope import Suite
from protocol.roster import Member
from protocol.statements import Signed

__all__ = ["NodePort", "Oversized"]

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True)
class Oversized:
    """A batch was refused for its size; the servicer ends the call with ``detail``."""

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

    async def db(self, fn: Callable[Concatenate[Session, NodeState, P], T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a service function in the next group commit; its result once committed."""
        ...

    def hand_over(self, outcomes: Sequence[Outcome]) -> None:
        """Give committed envelopes to the delivery links."""
        ...

    def receipt_batches(
        self, requests: AsyncIterator[exchange_pb2.EnvelopeBatch], member: Member, identity: PeerIdentity
    ) -> AsyncIterator[exchange_pb2.ReceiptBatch | Oversized]:
        """Pipelined ingress of a ``DeliverBatches`` call from an identified peer."""
        ...

    async def ingest_batch(
        self, messages: Sequence[exchange_pb2.Envelope], member: Member, identity: PeerIdentity
    ) -> list[Signed]:
        """Verify, decide and durably record envelopes from an identified peer; their receipts."""
        ...

    async def await_ack(self, message_id: str, timeout: float) -> exchange_pb2.Ack | None:
        """Wait briefly for a queued control message's acknowledgement."""
        ...

    async def publish_roster(self, signed: Signed, source: str) -> Ack:
        """A roster version delivered by ``source``: verified, applied at once if newer, audited (SPEC §11.12)."""
        ...
