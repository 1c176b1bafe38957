"""Fuzz targets for every parser a peer reaches in ``protocol/`` (SPEC §4.4.3, §3.4).

Each target takes one generated input, runs a parser or verifier on it and lets only the
protocol's typed errors through: anything else (an ``OverflowError``, a ``ValueError``, a
pydantic error, a ``KeyError``) escapes the target and fails the run. ``check_ingress``
and ``check_egress`` may not raise at all: every bad input is a refusal with a reason.

Inputs come from three strategies: random bytes; valid payloads, statements and envelopes
mutated at the byte level (flips, cuts, inserts, a value swapped for an awkward one); and
valid messages with one field replaced by a random JSON value, then re-signed with the
real key so that the input gets past the signature to the checks behind it.

Used by ``tests/protocol/test_fuzz.py`` (a bounded, deterministic slice) and by
``tests/fuzz/fuzz_parsers.py`` (10^5 inputs).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from hypothesis import strategies as st
from support import (
    MARKINGS,
    NOW,
    SECRETARIAT,
    Ctx,
    agreement,
    correction,
    grant,
    hpke_keys,
    ingress,
    make_envelope,
    make_origin,
    raw,
    recall,
    report,
    roster,
    signed_agreement,
    signed_roster,
    signing_key,
)

from protocol.agreement import Agreement, AgreementBook, AgreementProposal, AgreementRejection, verify_proposal
from protocol.bundle import BundleManifest
from protocol.classification import Band
from protocol.consent import ConsentDenial, ConsentGrant, ConsentRequest, ConsentRevocation
from protocol.encoding import pae
from protocol.envelope import Envelope, EnvelopeHeader, OriginAttestation
from protocol.errors import IntelshareError, MalformedError, OpenError
from protocol.item import item_from_plaintext
from protocol.notices import Correction, NoticeAck, NoticeKind, Recall, verify_correction, verify_recall
from protocol.policy import Transfer, check_egress, open_envelope
from protocol.receipt import Receipt
from protocol.roster import RetiredKey, Roster, SecretariatKeys, accept_roster
from protocol.statements import PayloadType, Signature, Signed, parse_unverified, verify
from protocol.statements import sign as sign_statement

MODELS: dict[PayloadType, type[Any]] = {
    PayloadType.ROSTER: Roster,
    PayloadType.AGREEMENT: Agreement,
    PayloadType.AGREEMENT_PROPOSAL: AgreementProposal,
    PayloadType.AGREEMENT_REJECTION: AgreementRejection,
    PayloadType.ORIGIN: OriginAttestation,
    PayloadType.HEADER: EnvelopeHeader,
    PayloadType.RECEIPT: Receipt,
    PayloadType.CONSENT_REQUEST: ConsentRequest,
    PayloadType.CONSENT_GRANT: ConsentGrant,
    PayloadType.CONSENT_DENIAL: ConsentDenial,
    PayloadType.CONSENT_REVOCATION: ConsentRevocation,
    PayloadType.RECALL: Recall,
    PayloadType.CORRECTION: Correction,
    PayloadType.NOTICE_ACK: NoticeAck,
    PayloadType.AUDIT_BUNDLE: BundleManifest,
}

#: Which member signs a statement of each type in the corpus.
SIGNER = {
    PayloadType.AGREEMENT: "KZ",
    PayloadType.AGREEMENT_PROPOSAL: "KZ",
    PayloadType.AGREEMENT_REJECTION: "TR",
    PayloadType.ORIGIN: "KZ",
    PayloadType.HEADER: "KZ",
    PayloadType.RECEIPT: "TR",
    PayloadType.CONSENT_REQUEST: "TR",
    PayloadType.CONSENT_GRANT: "KZ",
    PayloadType.CONSENT_DENIAL: "KZ",
    PayloadType.CONSENT_REVOCATION: "KZ",
    PayloadType.RECALL: "KZ",
    PayloadType.CORRECTION: "KZ",
    PayloadType.NOTICE_ACK: "TR",
    PayloadType.AUDIT_BUNDLE: "TR",
}

_ANCHOR = SecretariatKeys(threshold=1, keys=(SECRETARIAT.public(),))


@dataclass(frozen=True)
class Corpus:
    """Valid inputs to start from: one statement of every type, an envelope, item content."""

    statements: dict[PayloadType, Signed]
    items: tuple[bytes, ...]
    envelope: Envelope
    reshare: Envelope
    origin: Signed

    def payload(self, payload_type: PayloadType) -> bytes:
        return self.statements[payload_type].payload


def origin_time(origin: Signed) -> Any:
    return OriginAttestation.from_bytes(origin.payload).attested_at


def _corpus() -> Corpus:
    origin, plaintext = make_origin()
    new_origin, _ = make_origin(item_id="item-1")
    envelope = make_envelope("KZ", "TR", origin, plaintext)
    consent = grant(origin, grantor="KZ", holder="TR", grantee="AZ", transferable=True)
    reshare = make_envelope("TR", "AZ", origin, plaintext, (consent,))
    header = EnvelopeHeader.from_bytes(envelope.header.payload)

    def signed(ptype: PayloadType, model: Any, who: str) -> Signed:
        return sign_statement(ptype, model, [signing_key(who)])

    proposed = sign_statement(
        PayloadType.AGREEMENT, agreement("KZ", "TR", version=2, max_retention_days=30), [signing_key("KZ")]
    )
    statements = {
        # With the optional fields present, so mutations reach their parsers (SPEC §5.1, §5.4.3).
        PayloadType.ROSTER: signed_roster(
            roster().model_copy(
                update={
                    "secretariat": _ANCHOR,
                    "retired_keys": (
                        RetiredKey(member_id="KZ", signing_key=SECRETARIAT.public(), until=origin_time(origin)),
                    ),
                }
            )
        ),
        PayloadType.AGREEMENT: signed_agreement(agreement("KZ", "TR")),
        PayloadType.AGREEMENT_PROPOSAL: signed(
            PayloadType.AGREEMENT_PROPOSAL,
            AgreementProposal(
                proposal_id="e" * 32,
                proposer="KZ",
                counterparty="TR",
                agreement=proposed,
                replaces=1,
                note="shorter retention",
                proposed_at=NOW,
            ),
            "KZ",
        ),
        PayloadType.AGREEMENT_REJECTION: signed(
            PayloadType.AGREEMENT_REJECTION,
            AgreementRejection(
                proposal_id="e" * 32,
                agreement_id="KZ-TR",
                version=2,
                agreement_digest=proposed.digest,
                proposer="KZ",
                rejecter="TR",
                reason="not before the review",
                rejected_at=NOW,
            ),
            "TR",
        ),
        PayloadType.ORIGIN: origin,
        PayloadType.HEADER: envelope.header,
        PayloadType.RECEIPT: signed(
            PayloadType.RECEIPT,
            Receipt(
                envelope_id=header.envelope_id,
                envelope_digest=envelope.digest,
                sender="KZ",
                receiver="TR",
                accepted=True,
                reason="ALLOWED",
                rule="§9.3",
                received_at=NOW,
                log_seq=7,
                log_leaf="ab" * 32,
            ),
            "TR",
        ),
        PayloadType.CONSENT_REQUEST: signed(
            PayloadType.CONSENT_REQUEST,
            ConsentRequest(
                request_id="a" * 32,
                item_id="item-1",
                item_version=1,
                origin_digest=origin.digest,
                requester="TR",
                third_party="AZ",
                purpose="joint operation",
                requested_at=NOW,
            ),
            "TR",
        ),
        PayloadType.CONSENT_GRANT: consent,
        PayloadType.CONSENT_DENIAL: signed(
            PayloadType.CONSENT_DENIAL,
            ConsentDenial(
                request_id="a" * 32,
                item_id="item-1",
                item_version=1,
                origin_digest=origin.digest,
                denier="KZ",
                reason="source protection",
                issued_at=NOW,
            ),
            "KZ",
        ),
        PayloadType.CONSENT_REVOCATION: signed(
            PayloadType.CONSENT_REVOCATION,
            ConsentRevocation(
                revocation_id="c" * 32, grant_id="0" * 31 + "1", item_id="item-1", revoker="KZ", issued_at=NOW
            ),
            "KZ",
        ),
        PayloadType.RECALL: recall(origin),
        PayloadType.CORRECTION: correction(origin, new_origin, new_version=2),
        PayloadType.NOTICE_ACK: signed(
            PayloadType.NOTICE_ACK,
            NoticeAck(
                notice_digest="ab" * 32,
                kind=NoticeKind.RECALL,
                item_id="item-1",
                item_version=1,
                originator="KZ",
                holder="TR",
                received_from="KZ",
                copies=1,
                applied_at=NOW,
                log_seq=9,
                log_leaf="cd" * 32,
            ),
            "TR",
        ),
        PayloadType.AUDIT_BUNDLE: signed(
            PayloadType.AUDIT_BUNDLE,
            BundleManifest(
                member="TR",
                federation="OTS",
                exported_at=NOW,
                log_size=9,
                log_root="ef" * 32,
                tables={"audit_log": "01" * 32},
            ),
            "TR",
        ),
    }
    return Corpus(statements, (report().to_bytes(), raw().to_bytes()), envelope, reshare, origin)


CORPUS = _corpus()

#: Values that break a rule of SPEC §4.4 in some field, or parsers that are not careful.
AWKWARD: tuple[bytes, ...] = (
    b'"1"',
    b"1.0",
    b"1e0",
    b"1e400",
    b"-1",
    b"0",
    b"2147483648",
    b"9223372036854775808",
    b"123456789012345678901234567890",
    b"true",
    b"false",
    b"null",
    b"NaN",
    b"[]",
    b"{}",
    b'""',
    b'"\\ud800"',
    b'"\\u0000"',
    b'"' + b"x" * 5000 + b'"',
    b'"SECRET"',
    b'"secret"',
    b'"TOP SECRET"',
    b'"2026-11-22T12:00:00Z"',
    b'"2026-11-22 12:00:00Z"',
    b'"9999-12-31T23:59:59.999999Z"',
    b'"0001-01-01T00:00:00Z"',
    b'"-__-AA=="',
    b'"+//+AA"',
    b"[" * 64 + b"]" * 64,
    b'{"a":1,"a":2}',
    b'["KZ","KZ"]',
    b'["TR","KZ"]',
    '"GİZLİ"'.encode(),
    '"GI\u0307ZLI\u0307"'.encode(),
)


@st.composite
def mutated_bytes(draw: st.DrawFn, seeds: tuple[bytes, ...]) -> bytes:
    """A valid input with one to three byte-level mutations."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(("flip", "cut", "insert", "value", "truncate", "repeat")))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[at] ^= draw(st.integers(1, 255))
        elif op == "cut":
            del data[at : at + draw(st.integers(1, 16))]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8) | st.sampled_from(AWKWARD))
        elif op == "value":
            colons = [i for i in range(len(data) - 1) if data[i : i + 2] == b'":']
            if colons:
                start = draw(st.sampled_from(colons)) + 2
                end = start
                while end < len(data) and data[end : end + 1] not in (b",", b"}"):
                    end += 1
                data[start:end] = draw(st.sampled_from(AWKWARD))
        elif op == "truncate":
            del data[at:]
        elif data:
            data[at:at] = data[at : at + draw(st.integers(1, 40))]
    return bytes(data)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**64), 2**64) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8", "surrogatepass")


