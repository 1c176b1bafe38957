"""An attacker-controlled peer for integration tests (in the style of python-tuf's
``tests/repository_simulator.py``).

The simulator loads members' real keys and certificates from a federation directory
written by ``init_federation`` and crafts envelopes and statements with the protocol's
own functions (``attest``, ``seal``, ``sign``), then bends them: a forged sender, a TLS
identity that is not the signer, a tampered label, a replayed envelope id, a stale
timestamp, a certificate from an unknown CA, no client certificate at all. Whatever it
builds it sends with a plain gRPC channel to a running node's ``Exchange`` service
(``Deliver``, or ``DeliverBatches`` for batches sealed with ``seal_many``), so every
attack goes through the node's real TLS handshake, identification and ingress.
``FakeReceiver`` plays the other side: a receiver that answers a sending node's batches
wrongly or not at all.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import grpc

from node import pki
from node.codec import envelope_to_pb, signed_from_pb, signed_to_pb
from node.config import NodeMaterial, load_material, load_node_config
from node.harness import make_label
from node.transport import CHANNEL_OPTIONS, SERVER_OPTIONS
from node.wire import exchange_pb2, exchange_pb2_grpc
from protocol.classification import Band
from protocol.envelope import (
    DEFAULT_SUITE,
    Envelope,
    EnvelopeHeader,
    OriginAttestation,
    SealRequest,
    attest,
    seal,
    seal_many,
)
from protocol.item import ReportTemplate
from protocol.keys import SigningKey
from protocol.label import Category, Label
from protocol.receipt import Receipt
from protocol.roster import Member, Roster
from protocol.statements import PayloadType, Signed, sign, verify_and_parse

__all__ = ["FakeReceiver", "Item", "PeerSimulator", "TlsIdentity"]

DELIVER = "/intelshare.v1.Exchange/Deliver"

#: Anything ``send_batches`` accepts as one envelope of a batch.
AnyEnvelope = Envelope | exchange_pb2.Envelope


@dataclass(frozen=True)
class TlsIdentity:
    """A client certificate chain and key to present, or none (``cert_pem is None``)."""

    cert_pem: bytes | None
    key_pem: bytes | None
    name: str


@dataclass(frozen=True)
class Item:
    """An attested item: the originator's signed statement and the plaintext it covers."""

    origin: Signed
    plaintext: bytes

    @property
    def attestation(self) -> OriginAttestation:
        return OriginAttestation.from_bytes(self.origin.payload)

    @property
    def item_id(self) -> str:
        return self.attestation.item_id


