"""Fuzz targets for every parser a peer reaches in ``node/`` (SPEC §11.1, §11.3, §3.4).

What a member's bytes go through at a node before anything is stored, in the node's own
code: the lenient decoding of each ``Exchange`` request (``node.codec.lenient``, which
may not raise at all), the wire → protocol conversion (``node.codec``: only
``MalformedError``), then what the servicers hand on: a batch's envelopes through
``node.services.ingress.check_ingress_batch`` (never raises: every bad envelope is a
refusal), a control call's statement through ``node.rpc.exchange._statement`` (a
statement or an ``ENVELOPE_MALFORMED`` ack), a witness request through the witness rule
(a decision, never an exception), and, at the sender, a ``ReceiptBatch``'s receipts
through ``node.services.delivery.check_receipts`` (each verified or refused).

Inputs: random bytes; the wire bytes of valid messages mutated at the byte level; and
messages built field by field from random values (so that decoding succeeds and the
conversion and checks behind it run). Used by ``tests/node/test_fuzz_node.py`` (a
bounded slice) and by ``tests/fuzz/fuzz_parsers.py`` (10^5 inputs over all targets).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from fuzz.parsers import CORPUS, mutated_bytes
from hypothesis import strategies as st
from support import NOW, WINDOW, default_book, hpke_keys, roster, signing_key

from node.codec import Undecodable, envelope_from_pb, envelope_to_pb, lenient, signed_from_pb, signed_to_pb
from node.config import ConsentPolicy
from node.rpc.exchange import _statement
from node.services.delivery import check_receipts
from node.services.ingress import check_ingress_batch
from node.services.state import AtRestKey, NodeState
from node.wire import exchange_pb2
from protocol.checkpoint import witness
from protocol.envelope import Envelope
from protocol.errors import MalformedError
from protocol.statements import PayloadType, Signed

__all__ = ["NODE_TARGETS"]


def _state(member: str) -> NodeState:
    """A member's node state as ``Node`` builds it, from the fixed test keys."""
    return NodeState(
        me=member,
        signing_key=signing_key(member),
        hpke_keys=hpke_keys(member),
        at_rest=AtRestKey(bytes(32)),
        roster=roster(),
        agreements=default_book(),
        window=WINDOW,
        consent=ConsentPolicy(),
    )


TR = _state("TR")
KZ = _state("KZ")

# --- inputs ----------------------------------------------------------------------------------

_TEXT = st.text(max_size=40)
_BYTES = st.binary(max_size=120)
_SIGNATURES = st.lists(st.builds(exchange_pb2.Signature, keyid=_TEXT, alg=_TEXT, sig=_BYTES), max_size=3)
_PAYLOAD_TYPES = st.one_of(_TEXT, st.sampled_from([t.value for t in PayloadType]))


def _real_signed(signed: Signed) -> st.SearchStrategy[exchange_pb2.Signed]:
    """A real statement with its payload type, payload or signatures replaced at random."""
    message = signed_to_pb(signed)
    return st.one_of(
        st.just(message),
        st.builds(lambda t: exchange_pb2.Signed(payload_type=t, payload=message.payload), _PAYLOAD_TYPES),
        st.builds(
            lambda p, s: exchange_pb2.Signed(payload_type=message.payload_type, payload=p, signatures=s),
            _BYTES,
            _SIGNATURES,
        ),
    )


RANDOM_SIGNED = st.builds(exchange_pb2.Signed, payload_type=_PAYLOAD_TYPES, payload=_BYTES, signatures=_SIGNATURES)
SIGNED = st.one_of(RANDOM_SIGNED, _real_signed(CORPUS.envelope.header), _real_signed(CORPUS.origin))


@st.composite
def wire_envelopes(draw: st.DrawFn) -> exchange_pb2.Envelope:
    """A real envelope with parts swapped for random ones, or one built from random parts."""
    message = envelope_to_pb(draw(st.sampled_from([CORPUS.envelope, CORPUS.reshare])))
    if draw(st.booleans()):
        message.header.CopyFrom(draw(SIGNED))
    if draw(st.booleans()):
        message.origin.CopyFrom(draw(SIGNED))
    if draw(st.booleans()):
        del message.consents[:]
        message.consents.extend(draw(st.lists(SIGNED, max_size=2)))
    if draw(st.booleans()):
        message.ciphertext = draw(_BYTES)
    for part in draw(st.lists(st.sampled_from(["header", "origin"]), max_size=2)):
        message.ClearField(part)
    return message