@st.composite
def field_swapped(draw: st.DrawFn, payload: bytes) -> bytes:
    """A valid payload with one field, at any depth, replaced by a random JSON value."""
    doc: Any = json.loads(payload)
    node = doc
    while True:
        key = draw(st.sampled_from(sorted(node)))
        child = node[key]
        if isinstance(child, dict) and child and draw(st.booleans()):
            node = child
            continue
        node[key] = draw(JSON_VALUES | st.sampled_from([json.loads(v) for v in AWKWARD[:12] if v != b"NaN"]))
        break
    return _json_bytes(doc)


@st.composite
def respelled(draw: st.DrawFn, payload: bytes) -> bytes:
    """The same value written another way: key order, white space, escapes (SPEC §4.4.1)."""
    doc: Any = json.loads(payload)
    keys = draw(st.permutations(sorted(doc)))
    reordered = {key: doc[key] for key in keys}
    return json.dumps(
        reordered,
        ensure_ascii=draw(st.booleans()),
        indent=draw(st.none() | st.integers(0, 2)),
        separators=draw(st.sampled_from([(",", ":"), (", ", ": "), (",", ": ")])),
    ).encode("utf-8")


def payloads(payload_type: PayloadType) -> st.SearchStrategy[bytes]:
    """Bytes to parse as a payload of ``payload_type``."""
    seed = CORPUS.payload(payload_type)
    return st.one_of(st.binary(max_size=200), mutated_bytes((seed,)), field_swapped(seed), respelled(seed))


