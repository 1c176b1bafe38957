"""The control pump: durable control messages sent until acknowledged (SPEC §11.9)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import grpc

from node.audit import AuditEvent
from node.codec import signed_from_pb
from node.lifecycle import ControlRpc
from node.runtime.due import DuePoller, PumpContext
from node.services import control, notices
from node.services.control import DueControl
from node.wire import exchange_pb2, exchange_pb2_grpc
from protocol.errors import MalformedError
from protocol.policy import Reason

__all__ = ["ControlPump"]


class ControlPump:
    """Sends each due control message by its Exchange call and records the outcome."""

    def __init__(self, context: PumpContext) -> None:
        self.context = context
        self.poller: DuePoller[DueControl] = DuePoller(self._due, self._start, limit=context.settings.batch_max)
        #: Officers waiting briefly for a particular acknowledgement (``await_ack``).
        self._ack_waiters: dict[str, asyncio.Future[exchange_pb2.Ack]] = {}

    async def _due(self, exclude: frozenset[str]) -> list[DueControl]:
        context = self.context
        return await context.commit.run(
            control.due_control, limit=context.settings.batch_max, exclude=exclude, now=context.clock()
        )

    def _start(self, due: DueControl) -> None:
        if self.poller.claim(due.message_id):
            self.context.background.spawn(self._send(due))

    async def _send(self, due: DueControl) -> None:
        context = self.context
        try:
            stub = exchange_pb2_grpc.ExchangeStub(context.channels.get(due.recipient))
            method = {
                ControlRpc.REQUEST_CONSENT: stub.RequestConsent,
                ControlRpc.SEND_CONSENT_DECISION: stub.SendConsentDecision,
                ControlRpc.NOTIFY: stub.Notify,
                ControlRpc.ACKNOWLEDGE: stub.Acknowledge,
                ControlRpc.PUBLISH_ROSTER: stub.PublishRoster,
                ControlRpc.AMEND_AGREEMENT: stub.AmendAgreement,
            }[due.rpc]
            ack: exchange_pb2.Ack = await method(
                exchange_pb2.Signed.FromString(due.wire), timeout=context.settings.deadline_seconds
            )
            answer = f"{ack.reason} {ack.detail}".strip()
            seconds = context.backoff.delay(due.attempts)
            now = context.clock()
            acknowledged = await context.commit.run(
                control.control_answered,
                message_id=due.message_id,
                ack=answer,
                accepted=ack.accepted,
                peer_roster_version=ack.roster_version,
                retry_at=now + timedelta(seconds=seconds),
                now=now,
            )
            if not acknowledged:  # refused under an older roster: tried again (SPEC §11.12)
                context.background.spawn(self.poller.wake_after(seconds))
                return
            if ack.HasField("statement"):  # the holder's signed acknowledgement of a notice (SPEC §10.3)
                await self._keep_notice_ack(ack.statement, due.recipient)
            waiter = self._ack_waiters.pop(due.message_id, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(ack)
        except grpc.aio.AioRpcError as exc:
            seconds = context.backoff.delay(due.attempts)
            now = context.clock()
            await context.commit.run(
                control.control_failed,
                message_id=due.message_id,
                error=str(exc.details()),
                retry_at=now + timedelta(seconds=seconds),
                now=now,
            )
            context.background.spawn(self.poller.wake_after(seconds))
        finally:
            self.poller.release(due.message_id)

    async def _keep_notice_ack(self, statement: exchange_pb2.Signed, holder: str) -> None:
        """Record (or refuse, audited) the acknowledgement a notice's reply carried."""
        context = self.context
        try:
            signed = signed_from_pb(statement)
        except MalformedError as exc:
            await context.commit.run(
                notices.refuse_remote,
                AuditEvent.NOTICE_ACKNOWLEDGED,
                holder,
                Reason.ENVELOPE_MALFORMED,
                str(exc),
                context.clock(),
            )
            return
        await context.commit.run(notices.receive_ack, signed=signed, peer=holder, now=context.clock())

    async def await_ack(self, message_id: str, timeout: float) -> exchange_pb2.Ack | None:
        """Wait briefly for a queued control message's acknowledgement (None if not yet)."""
        waiter = self._ack_waiters.setdefault(message_id, asyncio.get_running_loop().create_future())
        self.poller.wake()
        try:
            return await asyncio.wait_for(asyncio.shield(waiter), timeout=timeout)
        except TimeoutError:
            return None