class PeerSimulator:
    """Crafts and sends envelopes as any member whose keys sit in the federation directory."""

    def __init__(self, root: Path, *, deadline: float = 10.0) -> None:
        self.root = root
        self.deadline = deadline
        self._channels: list[grpc.Channel] = []

    # --- material ------------------------------------------------------------------------

    def material(self, member_id: str) -> NodeMaterial:
        """A member's keys, certificate, roster and agreements, loaded like its node does."""
        return _material(self.root / "nodes" / member_id / "node.toml")

    @cached_property
    def roster(self) -> Roster:
        """The roster as every member loaded it (verified against the secretariat key)."""
        first = sorted(p.parent.name for p in self.root.glob("nodes/*/node.toml"))[0]
        return self.material(first).roster

    def member(self, member_id: str) -> Member:
        member = self.roster.member(member_id)
        assert member is not None, member_id
        return member

    def signing_key(self, member_id: str) -> SigningKey:
        return self.material(member_id).signing_key

    @property
    def ca_pem(self) -> bytes:
        return (self.root / "ca.pem").read_bytes()

    # --- TLS identities ------------------------------------------------------------------

    def tls(self, member_id: str) -> TlsIdentity:
        """The member's real client certificate."""
        m = self.material(member_id)
        return TlsIdentity(m.tls_cert_pem, m.tls_key_pem, member_id)

    def no_client_cert(self) -> TlsIdentity:
        return TlsIdentity(None, None, "no certificate")

    def unknown_ca_cert(self, claims: str) -> TlsIdentity:
        """A certificate naming ``claims`` but issued by a CA the federation never saw."""
        now = datetime.now(UTC)
        ca_key, ca_cert = pki.make_ca("rogue CA", now, 30)
        key, cert = pki.issue_member_cert(ca_key, ca_cert, claims, now=now, valid_days=30)
        return TlsIdentity(pki.cert_to_pem(cert), pki.key_to_pem(key), f"{claims} (unknown CA)")

    def federation_ca_cert(self, claims: str) -> TlsIdentity:
        """A certificate the federation CA issued (its key leaked) naming ``claims``.

        For a roster member this is a second certificate with the right SAN but not the
        roster's fingerprint; for anyone else it names no member at all.
        """
        now = datetime.now(UTC)
        ca_key = pki.key_from_pem((self.root / "ca.key").read_bytes())
        ca_cert = pki.cert_from_pem(self.ca_pem)
        key, cert = pki.issue_member_cert(ca_key, ca_cert, claims, now=now, valid_days=30)
        return TlsIdentity(pki.cert_to_pem(cert), pki.key_to_pem(key), f"{claims} (CA-issued, not in roster)")

    # --- crafting ------------------------------------------------------------------------

    def label(
        self,
        originator: str,
        *,
        band: Band = Band.CONFIDENTIAL,
        releasable_to: tuple[str, ...] = (),
        topics: tuple[str, ...] = ("terrorism",),
        category: Category = Category.INTELLIGENCE,
        marking: str | None = None,
        retain_days: int = 90,
        now: datetime | None = None,
    ) -> Label:
        """A label in ``originator``'s marking (or the ``marking`` given, right or wrong)."""
        lab = make_label(
            self.roster,
            originator,
            band=band,
            category=category,
            topics=topics,
            releasable_to=releasable_to,
            retain_days=retain_days,
            now=now,
        )
        if marking is not None:
            lab = lab.model_copy(update={"originator_marking": marking})
        return lab

    def attest(self, label: Label, *, signer: str | None = None, now: datetime | None = None) -> Item:
        """The originator's attestation of a fresh report (signed by ``signer`` if given)."""
        item = ReportTemplate(
            title="Simulated report",
            summary=f"crafted by the peer simulator {secrets.token_hex(4)}",
            body="body",
            assessment="assessment",
            grading=label.grading,
        )
        key = self.signing_key(signer or label.originator)
        origin, plaintext = attest(
            item_id=secrets.token_hex(16), label=label, item=item, originator_key=key, now=now or datetime.now(UTC)
        )
        return Item(origin, plaintext)

    def item(self, originator: str, **label_args: Any) -> Item:
        """Shorthand: a label and its attestation by the originator."""
        return self.attest(self.label(originator, **label_args))

    def envelope(
        self,
        item: Item,
        *,
        sender: str,
        recipient: str,
        consents: tuple[Signed, ...] = (),
        now: datetime | None = None,
        sign_as: str | None = None,
        agreement_with: str | None = None,
        hpke_of: str | None = None,
    ) -> Envelope:
        """Seal ``item`` from ``sender`` to ``recipient`` exactly as a node would.

        ``sign_as`` signs the header with another member's key; ``agreement_with`` names the
        agreement of another pair (default: the sender/recipient pair, if it has one);
        ``hpke_of`` encrypts to another member's HPKE key while still naming ``recipient``.
        """
        m = self.material(sender)
        target = self.member(recipient)
        if hpke_of is not None:
            target = target.model_copy(update={"hpke_keys": self.member(hpke_of).hpke_keys})
        agreement = m.agreements.get(sender, agreement_with or recipient)
        return seal(
            plaintext=item.plaintext,
            origin=item.origin,
            sender=sender,
            sender_key=self.signing_key(sign_as or sender),
            recipient=target,
            agreement_id=agreement.agreement_id if agreement else "NONE",
            agreement_version=agreement.version if agreement else 1,
            consents=consents,
            suite=DEFAULT_SUITE,
            now=now or datetime.now(UTC),
        )

    def seal_batch(
        self, items: Sequence[tuple[Item, str]], *, sender: str, now: datetime | None = None
    ) -> list[Envelope]:
        """Seal each (item, recipient) from ``sender`` as a node does a burst: ``seal_many``,
        so the headers share one batch signature (SPEC §4.6)."""
        m = self.material(sender)
        requests = []
        for item, recipient in items:
            agreement = m.agreements.get(sender, recipient)
            assert agreement is not None, (sender, recipient)
            requests.append(
                SealRequest(
                    item.plaintext, item.origin, self.member(recipient), agreement.agreement_id, agreement.version
                )
            )
        return seal_many(
            requests, sender=sender, sender_key=m.signing_key, suite=DEFAULT_SUITE, now=now or datetime.now(UTC)
        )

    @staticmethod
    def lift_header_signatures(envelope: Envelope, source: Envelope) -> Envelope:
        """``envelope`` with the header signatures of ``source`` (say, a sibling of its batch)."""
        header = Signed(
            payload_type=envelope.header.payload_type,
            payload=envelope.header.payload,
            signatures=source.header.signatures,
        )
        return Envelope(
            header=header, origin=envelope.origin, consents=envelope.consents, ciphertext=envelope.ciphertext
        )

    def resign_header(self, envelope: Envelope, signer: str, **updates: Any) -> Envelope:
        """Change header fields and sign again with ``signer``'s key (ciphertext unchanged)."""
        header = EnvelopeHeader.from_bytes(envelope.header.payload).model_copy(update=updates)
        return Envelope(
            header=sign(PayloadType.HEADER, header, [self.signing_key(signer)]),
            origin=envelope.origin,
            consents=envelope.consents,
            ciphertext=envelope.ciphertext,
        )

    @staticmethod
    def tamper_payload(signed: Signed, edit: Callable[[bytes], bytes]) -> Signed:
        """The same signatures over edited payload bytes."""
        return Signed(payload_type=signed.payload_type, payload=edit(signed.payload), signatures=signed.signatures)

    # --- sending -------------------------------------------------------------------------

    def _channel(self, to: str, tls: TlsIdentity) -> grpc.Channel:
        creds = grpc.ssl_channel_credentials(
            root_certificates=self.ca_pem, private_key=tls.key_pem, certificate_chain=tls.cert_pem
        )
        channel = grpc.secure_channel(self.member(to).endpoint, creds, options=CHANNEL_OPTIONS)
        self._channels.append(channel)
        return channel

    def send_bytes(self, data: bytes, *, to: str, tls: TlsIdentity) -> Signed:
        """Deliver exact wire bytes of an ``Envelope`` message; returns the signed receipt."""
        channel = self._channel(to, tls)
        call = channel.unary_unary(
            DELIVER, request_serializer=lambda b: b, response_deserializer=exchange_pb2.Receipt.FromString
        )
        reply = call(data, timeout=self.deadline)
        return signed_from_pb(reply.statement)

    def send(self, envelope: Envelope | exchange_pb2.Envelope, *, to: str, tls: TlsIdentity | str) -> Signed:
        """Deliver an envelope (protocol or raw wire message) over mutual TLS."""
        message = envelope_to_pb(envelope) if isinstance(envelope, Envelope) else envelope
        identity = self.tls(tls) if isinstance(tls, str) else tls
        return self.send_bytes(message.SerializeToString(), to=to, tls=identity)

    def batch_stream(
        self, batches: Iterable[Sequence[AnyEnvelope]], *, to: str, tls: TlsIdentity | str
    ) -> Iterator[list[Signed]]:
        """One ``DeliverBatches`` call writing each batch; yields each ``ReceiptBatch``'s receipts.

        Lazy: the receipts of earlier batches are seen before a later failure of the call.
        """
        identity = self.tls(tls) if isinstance(tls, str) else tls
        stub = exchange_pb2_grpc.ExchangeStub(self._channel(to, identity))
        requests = (
            exchange_pb2.EnvelopeBatch(envelopes=[envelope_to_pb(e) if isinstance(e, Envelope) else e for e in batch])
            for batch in batches
        )
        for reply in stub.DeliverBatches(requests, timeout=self.deadline):
            yield [signed_from_pb(receipt.statement) for receipt in reply.receipts]

    def send_batches(
        self, batches: Iterable[Sequence[AnyEnvelope]], *, to: str, tls: TlsIdentity | str
    ) -> list[list[Signed]]:
        """``batch_stream`` to the end: the receipts of every batch, in order."""
        return list(self.batch_stream(batches, to=to, tls=tls))

    def send_statement(self, rpc: str, signed: Signed, *, to: str, tls: TlsIdentity | str) -> exchange_pb2.Ack:
        """Call ``RequestConsent``, ``SendConsentDecision`` or ``Notify`` with a crafted statement."""
        identity = self.tls(tls) if isinstance(tls, str) else tls
        stub = exchange_pb2_grpc.ExchangeStub(self._channel(to, identity))
        ack: exchange_pb2.Ack = getattr(stub, rpc)(signed_to_pb(signed), timeout=self.deadline)
        return ack

    def receipt(self, signed: Signed, receiver: str) -> Receipt:
        """Verify ``receiver``'s signature on a receipt and parse it."""
        return verify_and_parse(signed, PayloadType.RECEIPT, [self.member(receiver).signing_key], Receipt)

    def close(self) -> None:
        for channel in self._channels:
            channel.close()
        self._channels.clear()


