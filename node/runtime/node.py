"""The running node: its state, group commit, servers, delivery and pumps (SPEC §11).

``Node`` wires the pieces together and implements ``node.rpc.port.NodePort`` for the
servicers: they reach the services only through ``db`` (the group commit) and the few
methods below.
"""

from __future__ import annotations

import asyncio
import logging
import os
import warnings
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

import grpc
from sqlalchemy.orm import Session, sessionmaker

from node.audit.checkpoints import keep_rows
from node.audit.tree import CheckpointSigner, open_log
from node.codec import Undecodable, envelope_from_pb
from node.config import NodeConfig, NodeMaterial
from node.config.officers import Officers
from node.rpc.desk import DeskServicer
from node.rpc.exchange import ExchangeServicer, add_exchange_servicer
from node.rpc.port import EndCall
from node.runtime.channels import Channels
from node.runtime.clock import Clock, utcnow
from node.runtime.commit import GroupCommit
from node.runtime.control import ControlPump
from node.runtime.due import PumpContext
from node.runtime.inbound import InboundStreams
from node.runtime.outbound import Outbound
from node.runtime.refusals import RefusalLog
from node.runtime.retention import RetentionPump
from node.runtime.rosters import RosterKeeper
from node.runtime.tasks import Background
from node.runtime.watcher import watch_agreements
from node.runtime.witnessing import WitnessPump
from node.services.agreements import hold_countersigned
from node.services.egress import Outcome
from node.services.federation import record_start
from node.services.ingress import receive_batch, record_oversized_batch
from node.services.state import AtRestKey, NodeState, load_runtime_sets
from node.store import analyse, make_engine, make_sessionmaker, opening, upgrade
from node.transport import SERVER_OPTIONS, PeerIdentity, add_health_and_reflection, bind_secure
from node.wire import desk_pb2_grpc, exchange_pb2
from protocol.ack import Ack
from protocol.envelope import Envelope, Suite
from protocol.errors import MalformedError
from protocol.roster import Member
from protocol.statements import Signed

__all__ = ["DESK_SERVICE", "EXCHANGE_SERVICE", "UNSAFE_NO_CHECKPOINTS_ENV", "Node"]

#: Benchmarks only (``tests/perf/bench_exchange.py --checkpoints-ab``): sign no checkpoints and
#: ask no witness, to measure what they cost. A log written so is refused at the next start
#: with checkpoints, which is the point: it is not protected.
UNSAFE_NO_CHECKPOINTS_ENV = "INTELSHARE_UNSAFE_NO_CHECKPOINTS"

P = ParamSpec("P")
T = TypeVar("T")
EXCHANGE_SERVICE = "intelshare.v1.Exchange"
DESK_SERVICE = "intelshare.v1.Desk"


