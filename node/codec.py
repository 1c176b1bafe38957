"""Translation between wire messages (``node.wire``) and protocol objects, and the stored forms.

The servicers in ``node.rpc`` call these before they call ``node.services``; the
services store an outgoing envelope in its wire encoding (``envelope_to_bytes``), so a
retry sends the stored bytes as they are. Nothing here re-serialises signed bytes:
payloads are carried as they arrived.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from google.protobuf.message import DecodeError
from pydantic import TypeAdapter, ValidationError

from node.wire import exchange_pb2
from protocol.envelope import Envelope
from protocol.errors import MalformedError
from protocol.statements import Signature, Signed

__all__ = [
    "MAX_ENVELOPE_BATCH",
    "Undecodable",
    "chain_from_bytes",
    "chain_to_bytes",
    "envelope_from_bytes",
    "envelope_from_pb",
    "envelope_to_bytes",
    "envelope_to_pb",
    "lenient",
    "signed_from_pb",
    "signed_to_pb",
]

M = TypeVar("M")

_CHAIN = TypeAdapter(tuple[Signed, ...])

#: The most envelopes one ``EnvelopeBatch`` may carry (SPEC §11.6); larger ones are refused.
MAX_ENVELOPE_BATCH = 256


@dataclass(frozen=True)
class Undecodable:
    """A request message whose bytes do not decode as its wire type (SPEC §11.1).

    Handed to the servicer in place of the message, so the call is answered (or ended with
    a status) and audited like any other refusal, never dropped or left to the gRPC library.
    """

    what: str
    detail: str


def lenient(parse: Callable[[bytes], M], what: str) -> Callable[[bytes], M | Undecodable]:
    """A request deserializer that returns ``Undecodable`` where ``parse`` fails."""

    def decode(data: bytes) -> M | Undecodable:
        try:
            return parse(data)
        except DecodeError as exc:
            return Undecodable(what, f"{what} does not decode: {exc}")

    return decode


def signed_to_pb(signed: Signed) -> exchange_pb2.Signed:
    """Protocol statement to wire message."""
    return exchange_pb2.Signed(
        payload_type=signed.payload_type,
        payload=signed.payload,
        signatures=[exchange_pb2.Signature(keyid=s.keyid, alg=s.alg, sig=s.sig) for s in signed.signatures],
    )


def signed_from_pb(message: exchange_pb2.Signed) -> Signed:
    """Wire message to protocol statement; ``MalformedError`` if it breaks the limits."""
    try:
        return Signed(
            payload_type=message.payload_type,
            payload=message.payload,
            signatures=tuple(Signature(keyid=s.keyid, alg=s.alg, sig=s.sig) for s in message.signatures),
        )
    except ValidationError as exc:
        raise MalformedError(f"signed statement is malformed: {exc.errors()[0]['msg']}") from exc


def envelope_to_pb(envelope: Envelope) -> exchange_pb2.Envelope:
    """Protocol envelope to wire message."""
    return exchange_pb2.Envelope(
        header=signed_to_pb(envelope.header),
        origin=signed_to_pb(envelope.origin),
        consents=[signed_to_pb(c) for c in envelope.consents],
        ciphertext=envelope.ciphertext,
    )


def envelope_from_pb(message: exchange_pb2.Envelope) -> Envelope:
    """Wire envelope to protocol envelope; ``MalformedError`` if a part is missing."""
    if not message.HasField("header") or not message.HasField("origin"):
        raise MalformedError("envelope lacks a header or an origin attestation")
    return Envelope(
        header=signed_from_pb(message.header),
        origin=signed_from_pb(message.origin),
        consents=tuple(signed_from_pb(c) for c in message.consents),
        ciphertext=message.ciphertext,
    )


def envelope_to_bytes(envelope: Envelope) -> bytes:
    """Bytes for the outbox: the wire encoding, sent as stored on every retry."""
    return envelope_to_pb(envelope).SerializeToString()


def envelope_from_bytes(data: bytes) -> Envelope:
    """Inverse of ``envelope_to_bytes``."""
    message = exchange_pb2.Envelope()
    message.ParseFromString(data)
    return envelope_from_pb(message)


def chain_to_bytes(chain: Sequence[Signed]) -> bytes:
    """A consent chain for storage."""
    return _CHAIN.dump_json(tuple(chain))


def chain_from_bytes(data: bytes) -> tuple[Signed, ...]:
    """Inverse of ``chain_to_bytes``."""
    return _CHAIN.validate_json(data)