class FakeReceiver:
    """A dishonest receiver: serves ``DeliverBatches`` at a member's endpoint with its real
    certificate, answering each ``EnvelopeBatch`` as ``answer`` says (None: never answer).

    For testing a sender's node: the member's own node must not be running. Every batch
    received is kept in ``batches``. Use as a context manager.
    """

    def __init__(
        self,
        sim: PeerSimulator,
        member_id: str,
        answer: Callable[[exchange_pb2.EnvelopeBatch], exchange_pb2.ReceiptBatch | None],
    ) -> None:
        self.answer = answer
        self.batches: list[exchange_pb2.EnvelopeBatch] = []
        self._lock = threading.Lock()
        m = sim.material(member_id)
        self._server = grpc.server(ThreadPoolExecutor(max_workers=4), options=SERVER_OPTIONS)
        handler = grpc.stream_stream_rpc_method_handler(
            self._deliver_batches,
            request_deserializer=exchange_pb2.EnvelopeBatch.FromString,
            response_serializer=exchange_pb2.ReceiptBatch.SerializeToString,
        )
        self._server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("intelshare.v1.Exchange", {"DeliverBatches": handler}),)
        )
        credentials = grpc.ssl_server_credentials(
            [(m.tls_key_pem, m.tls_cert_pem)], root_certificates=sim.ca_pem, require_client_auth=True
        )
        self._server.add_secure_port(sim.member(member_id).endpoint, credentials)

    def _deliver_batches(
        self, requests: Iterator[exchange_pb2.EnvelopeBatch], context: grpc.ServicerContext
    ) -> Iterator[exchange_pb2.ReceiptBatch]:
        for batch in requests:
            with self._lock:
                self.batches.append(batch)
            reply = self.answer(batch)
            if reply is not None:
                yield reply

    def received(self) -> int:
        """How many envelopes arrived, over all batches."""
        with self._lock:
            return sum(len(batch.envelopes) for batch in self.batches)

    def __enter__(self) -> FakeReceiver:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop(grace=None).wait()


_MATERIAL: dict[Path, NodeMaterial] = {}


def _material(config: Path) -> NodeMaterial:
    if config not in _MATERIAL:
        _MATERIAL[config] = load_material(load_node_config(config))
    return _MATERIAL[config]
