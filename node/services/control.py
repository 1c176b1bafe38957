"""Durable control messages: consent messages and notices, retried until acknowledged (SPEC §11.9).

A control message is committed with the change it announces (``queue_control``); the
runtime's control pump reads the due ones (``due_control``), sends each by its
Exchange call and records the outcome (``control_acknowledged``, ``control_failed``).
Every state change goes through ``node.lifecycle.CONTROL_MESSAGE``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TypeVarTuple

from sqlalchemy import Row, Select, select
from sqlalchemy.orm import Session

from node.codec import signed_to_pb
from node.lifecycle import CONTROL_MESSAGE, ControlEvent, ControlRpc, ControlState
from node.services.state import NodeState
from node.store import ControlMessage
from protocol.statements import Signed

__all__ = [
    "CONTROL_QUEUED",
    "DueControl",
    "control_acknowledged",
    "control_answered",
    "control_failed",
    "due_control",
    "due_rows",
    "peer_behind",
    "queue_control",
]

Columns = TypeVarTuple("Columns")

#: Set in ``session.info`` when a job queued a control message: the pump is woken on commit.
CONTROL_QUEUED = "intelshare.control_queued"


def queue_control(session: Session, *, recipient: str, rpc: ControlRpc, statement: Signed, now: datetime) -> str:
    """Commit a control message with the change it announces; the pump delivers it (SPEC §11.9)."""
    message_id = f"{statement.digest}:{recipient}"
    existing = session.get(ControlMessage, message_id)
    if existing is not None:
        # Asked to send it again (e.g. a recall must follow an envelope that landed after
        # the first one): re-arm it. Receivers treat a repeat as a duplicate.
        existing.state = CONTROL_MESSAGE.next(existing.state, ControlEvent.REARMED)
        existing.next_attempt_at, existing.updated_at = now, now
    else:
        session.add(
            ControlMessage(
                message_id=message_id,
                recipient=recipient,
                rpc=rpc,
                statement=statement.model_dump_json().encode(),
                state=ControlState.PENDING,
                attempts=0,
                next_attempt_at=now,
                last_error=None,
                ack=None,
                created_at=now,
                updated_at=now,
            )
        )
    session.info[CONTROL_QUEUED] = True
    return message_id


@dataclass(frozen=True)
class DueControl:
    """A pending control message whose next attempt is due, in its wire form."""

    message_id: str
    recipient: str
    rpc: ControlRpc
    #: The ``exchange_pb2.Signed`` encoding, rebuilt once from the stored statement.
    wire: bytes
    attempts: int


def due_rows(
    session: Session, query: Select[str, *Columns], *, exclude: frozenset[str], limit: int
) -> list[Row[str, *Columns]]:
    """Up to ``limit`` rows of a due-work query whose first column is not in ``exclude`` (being worked on)."""
    rows = session.execute(query.limit(limit + len(exclude))).all()
    return [row for row in rows if row[0] not in exclude][:limit]


def due_control(
    session: Session, state: NodeState, *, limit: int, exclude: frozenset[str], now: datetime
) -> list[DueControl]:
    """Up to ``limit`` pending messages due by ``now``, oldest first, not in ``exclude``."""
    query = (
        select(
            ControlMessage.message_id,
            ControlMessage.recipient,
            ControlMessage.rpc,
            ControlMessage.statement,
            ControlMessage.attempts,
        )
        .where(ControlMessage.state == ControlState.PENDING, ControlMessage.next_attempt_at <= now)
        .order_by(ControlMessage.next_attempt_at)
    )
    # Stored as the JSON of the signed statement; the wire form is rebuilt from it once here.
    return [
        DueControl(
            message_id, recipient, rpc, signed_to_pb(Signed.model_validate_json(statement)).SerializeToString(), n
        )
        for message_id, recipient, rpc, statement, n in due_rows(session, query, exclude=exclude, limit=limit)
    ]


def control_acknowledged(session: Session, state: NodeState, *, message_id: str, ack: str, now: datetime) -> None:
    """The peer acknowledged the message; a stale answer (already acknowledged) changes nothing."""
    row = session.get(ControlMessage, message_id)
    if row is not None and CONTROL_MESSAGE.allows(row.state, ControlEvent.ACKNOWLEDGED):
        row.state = CONTROL_MESSAGE.next(row.state, ControlEvent.ACKNOWLEDGED)
        row.ack, row.attempts, row.updated_at = ack[:500], row.attempts + 1, now


def control_failed(
    session: Session, state: NodeState, *, message_id: str, error: str, retry_at: datetime, now: datetime
) -> None:
    """An attempt failed in transport: try again at ``retry_at``."""
    row = session.get(ControlMessage, message_id)
    if row is not None and CONTROL_MESSAGE.allows(row.state, ControlEvent.ATTEMPT_FAILED):
        row.state = CONTROL_MESSAGE.next(row.state, ControlEvent.ATTEMPT_FAILED)
        row.attempts += 1
        row.last_error, row.next_attempt_at, row.updated_at = error[:500], retry_at, now


def peer_behind(state: NodeState, peer_roster_version: int) -> bool:
    """Whether a peer's answer came under an older roster than this node holds (SPEC §11.12).

    0 means the peer did not say (a node that does not report its roster version).
    """
    return 0 < peer_roster_version < state.roster.version


def control_answered(
    session: Session,
    state: NodeState,
    *,
    message_id: str,
    ack: str,
    accepted: bool,
    peer_roster_version: int,
    retry_at: datetime,
    now: datetime,
) -> bool:
    """The peer answered; True if the message is now acknowledged.

    A refusal from a peer that holds an older roster than this node is not final: it is
    retried like a transport failure, by which time the roster this node passed on has
    reached the peer (SPEC §11.12), e.g. a statement signed with a key the peer does not
    know yet.
    """
    if not accepted and peer_behind(state, peer_roster_version):
        error = f"refused under roster v{peer_roster_version} (this node holds v{state.roster.version}): {ack}"
        control_failed(session, state, message_id=message_id, error=error, retry_at=retry_at, now=now)
        return False
    control_acknowledged(session, state, message_id=message_id, ack=ack, now=now)
    return True
