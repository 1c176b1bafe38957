"""The running node: gRPC servers, group commit, delivery and control pumps (SPEC §11).

Servicers are thin: they identify the TLS peer, translate wire messages with
``node.convert`` and call plain functions in ``node.core``. Every write is a job in one
group commit on the node's single database thread (SPEC §11.7): many jobs share one
transaction, and no caller (so no receipt) hears back before its job is committed.
Verifying, signing and sealing run in the jobs that commit their results. Envelopes go
out over one stream per peer (``PeerLink``, SPEC §11.6); control messages through a
durable outbox (SPEC §11.9).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import json
import logging
import os
import signal
import sys
import warnings
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import grpc
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from node import audit, core
from node.audit import AuditEvent
from node.config import NodeConfig, NodeMaterial, load_material, load_node_config
from node.convert import envelope_from_pb, signed_from_pb, signed_to_pb
from node.storage import (
    AuditEntryRow,
    AuditHead,
    ControlMessage,
    OutboxEntry,
    OutboxEnvelope,
    make_engine,
    make_sessionmaker,
    upgrade,
)
from node.transport import (
    CHANNEL_OPTIONS,
    SERVER_OPTIONS,
    PeerIdentity,
    add_health_and_reflection,
    bind_secure,
    channel_credentials,
    peer_identity,
    server_credentials,
)
from node.wire import desk_pb2_grpc, exchange_pb2, exchange_pb2_grpc
from protocol.encoding import sha256_hex
from protocol.envelope import Envelope
from protocol.errors import IntelshareError, MalformedError, RemoteProtocolError, RollbackError
from protocol.policy import Reason
from protocol.roster import Member
from protocol.statements import Signed

__all__ = ["GC_THRESHOLDS", "UNSAFE_CRASH_ENV", "Node", "run_node", "tune_gc", "utcnow"]

log = logging.getLogger("intelshare.node")
T = TypeVar("T")

_EOF = grpc.aio.EOF  # type: ignore[attr-defined]  # end of a stream; missing from the stubs
#: Test hook: crash (like kill -9) right after the N-th ingress commit, before replying.
UNSAFE_CRASH_ENV = "INTELSHARE_UNSAFE_CRASH_AFTER_COMMITS"
EXCHANGE_SERVICE = "intelshare.v1.Exchange"
DESK_SERVICE = "intelshare.v1.Desk"
#: Collector thresholds of a running node (see ``tune_gc``).
GC_THRESHOLDS = (10_000, 10, 10)


def utcnow() -> datetime:
    """The wall clock, read only at the edges of the node and passed inward."""
    return datetime.now(UTC)


#: The most envelopes one ``EnvelopeBatch`` may carry (SPEC §11.6); larger ones are refused.
MAX_ENVELOPE_BATCH = 256


@dataclass
class _Job:
    """One unit of work for the commit loop; ``ingress`` counts the envelopes it commits."""

    run: Callable[[Session], Any]
    future: asyncio.Future[Any]
    ingress: int = 0


class Node:
    """One member service's node: state, database thread, servers and delivery."""

    def __init__(self, cfg: NodeConfig, material: NodeMaterial) -> None:
        self.cfg = cfg
        self.material = material
        self.state = core.NodeState(
            me=cfg.member_id,
            signing_key=material.signing_key,
            hpke_keys=material.hpke_keys,
            at_rest=core.AtRestKey(material.at_rest_key),
            roster=material.roster,
            agreements=material.agreements,
            window=cfg.window,
            suite=cfg.suite,
            consent=cfg.consent,
        )
        upgrade(cfg.database_url)
        self.engine = make_engine(cfg.database_url)
        self.sessions: sessionmaker[Session] = make_sessionmaker(self.engine)
        # One writer thread: the database sees a single writer, commits stay ordered. It
        # also verifies, signs and seals, in the jobs that commit the results (SPEC §11.7).
        self._db_pool = ThreadPoolExecutor(1, thread_name_prefix="db")
        self._jobs: asyncio.Queue[_Job] = asyncio.Queue()
        self._outbox_wakeup = asyncio.Event()
        self._control_wakeup = asyncio.Event()
        #: Control message ids being sent, and officers waiting for a particular ack.
        self._control_in_flight: set[str] = set()
        self._ack_waiters: dict[str, asyncio.Future[exchange_pb2.Ack]] = {}
        #: Envelope ids queued on a link or awaiting a receipt: never dispatched twice.
        self._in_flight: set[str] = set()
        self._links: dict[str, PeerLink] = {}
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[Any]] = set()
        self._crash_after = int(os.environ.get(UNSAFE_CRASH_ENV, "0") or 0)
        if self._crash_after:
            warnings.warn(f"{UNSAFE_CRASH_ENV} is set: this node will crash on purpose", stacklevel=2)
        self._ingress_commits = 0
        self.exchange_server: grpc.aio.Server | None = None
        self.desk_server: grpc.aio.Server | None = None

    # --- database ---------------------------------------------------------------------

    async def db(self, fn: Callable[..., T], /, **kwargs: Any) -> T:
        """Run ``fn(session, state, **kwargs)`` in the next group commit and return its result.

        Everything the node writes goes through here: the commit loop runs queued jobs
        in one transaction, commits once, then answers every caller (SPEC §11.3). No
        caller hears back before its job is committed. The result is read after the
        session has closed: return values, or rows with every attribute loaded.
        """
        return await self._enqueue(lambda session: fn(session, self.state, **kwargs), ingress=0)

    async def _enqueue(self, run: Callable[[Session], T], *, ingress: int) -> T:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        await self._jobs.put(_Job(run, future, ingress))
        return await future

    async def _commit_loop(self) -> None:
        loop = asyncio.get_running_loop()
        batch_max = self.cfg.delivery.batch_max
        while True:
            batch = [await self._jobs.get()]
            while len(batch) < batch_max and not self._jobs.empty():
                batch.append(self._jobs.get_nowait())
            try:
                outcomes = await loop.run_in_executor(self._db_pool, self._run_group, batch)
            except Exception as exc:  # the commit itself failed: nothing was stored
                log.exception("group commit failed")
                outcomes = [(False, exc)] * len(batch)
            self._ingress_commits += sum(job.ingress for job in batch)
            if self._crash_after and self._ingress_commits >= self._crash_after:
                os._exit(137)  # Unsafe test hook: committed, receipts never sent.
            for job, (ok, value) in zip(batch, outcomes, strict=True):
                if job.future.done():
                    continue
                if ok:
                    job.future.set_result(value)
                else:
                    job.future.set_exception(value)

    def _run_group(self, batch: list[_Job]) -> list[tuple[bool, Any]]:
        """Run jobs in one transaction. A failing job is dropped and the rest re-run.

        Re-running from a clean transaction (rather than rolling back a savepoint)
        keeps the audit writer's cached chain head exact.
        """
        remaining = list(range(len(batch)))
        outcomes: dict[int, tuple[bool, Any]] = {}
        while remaining:
            with self.sessions() as session:
                failed = None
                for index in remaining:
                    try:
                        outcomes[index] = (True, batch[index].run(session))
                    except Exception as exc:
                        outcomes[index] = (False, exc)
                        failed = index
                        break
                if failed is None:
                    session.commit()
                    if session.info.pop(core.CONTROL_QUEUED, False):
                        self._control_wakeup.set()
                    break
                session.rollback()
                remaining.remove(failed)
        return [outcomes[index] for index in range(len(batch))]

    # --- identity ---------------------------------------------------------------------

    def _member_for(self, identity: PeerIdentity | None) -> Member | None:
        if identity is None:
            return None
        for member in self.state.roster.members:
            if member.tls_identity in identity.san_uris:
                return member
        return None

    async def identify(self, context: grpc.aio.ServicerContext[Any, Any]) -> tuple[Member, PeerIdentity]:
        """The roster member behind this TLS connection, or abort (and audit the refusal)."""
        identity = peer_identity(context)
        member = self._member_for(identity)
        fingerprint_ok = (
            member is not None
            and identity is not None
            and (member.tls_fingerprint is None or member.tls_fingerprint == identity.fingerprint)
        )
        if member is None or identity is None or not fingerprint_ok:
            who = ",".join(identity.san_uris) if identity else "no certificate"
            await self.db(_audit_refused_connection, who=who, peer_addr=context.peer(), now=utcnow())
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "peer is not a roster member")
        assert member is not None
        assert identity is not None
        return member, identity

    # --- ingress ----------------------------------------------------------------------

    async def ingest(self, message: exchange_pb2.Envelope, member: Member, identity: PeerIdentity) -> Signed:
        """Verify, decide and durably record one envelope; returns the signed receipt."""
        return (await self.ingest_batch([message], member, identity))[0]

    async def ingest_batch(
        self, messages: Sequence[exchange_pb2.Envelope], member: Member, identity: PeerIdentity
    ) -> list[Signed]:
        """Verify, decide and durably record envelopes; returns their signed receipts, in order.

        One job of the group commit verifies the batch (batch roots once, SPEC §4.6) and
        commits the decisions (``core.receive_batch``); the receipts share one batch
        signature.
        """
        parsed: list[Envelope | MalformedError] = []
        for message in messages:
            try:
                parsed.append(envelope_from_pb(message))
            except MalformedError as exc:
                parsed.append(exc)
        state, peer = self.state, member.member_id
        return await self._enqueue(
            lambda session: core.receive_batch(
                session,
                state,
                envelopes=parsed,
                peer=peer,
                peer_tls_identity=member.tls_identity,
                peer_fingerprint=identity.fingerprint,
                now=utcnow(),
            ),
            ingress=len(parsed),
        )

    # --- outbox -----------------------------------------------------------------------

    def wake_outbox(self) -> None:
        """Tell the outbox poller to look for due retries now."""
        self._outbox_wakeup.set()

    def hand_over(self, outcomes: Sequence[core.Outcome]) -> None:
        """Give freshly committed envelopes straight to their peers' links (no database re-read)."""
        for outcome in outcomes:
            if outcome.envelope_id is not None and outcome.envelope is not None:
                self._dispatch(outcome.envelope_id, outcome.recipient, outcome.envelope)

    def _dispatch(self, envelope_id: str, recipient: str, envelope: bytes) -> None:
        if envelope_id in self._in_flight:
            return
        self._in_flight.add(envelope_id)
        link = self._links.get(recipient)
        if link is None:
            link = self._links[recipient] = PeerLink(self, recipient)
        link.push(envelope_id, envelope)

    def channel(self, member_id: str) -> grpc.aio.Channel:
        """A cached mTLS channel to a member's endpoint."""
        channel = self._channels.get(member_id)
        if channel is None:
            member = self.state.roster.member(member_id)
            if member is None:
                raise core.DeskError(f"{member_id} is not in the roster")
            creds = channel_credentials(self.material.tls_cert_pem, self.material.tls_key_pem, self.material.ca_pem)
            channel = grpc.aio.secure_channel(member.endpoint, creds, options=CHANNEL_OPTIONS)
            self._channels[member_id] = channel
        return channel

    async def _outbox_loop(self) -> None:
        """Pick up pending envelopes that are due: at start-up and after failed attempts."""
        while True:
            self._outbox_wakeup.clear()
            due = await self.db(
                _due_outbox, limit=self.cfg.delivery.batch_max, exclude=frozenset(self._in_flight), now=utcnow()
            )
            for envelope_id, recipient, envelope, _attempts in due:
                self._dispatch(envelope_id, recipient, envelope)
            if len(due) < self.cfg.delivery.batch_max:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._outbox_wakeup.wait(), timeout=1.0)

    async def _watch_agreements(self, interval: float = 1.0) -> None:
        """Agreement files that change on disk take effect at once (SPEC §6.2).

        A newer version supersedes the held one (tightening applies to the next decision,
        on both sides, as each party's node picks it up); an older or altered one is
        refused as rollback. Every outcome is audited.
        """
        directory = self.cfg.federation.agreements
        seen = {path: path.stat().st_mtime_ns for path in directory.glob("*.json")}
        while True:
            await asyncio.sleep(interval)
            for path in sorted(directory.glob("*.json")):
                try:
                    mtime = path.stat().st_mtime_ns
                except OSError:
                    continue
                if seen.get(path) == mtime:
                    continue
                seen[path] = mtime
                try:
                    statement = Signed.from_bytes(path.read_bytes())
                    agreement = self.state.agreements.accept(statement, self.state.roster)
                    ok, detail = True, f"{agreement.agreement_id} v{agreement.version} held"
                except (IntelshareError, OSError) as exc:
                    ok, detail = False, str(exc)
                await self.db(_audit_agreement_update, file=path.name, ok=ok, detail=detail, now=utcnow())

    async def settle_batch(
        self, recipient: str, sent: Sequence[tuple[str, str]], statements: Sequence[exchange_pb2.Signed]
    ) -> None:
        """Verify receipts and commit them in one job (one batch root check, ``core.settle_receipts``)."""
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
            settled = await self.db(
                core.settle_receipts, recipient=recipient, sent=good, receipts=receipts, now=utcnow()
            )
            for envelope_id in settled.unmatched:
                log.warning("receipt for %s matches no outbox entry", envelope_id)
            for envelope_id, error in refused + settled.refused:
                await self.failed([envelope_id], 0, error)
        finally:
            for envelope_id, _ in sent:
                self._in_flight.discard(envelope_id)

    async def failed(self, envelope_ids: Sequence[str], attempts: int, error: str) -> None:
        """Schedule retries with exponential backoff; the poller re-sends them when due."""
        delivery = self.cfg.delivery
        now = utcnow()
        backoff = min(delivery.retry_max_seconds, delivery.retry_base_seconds * (2 ** min(attempts, 16)))
        await self.db(
            _record_delivery_errors,
            envelope_ids=list(envelope_ids),
            error=error,
            retry_at=now + timedelta(seconds=backoff),
            now=now,
        )
        for envelope_id in envelope_ids:
            self._in_flight.discard(envelope_id)
        self._spawn(self._wake_after(backoff))

    async def _wake_after(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self.wake_outbox()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _control_loop(self) -> None:
        """Deliver queued control messages until acknowledged, with backoff (SPEC §11.9)."""
        while True:
            self._control_wakeup.clear()
            due = await self.db(
                _due_control,
                limit=self.cfg.delivery.batch_max,
                exclude=frozenset(self._control_in_flight),
                now=utcnow(),
            )
            for message_id, recipient, rpc, statement, attempts in due:
                self._control_in_flight.add(message_id)
                self._spawn(self._send_control(message_id, recipient, rpc, statement, attempts))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._control_wakeup.wait(), timeout=1.0)

    async def _send_control(self, message_id: str, recipient: str, rpc: str, statement: bytes, attempts: int) -> None:
        delivery = self.cfg.delivery
        try:
            stub = exchange_pb2_grpc.ExchangeStub(self.channel(recipient))
            message = exchange_pb2.Signed.FromString(statement)
            ack: exchange_pb2.Ack = await getattr(stub, rpc)(message, timeout=delivery.deadline_seconds)
            await self.db(
                _control_acknowledged, message_id=message_id, ack=f"{ack.reason} {ack.detail}".strip(), now=utcnow()
            )
            waiter = self._ack_waiters.pop(message_id, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(ack)
        except grpc.aio.AioRpcError as exc:
            backoff = min(delivery.retry_max_seconds, delivery.retry_base_seconds * (2 ** min(attempts, 16)))
            now = utcnow()
            await self.db(
                _control_failed,
                message_id=message_id,
                error=str(exc.details()),
                retry_at=now + timedelta(seconds=backoff),
                now=now,
            )
            self._spawn(self._wake_control_after(backoff))
        finally:
            self._control_in_flight.discard(message_id)

    async def _wake_control_after(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self._control_wakeup.set()

    async def await_ack(self, message_id: str, timeout: float) -> exchange_pb2.Ack | None:
        """Wait briefly for a queued control message's acknowledgement (None if not yet)."""
        waiter = self._ack_waiters.setdefault(message_id, asyncio.get_running_loop().create_future())
        self._control_wakeup.set()
        try:
            return await asyncio.wait_for(asyncio.shield(waiter), timeout=timeout)
        except TimeoutError:
            return None

    # --- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        """Bind both servers and start the background loops."""
        from node.desk import DeskServicer  # the desk imports this module's Node type
        from node.exchange import ExchangeServicer

        # The commit loop first: every database call below goes through it.
        self._tasks = [asyncio.create_task(self._commit_loop())]
        await self.db(core.load_runtime_sets)
        await self.db(_audit_started, now=utcnow())
        self.exchange_server = grpc.aio.server(options=SERVER_OPTIONS)
        exchange_pb2_grpc.add_ExchangeServicer_to_server(ExchangeServicer(self), self.exchange_server)
        await add_health_and_reflection(self.exchange_server, [EXCHANGE_SERVICE])
        creds = server_credentials(self.material.tls_cert_pem, self.material.tls_key_pem, self.material.ca_pem)
        bind_secure(self.exchange_server, self.cfg.listen, creds)
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
        self._tasks.append(asyncio.create_task(self._outbox_loop()))
        self._tasks.append(asyncio.create_task(self._watch_agreements()))
        self._tasks.append(asyncio.create_task(self._control_loop()))

    async def stop(self) -> None:
        """Stop accepting calls, let in-flight ones finish briefly, then close."""
        for server in (self.exchange_server, self.desk_server):
            if server is not None:
                await server.stop(grace=2.0)
        for task in self._tasks:
            task.cancel()
        for channel in self._channels.values():
            await channel.close(None)
        self._db_pool.shutdown(wait=True)
        self.engine.dispose()


class PeerLink:
    """Delivery to one member over one ``DeliverBatches`` call (SPEC §11.6).

    Envelopes are written in batches as they come, up to ``max_in_flight`` unanswered;
    receipt batches come back in order and are settled concurrently. Any stream error hands every unsettled
    envelope back to the outbox with a backoff; the poller retries them when due.
    """

    def __init__(self, node: Node, recipient: str) -> None:
        self.node = node
        self.recipient = recipient
        self.queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        self.failures = 0
        self.task: asyncio.Task[None] | None = None

    def push(self, envelope_id: str, envelope: bytes) -> None:
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
        delivery = self.node.cfg.delivery
        capacity = delivery.max_in_flight
        batch_limit = max(1, min(capacity, delivery.batch_max, MAX_ENVELOPE_BATCH))
        in_flight = 0
        room = asyncio.Event()
        loop = asyncio.get_running_loop()
        #: One entry per batch written and not yet answered: when, and (envelope id, digest) each.
        sent: collections.deque[tuple[float, list[tuple[str, str]]]] = collections.deque()
        stub = exchange_pb2_grpc.ExchangeStub(self.node.channel(self.recipient))
        call = stub.DeliverBatches()

        async def write() -> None:
            nonlocal in_flight
            while True:
                # Wait for room before taking anything off the queue: an envelope taken
                # and then abandoned by a failing call would be handed back to no one.
                while in_flight >= capacity:
                    room.clear()
                    await room.wait()
                try:
                    first = await asyncio.wait_for(self.queue.get(), timeout=5.0)
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
                    wait = sent[0][0] + delivery.deadline_seconds - loop.time() if sent else 1.0
                    if wait <= 0:
                        raise TimeoutError(f"no receipts within {delivery.deadline_seconds} s")
                    done, _ = await asyncio.wait({reading}, timeout=min(wait, 1.0))
                    if not done:
                        continue
                    reply = reading.result()
                    if reply is _EOF:
                        return
                    ids = sent[0][1]
                    if len(reply.receipts) != len(ids):
                        raise RemoteProtocolError(f"{len(reply.receipts)} receipts for a batch of {len(ids)}")
                    sent.popleft()
                    in_flight -= len(ids)
                    room.set()
                    statements = [receipt.statement for receipt in reply.receipts]
                    self.node._spawn(self.node.settle_batch(self.recipient, ids, statements))
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
            detail = exc.details() if isinstance(exc, grpc.aio.AioRpcError) else f"{type(exc).__name__}: {exc}"
            unsettled = [envelope_id for _, ids in sent for envelope_id, _ in ids]
            while not self.queue.empty():
                unsettled.append(self.queue.get_nowait()[0])
            self.failures += 1
            await self.node.failed(unsettled, self.failures, str(detail))


def _audit_refused_connection(
    session: Session, state: core.NodeState, *, who: str, peer_addr: str, now: datetime
) -> None:
    audit.append(
        session,
        now=now,
        event=AuditEvent.CONNECTION_REFUSED,
        actor=state.me,
        peer=who,
        allowed=False,
        reason="UNKNOWN_PEER",
        detail={"address": peer_addr},
    )


def _audit_agreement_update(
    session: Session, state: core.NodeState, *, file: str, ok: bool, detail: str, now: datetime
) -> None:
    audit.append(
        session,
        now=now,
        event=AuditEvent.AGREEMENT_UPDATED,
        actor=state.me,
        allowed=ok,
        reason="AGREEMENT_HELD" if ok else "AGREEMENT_REFUSED",
        detail={"file": file, "detail": detail, "agreements": _held_versions(state) if ok else []},
    )


def _held_versions(state: core.NodeState) -> list[str]:
    return sorted(f"{a.agreement_id}:{a.version}" for a in state.agreements.agreements())


def _audit_started(session: Session, state: core.NodeState, *, now: datetime) -> None:
    """Refuse to run under an older roster or agreement than before (SPEC §5.3), then record these.

    The node's own audit log is the durable record of the highest versions it acted
    under, so replacing the files with older signed ones does not survive a restart.
    """
    roster_seen, agreements_seen = 0, dict[str, int]()
    for row in session.scalars(
        select(AuditEntryRow).where(
            AuditEntryRow.event.in_((AuditEvent.NODE_STARTED.value, AuditEvent.AGREEMENT_UPDATED.value))
        )
    ):
        detail = json.loads(row.detail)
        roster_seen = max(roster_seen, int(detail.get("roster_version", 0)))
        for held in detail.get("agreements", []):
            agreement_id, _, version = str(held).rpartition(":")
            agreements_seen[agreement_id] = max(agreements_seen.get(agreement_id, 0), int(version))
    if state.roster.version < roster_seen:
        raise RollbackError(f"roster version {state.roster.version} is older than version {roster_seen} already used")
    for agreement in state.agreements.agreements():
        if agreement.version < agreements_seen.get(agreement.agreement_id, 0):
            raise RollbackError(
                f"agreement {agreement.agreement_id} v{agreement.version} is older than "
                f"v{agreements_seen[agreement.agreement_id]} already used"
            )
    audit.append(
        session,
        now=now,
        event=AuditEvent.NODE_STARTED,
        actor=state.me,
        detail={"roster_version": state.roster.version, "agreements": _held_versions(state)},
    )


def _due_control(
    session: Session, state: core.NodeState, *, limit: int, exclude: frozenset[str], now: datetime
) -> list[tuple[str, str, str, bytes, int]]:
    rows = session.execute(
        select(
            ControlMessage.message_id,
            ControlMessage.recipient,
            ControlMessage.rpc,
            ControlMessage.statement,
            ControlMessage.attempts,
        )
        .where(ControlMessage.state == "pending", ControlMessage.next_attempt_at <= now)
        .order_by(ControlMessage.next_attempt_at)
        .limit(limit + len(exclude))
    ).all()
    # Stored as the JSON of the signed statement; the wire form is rebuilt from it once here.
    out = []
    for message_id, recipient, rpc, statement, attempts in rows:
        if message_id not in exclude:
            wire = signed_to_pb(Signed.model_validate_json(statement)).SerializeToString()
            out.append((message_id, recipient, rpc, wire, attempts))
    return out[:limit]


def _control_acknowledged(session: Session, state: core.NodeState, *, message_id: str, ack: str, now: datetime) -> None:
    row = session.get(ControlMessage, message_id)
    if row is not None and row.state == "pending":
        row.state, row.ack, row.attempts, row.updated_at = "acknowledged", ack[:500], row.attempts + 1, now


def _control_failed(
    session: Session, state: core.NodeState, *, message_id: str, error: str, retry_at: datetime, now: datetime
) -> None:
    row = session.get(ControlMessage, message_id)
    if row is not None and row.state == "pending":
        row.attempts += 1
        row.last_error, row.next_attempt_at, row.updated_at = error[:500], retry_at, now


def _record_delivery_errors(
    session: Session,
    state: core.NodeState,
    *,
    envelope_ids: list[str],
    error: str,
    retry_at: datetime,
    now: datetime,
) -> None:
    for envelope_id in envelope_ids:
        core.record_delivery_error(session, state, envelope_id=envelope_id, error=error, retry_at=retry_at, now=now)


def _due_outbox(
    session: Session, state: core.NodeState, *, limit: int, exclude: frozenset[str], now: datetime
) -> list[tuple[str, str, bytes, int]]:
    rows = session.execute(
        select(OutboxEntry.envelope_id, OutboxEntry.recipient, OutboxEnvelope.envelope, OutboxEntry.attempts)
        .join(OutboxEnvelope, OutboxEnvelope.envelope_id == OutboxEntry.envelope_id)
        .where(OutboxEntry.state == "pending", OutboxEntry.next_attempt_at <= now)
        .order_by(OutboxEntry.next_attempt_at)
        .limit(limit + len(exclude))
    ).all()
    return [(r[0], r[1], r[2], r[3]) for r in rows if r[0] not in exclude][:limit]


def audit_head(session: Session) -> int:
    """The sequence number of the newest audit entry."""
    return int(session.scalar(select(func.coalesce(AuditHead.seq, 0)).where(AuditHead.id == 1)) or 0)


def tune_gc() -> None:
    """Set the cyclic garbage collector up for a long-running node (call once started).

    What start-up loaded (modules, schemas, compiled statements, key material) lives as
    long as the process, so it is frozen out of every later collection; and young
    objects are collected after ``GC_THRESHOLDS[0]`` new containers instead of 700. The
    hot path makes few reference cycles; with the defaults the collector took about
    100 µs per delivered item, and nodes in ``tests/perf/bench_exchange.py`` spend
    10–20% less CPU per item with this set-up.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


async def _serve(config_path: Path, ready: Callable[[str], None]) -> None:
    cfg = load_node_config(config_path)
    node = Node(cfg, load_material(cfg))
    await node.start()
    tune_gc()
    ready(f"node {cfg.member_id} ready on {cfg.listen}, desk {cfg.desk_socket}")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await node.stop()


def run_node(config_path: Path) -> None:
    """Run a node until SIGTERM or SIGINT. Prints one ``ready`` line when serving."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)

    def ready(line: str) -> None:
        print(line, flush=True)

    asyncio.run(_serve(config_path, ready))


async def stream_receipts(
    node: Node, requests: AsyncIterator[exchange_pb2.Envelope], member: Member, identity: PeerIdentity
) -> AsyncIterator[exchange_pb2.Receipt]:
    """Pipelined stream ingress: envelopes are verified concurrently, receipts return in order."""
    pending: asyncio.Queue[asyncio.Future[Signed] | None] = asyncio.Queue(maxsize=256)

    async def read() -> None:
        try:
            async for message in requests:
                await pending.put(asyncio.ensure_future(node.ingest(message, member, identity)))
        finally:
            await pending.put(None)

    reader = asyncio.ensure_future(read())
    try:
        while (future := await pending.get()) is not None:
            yield exchange_pb2.Receipt(statement=signed_to_pb(await future))
    finally:
        reader.cancel()


async def stream_receipt_batches(
    node: Node,
    requests: AsyncIterator[exchange_pb2.EnvelopeBatch],
    member: Member,
    identity: PeerIdentity,
) -> AsyncIterator[exchange_pb2.ReceiptBatch | str]:
    """Pipelined batch ingress: batches are verified concurrently, receipt batches return in order.

    Yields a string instead of a receipt batch when the peer sent an oversized batch:
    the caller ends the call with that message (the refusal is audited first).
    """
    pending: asyncio.Queue[asyncio.Future[list[Signed]] | str | None] = asyncio.Queue(maxsize=16)

    async def read() -> None:
        try:
            async for batch in requests:
                if len(batch.envelopes) > MAX_ENVELOPE_BATCH:
                    detail = f"a batch of {len(batch.envelopes)} envelopes exceeds {MAX_ENVELOPE_BATCH}"
                    await node.db(_audit_oversized_batch, peer=member.member_id, detail=detail, now=utcnow())
                    await pending.put(detail)
                    return
                await pending.put(asyncio.ensure_future(node.ingest_batch(batch.envelopes, member, identity)))
        finally:
            await pending.put(None)

    reader = asyncio.ensure_future(read())
    try:
        while (future := await pending.get()) is not None:
            if isinstance(future, str):
                yield future
                return
            receipts = await future
            yield exchange_pb2.ReceiptBatch(
                receipts=[exchange_pb2.Receipt(statement=signed_to_pb(r)) for r in receipts]
            )
    finally:
        reader.cancel()


def _audit_oversized_batch(session: Session, state: core.NodeState, *, peer: str, detail: str, now: datetime) -> None:
    audit.append(
        session,
        now=now,
        event=AuditEvent.INGRESS,
        actor=state.me,
        peer=peer,
        allowed=False,
        reason=Reason.ENVELOPE_MALFORMED.value,
        detail={"detail": detail},
    )
