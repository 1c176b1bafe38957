"""Asking the federation's running nodes for evidence and proofs, over mutual TLS (SPEC §11.10.9).

An auditor at a member's site speaks with the member's own TLS identity (its node's key
material) to the other members' running nodes:

- ``evidence_from_peers``: what each of them holds that commits to this member's log
  (checkpoints they co-signed, receipts and acknowledgements this member signed), each
  checked against the roster and turned into a ``Pin`` for ``node.audit.verify``. Nothing
  is read from their databases.
- ``check_inclusions``: from the other side, whether every receipt and acknowledgement
  this member holds from a log's owner names an entry that is in the largest checkpoint
  of that log this member co-signed, by asking the owner's node for inclusion proofs.
  A log rewritten under the owner's running node cannot prove an entry it no longer has.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import grpc
from sqlalchemy import select

from node.audit.sources import pin_from_checkpoint, pin_from_statement
from node.audit.verify import Pin
from node.codec import signed_from_pb
from node.config import NodeMaterial
from node.store import NoticeAckRow, OutboxEntry, WitnessedCheckpoint, make_reader, make_sessionmaker
from node.transport import CHANNEL_OPTIONS, channel_credentials
from node.wire import exchange_pb2, exchange_pb2_grpc
from protocol.checkpoint import verify_checkpoint
from protocol.errors import MalformedError, ProofError, RemoteProtocolError
from protocol.merkle import verify_inclusion
from protocol.statements import Signed

__all__ = ["Inclusion", "PeerAnswer", "channel_to", "check_inclusions", "evidence_from_peers"]

#: Seconds to wait for one peer.
DEADLINE = 30.0


@dataclass(frozen=True)
class PeerAnswer:
    """What one peer said: its pins, or why it could not be asked."""

    peer: str
    pins: list[Pin]
    error: str | None = None


@dataclass(frozen=True)
class Inclusion:
    """One entry a statement names, and whether the log's owner proved it is in the co-signed tree."""

    seq: int
    source: str
    included: bool
    detail: str


def channel_to(material: NodeMaterial, member: str) -> grpc.Channel:
    """A mutual-TLS channel to ``member``'s node, as this member (its node's certificate)."""
    peer = material.roster.member(member)
    if peer is None:
        raise MalformedError(f"{member} is not in the roster")
    credentials = channel_credentials(material.tls_cert_pem, material.tls_key_pem, material.ca_pem)
    return grpc.secure_channel(peer.endpoint, credentials, options=CHANNEL_OPTIONS)


def evidence_from_peers(material: NodeMaterial, *, limit: int = 1000) -> list[PeerAnswer]:
    """Ask every other member's node what it holds about this member's log (SPEC §11.10.9)."""
    me, roster = material.config.member_id, material.roster
    answers = []
    for peer in roster.members:
        if peer.member_id == me:
            continue
        pins: list[Pin] = []
        try:
            with channel_to(material, peer.member_id) as channel:
                stub = exchange_pb2_grpc.ExchangeStub(channel)
                for item in stub.Evidence(exchange_pb2.EvidenceRequest(limit=limit), timeout=DEADLINE):
                    pin = _pin(item, material, peer.member_id)
                    if pin is not None:
                        pins.append(pin)
        except grpc.RpcError as exc:
            answers.append(PeerAnswer(peer.member_id, pins, f"{exc.code().name}: {exc.details()}"))
            continue
        answers.append(PeerAnswer(peer.member_id, pins))
    return answers


def _pin(item: exchange_pb2.EvidenceItem, material: NodeMaterial, holder: str) -> Pin | None:
    me, roster = material.config.member_id, material.roster
    if item.HasField("witnessed_checkpoint"):
        return pin_from_checkpoint(item.witnessed_checkpoint, roster, me, holder)
    try:
        return pin_from_statement(signed_from_pb(item.statement), roster, me, holder)
    except MalformedError:
        return None


def check_inclusions(material: NodeMaterial, log: str, *, limit: int, now: datetime) -> tuple[int, list[Inclusion]]:
    """(co-signed size, each statement's entry checked) for ``log``'s owner, from this member's records."""
    me, roster = material.config.member_id, material.roster
    engine = make_reader(material.config.database_url)
    try:
        with make_sessionmaker(engine)() as session:
            note = session.scalar(
                select(WitnessedCheckpoint.note)
                .where(WitnessedCheckpoint.member == log)
                .order_by(WitnessedCheckpoint.size.desc())
                .limit(1)
            )
            receipts = session.scalars(
                select(OutboxEntry.receipt)
                .where(OutboxEntry.recipient == log, OutboxEntry.receipt.is_not(None))
                .order_by(OutboxEntry.updated_at.desc())
                .limit(limit)
            ).all()
            acks = session.scalars(select(NoticeAckRow.statement).where(NoticeAckRow.holder == log).limit(limit)).all()
    finally:
        engine.dispose()
    if note is None:
        raise MalformedError(f"{me} has co-signed no checkpoint of {log}'s log yet")
    try:
        checkpoint = verify_checkpoint(bytes(note), roster=roster, member_id=log).checkpoint
    except RemoteProtocolError as exc:
        raise MalformedError(f"the checkpoint of {log}'s log that {me} keeps does not verify: {exc}") from exc
    pins = [
        pin_from_statement(Signed.model_validate_json(blob), roster, log, me) for blob in [*receipts, *acks] if blob
    ]
    wanted = sorted({(p.size, p.source, p.leaf or "") for p in pins if p is not None and p.size <= checkpoint.size})
    results = []
    with channel_to(material, log) as channel:
        stub = exchange_pb2_grpc.ExchangeStub(channel)
        for seq, source, leaf in wanted:
            request = exchange_pb2.ProofRequest(size=checkpoint.size, index=seq - 1)
            try:
                proof = stub.Prove(request, timeout=DEADLINE)
                verify_inclusion(bytes.fromhex(leaf), seq - 1, checkpoint.size, list(proof.hashes), checkpoint.root)
            except grpc.RpcError as exc:
                results.append(Inclusion(seq, source, False, f"{log} gave no proof: {exc.details()}"))
            except ProofError as exc:
                results.append(Inclusion(seq, source, False, f"{log}'s proof fails: {exc}"))
            else:
                results.append(Inclusion(seq, source, True, "included"))
    return checkpoint.size, results