ITEMS = st.one_of(st.binary(max_size=200), mutated_bytes(CORPUS.items), *(field_swapped(i) for i in CORPUS.items))

_HEX64 = st.text("0123456789abcdef", min_size=64, max_size=64)
_ALGS = st.sampled_from(["ed25519", "ml-dsa-65", "ed25519-batch", "ml-dsa-65-batch", "x"])


@st.composite
def signed_statements(draw: st.DrawFn, payload_type: PayloadType) -> Signed:
    """A statement of (usually) ``payload_type``: altered payload, and signatures either
    random, lifted from elsewhere, or real ones made by the expected signer over the
    altered payload (so that the parser behind the signature check is reached)."""
    base = CORPUS.statements[payload_type]
    payload = draw(st.just(base.payload) | payloads(payload_type))
    ptype = draw(st.just(payload_type.value) | st.sampled_from([t.value for t in PayloadType]))
    choice = draw(st.sampled_from(("keep", "resign", "random", "batch")))
    signer = SECRETARIAT if payload_type is PayloadType.ROSTER else signing_key(SIGNER[payload_type])
    if choice == "keep":
        signatures = base.signatures
    elif choice == "resign":
        signatures = tuple(Signature(keyid=k, alg=a, sig=s) for k, a, s in signer.sign(pae(ptype, payload)))
    else:
        keyid = draw(_HEX64 | st.just(signer.keyid))
        alg = draw(_ALGS) if choice == "random" else draw(st.sampled_from(["ed25519-batch", "ml-dsa-65-batch"]))
        sig = draw(st.binary(max_size=300))
        if choice == "batch":  # the batch layout with random proof and root signature (SPEC §4.6)
            count = draw(st.integers(0, 40))
            header = draw(st.binary(min_size=8, max_size=8)) + bytes([count])
            sig = header + draw(st.binary(min_size=0, max_size=min(8192 - 9, 32 * count + 70)))
        signatures = (Signature(keyid=keyid, alg=alg, sig=sig),)
    return Signed(payload_type=ptype, payload=payload, signatures=signatures)