class Node:
    """One member service's node."""

    def __init__(self, cfg: NodeConfig, material: NodeMaterial, *, clock: Clock = utcnow) -> None:
        self.cfg = cfg
        self.material = material
        self.clock = clock
        self._state = NodeState(
            me=cfg.member_id,
            signing_key=material.signing_key,
            hpke_keys=material.hpke_keys,
            at_rest=AtRestKey(material.at_rest_key),
            roster=material.roster,
            agreements=material.agreements,
            window=cfg.window,
            consent=cfg.consent,
            secretariat=material.secretariat,
            roster_statement=material.roster_statement,
            previous_hpke=material.keys.previous_hpke,
            retention=cfg.retention,
        )
        self.engine = make_engine(cfg.database_url)
        self.sessions: sessionmaker[Session] = make_sessionmaker(self.engine)
        self.background = Background()
        self._officers = Officers(cfg.officers)
        channels = Channels(material.roster, material.tls_cert_pem, material.tls_key_pem, material.ca_pem)
        self.channels = channels
        self.commit = GroupCommit(
            self.sessions,
            self._state,
            batch_max=cfg.delivery.batch_max,
            on_control_queued=self._control_queued,
            clock=clock,
            analyse=lambda: analyse(self.engine),
        )
        self.rosters = RosterKeeper(cfg, material, self.commit, channels, self.background, clock)
        pumps = PumpContext(self.commit, channels, cfg.delivery, clock, self.background)
        self.outbound = Outbound(pumps)
        self.control = ControlPump(pumps)
        self.witnessing = WitnessPump(pumps, cfg.witness, self._peers, self._log_size)
        self.inbound = InboundStreams(cfg.inbound)
        self.refusals = RefusalLog(cfg.inbound.refusal_log_seconds)
        self.retention = RetentionPump(self.commit, clock, cfg.retention)
        self._tasks: list[asyncio.Task[None]] = []
        self.exchange_server: grpc.aio.Server | None = None
        self.desk_server: grpc.aio.Server | None = None

    def _control_queued(self) -> None:
        self.control.poller.wake()

    def _peers(self) -> list[str]:
        """The members this node holds an agreement with: its witnesses (SPEC §11.10.6)."""
        me = self._state.me
        return sorted({p for a in self._state.agreements.agreements() for p in a.parties if me in a.parties} - {me})

    def _log_size(self) -> int:
        return 0 if self.commit.tree is None else self.commit.tree.size

    # --- NodePort -----------------------------------------------------------------------

    @property
    def state(self) -> NodeState:
        """Identity, keys, roster and agreements."""
        return self._state

    @property
    def officers(self) -> Officers:
        """Who may use the desk (``officers.toml``, read again when it changes)."""
        return self._officers

    @property
    def default_suite(self) -> Suite:
        """The configured suite."""
        return self.cfg.suite

    def now(self) -> datetime:
        """The node's clock."""
        return self.clock()

    def refused(self, peer: str, what: str) -> None:
        """Count a refused request for the node log (``RefusalLog``)."""
        self.refusals.note(peer, what)

    async def db(self, fn: Callable[Concatenate[Session, NodeState, P], T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(session, state, *args, **kwargs)`` in the next group commit (``GroupCommit.run``)."""
        return await self.commit.run(fn, *args, **kwargs)

    def hand_over(self, outcomes: Sequence[Outcome]) -> None:
        """Give freshly committed envelopes straight to their peers' links."""
        self.outbound.hand_over(outcomes)

    async def ingest_batch(
        self, messages: Sequence[exchange_pb2.Envelope | Undecodable], member: Member, identity: PeerIdentity
    ) -> list[Signed]:
        """Verify, decide and durably record envelopes in one job (``services.ingress.receive_batch``)."""
        parsed: list[Envelope | MalformedError] = []
        for message in messages:
            if isinstance(message, Undecodable):  # refused like an envelope that does not parse
                parsed.append(MalformedError(message.detail))
                continue
            try:
                parsed.append(envelope_from_pb(message))
            except MalformedError as exc:
                parsed.append(exc)
        state, clock = self._state, self.clock
        return await self.commit.submit(
            lambda session: receive_batch(
                session,
                state,
                envelopes=parsed,
                peer=member.member_id,
                peer_tls_identity=member.tls_identity,
                peer_fingerprint=identity.fingerprint,
                now=clock(),
            ),
            ingress=len(parsed),
        )

    def receipt_batches(
        self,
        requests: AsyncIterator[exchange_pb2.EnvelopeBatch | Undecodable],
        member: Member,
        identity: PeerIdentity,
    ) -> AsyncGenerator[exchange_pb2.ReceiptBatch | EndCall]:
        """Pipelined ingress of one ``DeliverBatches`` call, within the stream bounds (``node.runtime.inbound``)."""

        async def ingest(messages: Sequence[exchange_pb2.Envelope]) -> list[Signed]:
            return await self.ingest_batch(messages, member, identity)

        async def refuse_batch(detail: str) -> None:
            await self.db(record_oversized_batch, peer=member.member_id, detail=detail, now=self.clock())

        return self.inbound.serve(
            member.member_id,
            requests,
            ingest=ingest,
            refuse_batch=refuse_batch,
            roster_version=lambda: self._state.roster.version,
        )

    async def publish_roster(self, signed: Signed, source: str) -> Ack:
        """A roster version delivered by ``source``: applied at once if newer (``RosterKeeper.publish``)."""
        return await self.rosters.publish(signed, source)

    async def await_ack(self, message_id: str, timeout: float) -> exchange_pb2.Ack | None:
        """Wait briefly for a queued control message's acknowledgement (None if not yet)."""
        return await self.control.await_ack(message_id, timeout)

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Bind both servers and start the background loops."""
        # The port first: a port in use fails the start before anything is written.
        self.exchange_server = grpc.aio.server(options=SERVER_OPTIONS)
        add_exchange_servicer(ExchangeServicer(self), self.exchange_server)
        await add_health_and_reflection(self.exchange_server, [EXCHANGE_SERVICE])
        bind_secure(self.exchange_server, self.cfg.listen, self.rosters.server_certificate.credentials())
        with opening(self.cfg.database_url):  # no server there, not a database: one typed error
            upgrade(self.cfg.database_url)
            # The commit loop next: every database call below goes through it.
            self._tasks = [asyncio.create_task(self.commit.loop())]
            signer = CheckpointSigner(self._state.signing_key, self._state.roster.federation, self.cfg.member_id)
            own_keys = self.rosters.own_signing_keys()
            # Refuse to run on a log that is not as this node left it, before appending to it.
            self.commit.tree = await self.commit.submit(lambda session: open_log(session, signer, own_keys))
            witnessed = os.environ.get(UNSAFE_NO_CHECKPOINTS_ENV) != "1"
            if not witnessed:  # a benchmark measuring what checkpoints cost; the log is then unprotected
                warnings.warn(f"{UNSAFE_NO_CHECKPOINTS_ENV} is set: no checkpoints, no witnessing", stacklevel=2)
                self.commit.tree.signer = None
            # The newest roster the node held, its agreements and keys under it (SPEC §11.12).
            await self.rosters.settle_at_start()
            await self.db(load_runtime_sets)
            # Versions put in force by amendment (SPEC §6.4) count before the start-up check.
            await self.db(hold_countersigned)
            await self.db(record_start, now=self.clock())
        self.desk_server = grpc.aio.server(options=SERVER_OPTIONS)
        desk_pb2_grpc.add_DeskServicer_to_server(DeskServicer(self), self.desk_server)
        await add_health_and_reflection(self.desk_server, [DESK_SERVICE])
        socket_path = Path(self.cfg.desk_socket)
        socket_path.unlink(missing_ok=True)
        old_umask = os.umask(0o177)  # the desk socket is for this node's officers only
        try:
            self.desk_server.add_insecure_port(f"unix:{socket_path}")
            await self.exchange_server.start()
            await self.desk_server.start()
        finally:
            os.umask(old_umask)
        watcher = watch_agreements(self.cfg.federation.agreements, self._state, self.commit, self.clock)
        self._tasks += [
            asyncio.create_task(self.outbound.poller.run()),
            asyncio.create_task(watcher),
            asyncio.create_task(self.control.poller.run()),
            asyncio.create_task(self.rosters.watch_staged_hpke()),
            asyncio.create_task(self.retention.run()),
        ]
        if witnessed:
            self._tasks.append(asyncio.create_task(self.witnessing.run()))

    async def stop(self) -> None:
        """Stop accepting calls, let in-flight ones finish briefly, then close."""
        for server in (self.exchange_server, self.desk_server):
            if server is not None:
                await server.stop(grace=2.0)
        tree = self.commit.tree
        if tree is not None and tree.unkept:  # the checkpoint history the last batches left (precision only)
            unkept = tree.unkept
            try:
                await asyncio.wait_for(self.commit.submit(lambda session: keep_rows(session, unkept)), timeout=5.0)
            except Exception as exc:  # the head still holds the latest checkpoint: nothing the start check needs
                logging.getLogger("intelshare.node").warning("checkpoint history not written at stop: %s", exc)
        for task in self._tasks:
            task.cancel()
        self.background.cancel_all()
        await self.channels.close()
        self.commit.close()
        self.engine.dispose()
