"""Signed statements, byte encodings and the message base class (SPEC §4)."""

from __future__ import annotations

import binascii
from datetime import datetime

import pytest
from support import NOW, grant, make_origin, signing_key

from protocol.encoding import b64decode, b64encode, hpke_info, pae, sha256_hex
from protocol.errors import LocalProtocolError, MalformedError, SignatureError
from protocol.receipt import Receipt
from protocol.statements import PayloadType, Signature, Signed, parse_unverified, sign, verify, verify_and_parse


def _receipt(**changes: object) -> Receipt:
    fields: dict[str, object] = {
        "envelope_id": "a" * 32,
        "envelope_digest": "b" * 64,
        "sender": "KZ",
        "receiver": "TR",
        "accepted": True,
        "reason": "ALLOWED",
        "rule": "§9.3",
        "received_at": NOW,
        "log_seq": 7,
        "log_leaf": "ab" * 32,
    }
    fields.update(changes)
    return Receipt.model_validate(fields)


def test_sign_verify_and_parse() -> None:
    signed = sign(PayloadType.RECEIPT, _receipt(), [signing_key("TR")])
    assert verify_and_parse(signed, PayloadType.RECEIPT, [signing_key("TR").public()], Receipt) == _receipt()
    assert signed.digest == sha256_hex(signed.payload)


def test_every_listed_signer_must_have_signed() -> None:
    signed = sign(PayloadType.RECEIPT, _receipt(), [signing_key("TR")])
    with pytest.raises(SignatureError):
        verify(signed, PayloadType.RECEIPT, [signing_key("TR").public(), signing_key("KZ").public()])
    both = sign(PayloadType.RECEIPT, _receipt(), [signing_key("TR"), signing_key("KZ")])
    verify(both, PayloadType.RECEIPT, [signing_key("TR").public(), signing_key("KZ").public()])


def test_signature_cannot_be_replayed_as_another_statement_type() -> None:
    origin, _ = make_origin()
    g = grant(origin, grantor="KZ", holder="TR", grantee="AZ")
    as_recall = g.model_copy(update={"payload_type": PayloadType.RECALL.value})
    with pytest.raises(SignatureError):
        verify(as_recall, PayloadType.RECALL, [signing_key("KZ").public()])
    with pytest.raises(SignatureError, match="expected a RECALL"):
        verify(g, PayloadType.RECALL, [signing_key("KZ").public()])


def test_parse_unverified_checks_the_type() -> None:
    signed = sign(PayloadType.RECEIPT, _receipt(), [signing_key("TR")])
    assert parse_unverified(signed, PayloadType.RECEIPT, Receipt).receiver == "TR"
    with pytest.raises(MalformedError):
        parse_unverified(signed, PayloadType.ROSTER, Receipt)


def test_sign_needs_a_signer() -> None:
    with pytest.raises(LocalProtocolError, match="signer"):
        sign(PayloadType.RECEIPT, _receipt(), [])


def test_at_most_eight_signatures() -> None:
    sigs = tuple(Signature(keyid=f"{i:064x}", alg="ed25519", sig=b"s") for i in range(9))
    with pytest.raises(ValueError, match="signatures"):
        Signed(payload_type="t", payload=b"", signatures=sigs)


def test_messages_refuse_unknown_fields_and_naive_times() -> None:
    data = _receipt().to_bytes()
    assert Receipt.from_bytes(data) == _receipt()
    with pytest.raises(MalformedError, match="extra"):
        Receipt.from_bytes(data[:-1] + b',"extra":1}')
    with pytest.raises(MalformedError):
        Receipt.from_bytes(data.replace(b"+00:00", b"").replace(b"Z", b""))
    with pytest.raises(ValueError, match="time zone"):
        _receipt(received_at=datetime(2026, 1, 1))
    with pytest.raises(MalformedError):
        Receipt.from_bytes(b"\xff\xfe")


def test_pae_is_dsse_v1() -> None:
    assert pae("t", b"body") == b"DSSEv1 1 t 4 body"
    # Length prefixes keep type and body apart.
    assert pae("a b", b"c") != pae("a", b"b c")


def test_hpke_info_is_injective_over_field_boundaries() -> None:
    assert hpke_info("l", [b"ab", b"c"]) != hpke_info("l", [b"a", b"bc"])
    assert hpke_info("l", [b"x"]) == b"\x00\x00\x00\x01l\x00\x00\x00\x01x"


def test_base64_is_strict() -> None:
    assert b64decode(b64encode(b"\x00\xff")) == b"\x00\xff"
    with pytest.raises(binascii.Error):
        b64decode("not base64!")