def signed_json() -> st.SearchStrategy[bytes]:
    """The JSON form of a statement (SPEC §4.1), from a file or another message."""
    seeds = tuple(s.to_bytes() for s in CORPUS.statements.values())
    return st.one_of(st.binary(max_size=200), mutated_bytes(seeds), *(field_swapped(s) for s in seeds[:3]))


_MEMBERS = st.sampled_from(["KZ", "TR", "AZ", "UZ", "HU"])


@st.composite
def altered_origins(draw: st.DrawFn) -> Signed:
    """A well-formed origin attestation with label fields changed, signed by some member:
    inputs that pass parsing and reach the label and policy checks (SPEC §9.2.10, §9.3)."""
    att = OriginAttestation.from_bytes(CORPUS.origin.payload)
    band = draw(st.sampled_from(list(Band)))
    originator = draw(st.just("KZ") | _MEMBERS)
    marking_of = draw(st.sampled_from(["KZ", "TR", "AZ", "UZ"]))
    label = att.label.model_copy(
        update={
            "band": band,
            "originator": draw(st.just(originator) | _MEMBERS),
            "originator_marking": MARKINGS[marking_of][draw(st.just(band) | st.sampled_from(list(Band)))],
            "topics": draw(st.just(att.label.topics) | st.sampled_from([("piracy",), ("cyber", "terrorism")])),
            "releasable_to": draw(st.lists(_MEMBERS, unique=True, max_size=3).map(lambda m: tuple(sorted(m)))),
            "originator_controlled": draw(st.booleans()),
            "item_version": draw(st.integers(1, 3)),
            "retain_until": NOW + timedelta(days=draw(st.integers(-10, 800))),
        }
    )
    changed = att.model_copy(update={"label": label, "originator": originator, "item_version": draw(st.integers(1, 3))})
    return sign_statement(PayloadType.ORIGIN, changed, [signing_key(draw(st.just(originator) | _MEMBERS))])