_BATCH_SEED = exchange_pb2.EnvelopeBatch(envelopes=[envelope_to_pb(CORPUS.envelope)]).SerializeToString()
_ENVELOPE_SEED = envelope_to_pb(CORPUS.envelope).SerializeToString()
BATCH_BYTES = st.one_of(
    st.binary(max_size=300),
    mutated_bytes((_BATCH_SEED,)),
    st.lists(wire_envelopes(), max_size=3).map(lambda e: exchange_pb2.EnvelopeBatch(envelopes=e).SerializeToString()),
)
ENVELOPE_BYTES = st.one_of(
    st.binary(max_size=300), mutated_bytes((_ENVELOPE_SEED,)), wire_envelopes().map(lambda e: e.SerializeToString())
)
SIGNED_BYTES = st.one_of(
    st.binary(max_size=200),
    mutated_bytes((signed_to_pb(CORPUS.statements[PayloadType.RECALL]).SerializeToString(),)),
    SIGNED.map(lambda s: s.SerializeToString()),
)
_RECEIPT = signed_to_pb(CORPUS.statements[PayloadType.RECEIPT])
RECEIPT_BATCH_BYTES = st.one_of(
    st.binary(max_size=300),
    mutated_bytes(
        (exchange_pb2.ReceiptBatch(receipts=[exchange_pb2.Receipt(statement=_RECEIPT)]).SerializeToString(),)
    ),
    st.lists(st.one_of(SIGNED, _real_signed(CORPUS.statements[PayloadType.RECEIPT])), max_size=3).map(
        lambda s: exchange_pb2.ReceiptBatch(receipts=[exchange_pb2.Receipt(statement=x) for x in s]).SerializeToString()
    ),
)
WITNESS_BYTES = st.one_of(
    st.binary(max_size=300),
    st.builds(lambda body: exchange_pb2.WitnessRequest(request=body).SerializeToString(), st.binary(max_size=300)),
    st.builds(
        lambda lines: exchange_pb2.WitnessRequest(request=b"\n".join(lines)).SerializeToString(),
        st.lists(st.sampled_from([b"old 0", b"old 18446744073709551616", b"", b"OTS", b"1", b"AAAA", b"\xe2\x80"])),
    ),
)

# --- targets ---------------------------------------------------------------------------------


def _convert(messages: list[exchange_pb2.Envelope | Undecodable]) -> list[Envelope | MalformedError]:
    """What ``Node.ingest_batch`` does before the commit: each envelope converted, or its error kept."""
    out: list[Envelope | MalformedError] = []
    for message in messages:
        if isinstance(message, Undecodable):
            out.append(MalformedError(message.detail))
            continue
        try:
            out.append(envelope_from_pb(message))
        except MalformedError as exc:
            out.append(exc)
    return out


def _ingress(messages: list[exchange_pb2.Envelope | Undecodable]) -> None:
    tls = TR.roster.member("KZ")
    assert tls is not None
    checked = check_ingress_batch(
        TR, envelopes=_convert(messages), peer_tls_identity=tls.tls_identity, peer_fingerprint=None, now=NOW
    )
    for _, result in checked:
        assert result.decision.allowed is (result.item is not None)


def target_batch(data: bytes) -> None:
    """SPEC §11.3: a ``DeliverBatches`` message decodes or is ``Undecodable``; its envelopes are decisions."""
    batch = lenient(exchange_pb2.EnvelopeBatch.FromString, "DeliverBatches")(data)
    if not isinstance(batch, Undecodable):
        _ingress(list(batch.envelopes))


def target_deliver(data: bytes) -> None:
    """SPEC §11.1: a ``Deliver`` message is an envelope or refused like one that does not parse."""
    _ingress([lenient(exchange_pb2.Envelope.FromString, "Deliver")(data)])


def target_control(data: bytes) -> None:
    """SPEC §11.9: a control call's statement converts or is answered ``ENVELOPE_MALFORMED``."""
    _statement(lenient(exchange_pb2.Signed.FromString, "Notify")(data))


def target_receipts(data: bytes) -> None:
    """SPEC §11.3: at the sender, each receipt of a ``ReceiptBatch`` is verified or refused, typed."""
    batch = exchange_pb2.ReceiptBatch()
    with contextlib.suppress(Exception):  # the client's own decoding fails the call (SPEC §11.6 step 6)
        batch = exchange_pb2.ReceiptBatch.FromString(data)
    statements: list[Signed] = []
    for receipt in batch.receipts:
        with contextlib.suppress(MalformedError):
            statements.append(signed_from_pb(receipt.statement))
    sent = [(f"{i:032x}", "ab" * 32) for i in range(len(statements))]
    check_receipts(KZ, recipient="TR", sent=sent, receipts=statements)


def target_witness(data: bytes) -> None:
    """SPEC §11.10.5: a ``Witness`` request is a decision (CHECKPOINT_MALFORMED at worst), never an exception."""
    request = lenient(exchange_pb2.WitnessRequest.FromString, "Witness")(data)
    if isinstance(request, Undecodable):
        return
    witness(
        request.request,
        roster=TR.roster,
        witness_id="TR",
        key=TR.signing_key,
        last=lambda origin: None,
        now=NOW,
        max_future=timedelta(minutes=5),
    )


#: (name, strategy, call) per target, as ``tests/fuzz/parsers.TARGETS``.
NODE_TARGETS: list[tuple[str, st.SearchStrategy[Any], Callable[[Any], None]]] = [
    ("node DeliverBatches", BATCH_BYTES, target_batch),
    ("node Deliver", ENVELOPE_BYTES, target_deliver),
    ("node control statement", SIGNED_BYTES, target_control),
    ("node receipts at the sender", RECEIPT_BATCH_BYTES, target_receipts),
    ("node Witness", WITNESS_BYTES, target_witness),
]