@st.composite
def envelopes(draw: st.DrawFn) -> tuple[Envelope, str]:
    """An envelope and the member it is delivered to; parts altered, many re-signed."""
    base = draw(st.sampled_from((CORPUS.envelope, CORPUS.reshare)))
    header = draw(st.just(base.header) | signed_statements(PayloadType.HEADER))
    if draw(st.booleans()) and header is not base.header:
        # Re-sign as the header's real sender, so that ingress reaches the origin and label.
        sender = "KZ" if base is CORPUS.envelope else "TR"
        sigs = signing_key(sender).sign(pae(header.payload_type, header.payload))
        header = replace_signatures(header, sigs)
    origin = draw(st.just(base.origin) | signed_statements(PayloadType.ORIGIN) | altered_origins())
    if draw(st.booleans()) and origin is not base.origin:
        # Re-sign as the originator and point the header at it, to reach the label checks.
        origin = replace_signatures(origin, signing_key("KZ").sign(pae(origin.payload_type, origin.payload)))
    if draw(st.booleans()):
        try:
            claimed = EnvelopeHeader.from_bytes(header.payload)
        except MalformedError:
            pass
        else:
            sender = claimed.sender if claimed.sender in ("KZ", "TR", "AZ", "UZ") else "KZ"
            pointed = claimed.model_copy(
                update={
                    "origin_digest": origin.digest,
                    "item_version": draw(st.just(claimed.item_version) | st.integers(1, 3)),
                    "agreement_version": draw(st.just(claimed.agreement_version) | st.integers(1, 3)),
                    "created_at": claimed.created_at + timedelta(minutes=draw(st.integers(-20000, 20))),
                }
            )
            header = sign_statement(PayloadType.HEADER, pointed, [signing_key(sender)])
    consents = draw(
        st.just(base.consents) | st.lists(signed_statements(PayloadType.CONSENT_GRANT), max_size=3).map(tuple)
    )
    ciphertext = draw(st.just(base.ciphertext) | mutated_bytes((base.ciphertext,)) | st.binary(max_size=120))
    receiver = "TR" if base is CORPUS.envelope else "AZ"
    return Envelope(header, origin, consents, ciphertext), draw(st.just(receiver) | st.sampled_from(["KZ", "UZ"]))


def replace_signatures(signed: Signed, sigs: list[tuple[str, str, bytes]]) -> Signed:
    return Signed(
        payload_type=signed.payload_type,
        payload=signed.payload,
        signatures=tuple(Signature(keyid=k, alg=a, sig=s) for k, a, s in sigs),
    )


# --- targets: each runs one parser on one input and lets only typed errors through -----------------


def _typed(call: Callable[[], object], *allowed: type[IntelshareError]) -> None:
    with contextlib.suppress(*allowed):
        call()


def target_payload(payload_type: PayloadType, data: bytes) -> None:
    """SPEC §4.4.3: a payload parses or is ``MalformedError``."""
    _typed(lambda: MODELS[payload_type].from_bytes(data), MalformedError)


def target_item(data: bytes) -> None:
    """SPEC §8.6 step 9: decrypted content parses or is ``MalformedError``."""
    _typed(lambda: item_from_plaintext(data), MalformedError)


def target_signed_json(data: bytes) -> None:
    """SPEC §4.1: a statement's JSON form parses or is ``MalformedError``."""
    _typed(lambda: Signed.from_bytes(data), MalformedError)


def target_statement(payload_type: PayloadType, signed: Signed) -> None:
    """SPEC §4.5, §4.6, §5.3, §6.2, §10: signed statements verify, parse, or raise typed errors."""
    ros = roster()
    _typed(lambda: parse_unverified(signed, payload_type, MODELS[payload_type]), MalformedError)
    if payload_type is PayloadType.ROSTER:
        _typed(lambda: accept_roster(signed, secretariat=_ANCHOR, current=None), IntelshareError)
        return
    if payload_type is PayloadType.AGREEMENT:
        _typed(lambda: AgreementBook().accept(signed, ros), IntelshareError)
        return
    if payload_type is PayloadType.AGREEMENT_PROPOSAL:
        held_agreement = agreement("KZ", "TR")
        _typed(lambda: verify_proposal(signed, roster=ros, counterparty="TR", held=held_agreement), IntelshareError)
        return
    key = signing_key(SIGNER[payload_type]).public()
    _typed(lambda: verify(signed, payload_type, [key]), IntelshareError)
    held = OriginAttestation.from_bytes(CORPUS.origin.payload)
    bound = {
        "roster": ros,
        "item_id": held.item_id,
        "item_version": held.item_version,
        "origin_digest": CORPUS.origin.digest,
        "originator": "KZ",
    }
    if payload_type is PayloadType.RECALL:
        _typed(lambda: verify_recall(signed, **bound), IntelshareError)
    if payload_type is PayloadType.CORRECTION:
        _typed(lambda: verify_correction(signed, **bound), IntelshareError)


def target_envelope(envelope: Envelope, receiver: str) -> None:
    """SPEC §9.2: ingress never raises; opening raises only ``OpenError``."""
    result = ingress(envelope, receiver)
    assert result.decision.allowed is (result.item is not None)
    _typed(
        lambda: open_envelope(envelope, recipient_id=receiver, recipient_keys=hpke_keys(receiver), roster=roster()),
        OpenError,
    )


def target_consents(consents: tuple[Signed, ...]) -> None:
    """SPEC §9.4.2: a chain of grants is a decision, never an exception."""
    att = OriginAttestation.from_bytes(CORPUS.origin.payload)
    transfer = Transfer("TR", "AZ", att, CORPUS.origin.digest, consents)
    check_egress(transfer, Ctx().policy(now=NOW + timedelta(days=1)))


#: Every target with its input strategy: (name, strategy, call).
TARGETS: list[tuple[str, st.SearchStrategy[Any], Callable[[Any], None]]] = [
    *(
        (f"payload {t.name}", payloads(t), lambda data, t=t: target_payload(t, data))  # type: ignore[misc]
        for t in PayloadType
    ),
    ("item content", ITEMS, target_item),
    ("statement JSON", signed_json(), target_signed_json),
    *(
        (f"statement {t.name}", signed_statements(t), lambda s, t=t: target_statement(t, s))  # type: ignore[misc]
        for t in PayloadType
    ),
    ("envelope", envelopes(), lambda pair: target_envelope(*pair)),
    (
        "consent chain",
        st.lists(signed_statements(PayloadType.CONSENT_GRANT), min_size=1, max_size=3).map(tuple),
        target_consents,
    ),
]

__all__ = ["CORPUS", "TARGETS"]
