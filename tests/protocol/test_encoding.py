"""Canonical JSON and strict parsing of signed payloads (SPEC §4.4).

Each test breaks one rule of §4.4 in an otherwise valid payload and checks that the
payload is refused with ``MalformedError``; ``tests/vectors/encoding.json`` holds the same
rules as vectors for other implementations.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st
from support import NOW, hpke_keys, ingress, label, make_envelope, make_origin, raw, report, roster, signing_key

from protocol.agreement import Agreement
from protocol.classification import Band
from protocol.consent import ConsentGrant
from protocol.encoding import canonical_json, format_timestamp, pae, parse_json, parse_timestamp
from protocol.envelope import Envelope, EnvelopeHeader, OriginAttestation
from protocol.errors import LocalProtocolError, MalformedError
from protocol.item import item_from_bytes, item_from_plaintext
from protocol.keys import HpkeKeyPair, PublicSigningKey
from protocol.label import Label
from protocol.policy import Fault, Reason
from protocol.receipt import Receipt
from protocol.roster import Roster
from protocol.statements import PayloadType, Signature, Signed, sign, sign_many


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


def _origin_payload() -> bytes:
    origin, _ = make_origin()
    return origin.payload


def _refused(model: type[Receipt | OriginAttestation | Roster | Agreement | ConsentGrant], data: bytes) -> str:
    with pytest.raises(MalformedError) as info:
        model.from_bytes(data)
    return str(info.value)


# --- the canonical encoding (§4.4.1) -----------------------------------------------------------


def test_canonical_json_is_rfc8785() -> None:
    # SPEC §4.4.1: sorted keys at every level, no white space, minimal escapes, raw UTF-8.
    value = {"b": [1, True, None], "a": {"z": '\u2028/\x7f\x1f\n"\\', "y": "GİZLİ"}}
    assert canonical_json(value) == (
        b'{"a":{"y":"G\xc4\xb0ZL\xc4\xb0","z":"\xe2\x80\xa8/\x7f\\u001f\\n\\"\\\\"},"b":[1,true,null]}'
    )


def test_canonical_json_refuses_what_has_no_canonical_form() -> None:
    # SPEC §4.4.1: a producer's value outside JSON's exact range is the producer's mistake.
    with pytest.raises(LocalProtocolError):
        canonical_json({"n": 2**53})
    with pytest.raises(LocalProtocolError):
        canonical_json("\ud800")


def test_to_bytes_is_canonical_and_round_trips() -> None:
    # SPEC §4.4: parsing a payload and encoding it again gives the same bytes.
    data = _receipt().to_bytes()
    assert data == canonical_json(json.loads(data))
    assert Receipt.from_bytes(data).to_bytes() == data


def test_nested_maps_are_sorted_by_key() -> None:
    # SPEC §4.4.1: ceilings and markings are objects like any other: sorted by key.
    agreement = Agreement.model_validate(
        {
            "agreement_id": "KZ-TR",
            "version": 1,
            "parties": ("TR", "KZ"),
            "valid_from": NOW,
            "valid_until": NOW + timedelta(days=1),
            "ceilings": {"TR": Band.SECRET, "KZ": Band.CONFIDENTIAL},
            "categories": ("military", "intelligence"),
            "topics": ("terrorism", "cyber"),
            "max_retention_days": 30,
            "raw_data_allowed": False,
            "trust_model": "high-trust",
        }
    )
    data = agreement.to_bytes()
    assert b'"ceilings":{"KZ":"CONFIDENTIAL","TR":"SECRET"}' in data
    assert b'"categories":["intelligence","military"]' in data
    assert b'"parties":["KZ","TR"]' in data
    markings = roster().members[0].to_bytes()
    keys = list(json.loads(markings)["markings"])
    assert keys == sorted(keys) == ["CONFIDENTIAL", "RESTRICTED", "SECRET", "TOP_SECRET", "UNCLASSIFIED"]


# --- timestamps (§4.4.2) ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "text"),
    [
        (datetime(2026, 11, 22, 12, 0, tzinfo=UTC), "2026-11-22T12:00:00Z"),
        (datetime(2026, 11, 22, 12, 0, 0, 4500, tzinfo=UTC), "2026-11-22T12:00:00.004500Z"),
        (datetime(2026, 11, 22, 15, 0, tzinfo=timezone(timedelta(hours=3))), "2026-11-22T12:00:00Z"),
        (datetime(1, 1, 1, tzinfo=UTC), "0001-01-01T00:00:00Z"),
    ],
)
def test_timestamps_have_one_spelling(at: datetime, text: str) -> None:
    # SPEC §4.4.2: UTC, upper-case T and Z, six fraction digits only when not zero.
    assert format_timestamp(at) == text
    assert parse_timestamp(text) == at


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-22 12:00:00Z",
        "2026-11-22t12:00:00Z",
        "2026-11-22T12:00:00z",
        "2026-11-22T12:00:00+00:00",
        "2026-11-22T15:00:00+03:00",
        "2026-11-22T12:00:00",
        "2026-11-22T12:00:00.000000Z",
        "2026-11-22T12:00:00.0045Z",
        "2026-11-22T12:00:00.004500000Z",
        "2026-02-30T12:00:00Z",
        "2026-11-22T12:00:60Z",
        "0000-11-22T12:00:00Z",
        "２０２６-11-22T12:00:00Z",
    ],
)
def test_other_timestamp_spellings_are_refused(text: str) -> None:
    # SPEC §4.4.2
    with pytest.raises(ValueError):  # noqa: PT011 - the reason is in the parametrised input
        parse_timestamp(text)
    data = _receipt().to_bytes().replace(b"2026-11-22T12:00:00Z", json.dumps(text).encode()[1:-1])
    assert "received_at" in _refused(Receipt, data)


def test_timestamp_as_a_unix_integer_is_refused() -> None:
    # SPEC §4.4.2
    data = _receipt().to_bytes().replace(b'"2026-11-22T12:00:00Z"', b"1795435200")
    assert "received_at" in _refused(Receipt, data)


def test_timestamp_in_python_must_be_aware_or_canonical() -> None:
    with pytest.raises(ValueError, match="time zone"):
        _receipt(received_at=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="timestamp is a string"):
        _receipt(received_at=1795435200)
    assert _receipt(received_at="2026-11-22T12:00:00Z") == _receipt()
    # SPEC §4.4.2: a local caller's other offset is the same instant, written in UTC.
    in_ankara = _receipt(received_at=NOW.astimezone(timezone(timedelta(hours=3))))
    assert in_ankara.received_at.tzinfo is UTC
    assert in_ankara.to_bytes() == _receipt().to_bytes()


# --- integers, booleans, strings (§4.4.2) -----------------------------------------------------


@pytest.mark.parametrize("spelling", [b'"1"', b"1.0", b"1e0", b"true", b"2147483648", b"9223372036854775808", b"0"])
def test_item_version_has_one_spelling_and_fits_32_bits(spelling: bytes) -> None:
    # SPEC §4.4.2: an integer is a JSON integer in 1 .. 2^31 - 1; no strings, floats or booleans.
    data = _origin_payload().replace(b'"item_version":1,', b'"item_version":' + spelling + b",", 1)
    assert data != _origin_payload()
    _refused(OriginAttestation, data)


def test_largest_item_version_is_accepted() -> None:
    # SPEC §4.4.2: 2^31 - 1 fits a PostgreSQL INTEGER.
    lab = label(item_version=2**31 - 1)
    origin, _ = make_origin(lab)
    assert OriginAttestation.from_bytes(origin.payload).item_version == 2**31 - 1


@pytest.mark.parametrize("spelling", [b"1", b"0", b'"true"', b'"yes"', b"null"])
def test_booleans_are_true_or_false(spelling: bytes) -> None:
    # SPEC §4.4.2
    data = _receipt().to_bytes().replace(b'"accepted":true', b'"accepted":' + spelling)
    assert "accepted" in _refused(Receipt, data)


def test_strings_are_bounded() -> None:
    # SPEC §4.4.2: every string has a bound; a longer one does not parse.
    item = report().model_copy(update={"title": "x" * 513})
    with pytest.raises(MalformedError, match="title"):
        item_from_plaintext(canonical_json(item.model_dump(mode="json")))


# --- bands, sets, fields (§4.4.2, §4.4.3) -----------------------------------------------------


@pytest.mark.parametrize("spelling", [b'"secret"', b'"Secret"', b"3", b'" SECRET"'])
def test_band_is_written_by_its_name_only(spelling: bytes) -> None:
    # SPEC §4.4.2
    data = _origin_payload().replace(b'"band":"SECRET"', b'"band":' + spelling)
    assert "band" in _refused(OriginAttestation, data)


def test_band_title_and_hyphen_are_refused() -> None:
    # SPEC §4.4.2
    ts, _ = make_origin(label(band=Band.TOP_SECRET))
    for spelling in (b'"TOP SECRET"', b'"TOP-SECRET"', b'"top_secret"'):
        assert "band" in _refused(OriginAttestation, ts.payload.replace(b'"TOP_SECRET"', spelling))


def test_sets_are_sorted_and_unique() -> None:
    # SPEC §4.4.2: topics, releasable_to and the other sets: sorted, no duplicates.
    origin, _ = make_origin(label(topics=("cyber", "terrorism"), releasable_to=("AZ", "TR")))
    unsorted = origin.payload.replace(b'["cyber","terrorism"]', b'["terrorism","cyber"]')
    assert "canonical" in _refused(OriginAttestation, unsorted)
    repeated = origin.payload.replace(b'["AZ","TR"]', b'["TR","TR"]')
    assert "duplicates" in _refused(OriginAttestation, repeated)


def test_every_field_is_present() -> None:
    # SPEC §4.4.3: no field is filled in with a default on parse.
    data = _origin_payload()
    assert b'"originator_controlled":true,' in data
    assert "canonical" in _refused(OriginAttestation, data.replace(b'"originator_controlled":true,', b""))
    assert "canonical" in _refused(OriginAttestation, data.replace(b',"supersedes":null', b""))


def test_unknown_fields_are_refused() -> None:
    # SPEC §4.4.3
    data = _receipt().to_bytes()
    assert "Extra inputs" in _refused(Receipt, data[:-1] + b',"zzz":1}')


def test_duplicate_keys_are_refused() -> None:
    # SPEC §4.4.3: the example: a duplicated recipient would otherwise name AZ.
    origin, _ = make_origin()
    header = EnvelopeHeader.model_validate_json(
        json.dumps(
            {
                "envelope_id": "0" * 32,
                "item_id": "item-1",
                "item_version": 1,
                "sender": "KZ",
                "recipient": "TR",
                "agreement_id": "KZ-TR",
                "agreement_version": 1,
                "origin_digest": origin.digest,
                "ciphertext_digest": "c" * 64,
                "suite": "DHKEM(X25519,HKDF-SHA256)/HKDF-SHA256/AES-256-GCM",
                "created_at": "2026-11-22T12:00:00Z",
                "nonce": "1" * 32,
                "consent_refs": [],
            }
        )
    )
    data = header.to_bytes()
    doubled = data.replace(b'"recipient":"TR"', b'"recipient":"TR","recipient":"AZ"')
    with pytest.raises(MalformedError, match="duplicate key 'recipient'"):
        EnvelopeHeader.from_bytes(doubled)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b'"reason":"ALLOWED"', b'"reason": "ALLOWED"'),
        (b'"reason":"ALLOWED"', b'"reason":"\\u0041LLOWED"'),
        (b'"rule":"\xc2\xa79.3"', b'"rule":"\\u00a79.3"'),
        (b'{"accepted"', b' {"accepted"'),
    ],
)
def test_white_space_and_needless_escapes_are_refused(old: bytes, new: bytes) -> None:
    # SPEC §4.4.1: one spelling for every string; no insignificant white space.
    data = _receipt().to_bytes()
    assert old in data
    assert "canonical" in _refused(Receipt, data.replace(old, new))


def test_keys_in_declaration_order_are_refused() -> None:
    # SPEC §4.4.1: members sorted by key, not in the order a model declares them.
    receipt = _receipt()
    declared = json.dumps(receipt.model_dump(mode="json"), separators=(",", ":"), ensure_ascii=False).encode()
    assert declared != receipt.to_bytes()
    assert "canonical" in _refused(Receipt, declared)


_B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def test_bytes_have_one_spelling() -> None:
    # SPEC §4.4.2: padded base64url; not the standard alphabet, no missing padding, no stray bits.
    keys = PublicSigningKey(ed25519=b"\xfb\xff\xfe" * 10 + b"\x00\x00")
    data = keys.to_bytes()
    text = json.loads(data)["ed25519"]
    assert text.startswith("-__-")
    assert text.endswith("AA=")
    last = _B64URL[_B64URL.index(text[-2]) ^ 1]  # sets one of the two bits the 32nd byte leaves unused
    spellings = (text.replace("-", "+").replace("_", "/"), text.rstrip("="), text[:-2] + last + "=")
    for spelling in spellings:
        with pytest.raises(MalformedError):
            PublicSigningKey.from_bytes(data.replace(text.encode(), spelling.encode()))
    assert PublicSigningKey.from_bytes(data) == keys


def test_marking_must_be_nfc_and_trimmed() -> None:
    # SPEC §5.2, §4.4.2: markings are compared as exact code points, kept in NFC.
    decomposed = "GI\u0307ZLI\u0307"  # İ as I + COMBINING DOT ABOVE
    lab = label("TR", originator_marking=decomposed)
    assert lab.originator_marking == "GİZLİ"  # a local caller's text is normalised
    origin, _ = make_origin(lab)
    payload = origin.payload
    assert "GİZLİ".encode() in payload
    assert "canonical" in _refused(OriginAttestation, payload.replace("GİZLİ".encode(), decomposed.encode()))
    assert "canonical" in _refused(OriginAttestation, payload.replace("GİZLİ".encode(), "GİZLİ ".encode()))


def test_turkish_dotted_and_dotless_i_are_different_markings() -> None:
    # SPEC §5.2: no case folding: GİZLİ (dotted İ) and GIZLI or gizli are other markings.
    assert label("TR").originator_marking == "GİZLİ"
    assert label("TR", originator_marking="GIZLI").originator_marking != "GİZLİ"
    assert label("TR", originator_marking="gizli").originator_marking != "GİZLİ"


# --- JSON that is not canonical at all ---------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [b"", b"[]", b"null", b"\xff\xfe", b'{"a":NaN}', b"\xef\xbb\xbf{}", b'{"reason":"\\ud800"}'],
)
def test_not_a_payload(data: bytes) -> None:
    # SPEC §4.4.3
    _refused(Receipt, data)


def test_parse_json_refuses_duplicates_constants_and_bad_utf8() -> None:
    # SPEC §4.4.3: for a Signed statement's own JSON, which need not be canonical.
    assert parse_json(b'{"a": [1, 2]}') == {"a": [1, 2]}
    with pytest.raises(MalformedError, match="duplicate key"):
        parse_json(b'{"a":1,"a":2}')
    with pytest.raises(MalformedError, match="not JSON"):
        parse_json(b'{"a":Infinity}')
    with pytest.raises(MalformedError, match="not JSON"):
        parse_json(b"\xff")
    with pytest.raises(MalformedError, match="not JSON"):
        parse_json(b"{")


def test_signed_json_is_strict_but_need_not_be_canonical() -> None:
    # SPEC §4.1, §4.4.3: a statement in a file may be pretty-printed; its payload may not.
    signed = sign(PayloadType.RECEIPT, _receipt(), [signing_key("TR")])
    pretty = json.dumps(json.loads(signed.to_bytes()), indent=2).encode()
    assert Signed.from_bytes(pretty) == signed
    with pytest.raises(MalformedError, match="duplicate key"):
        Signed.from_bytes(pretty.replace(b'"payload_type"', b'"payload_type": "x", "payload_type"', 1))


def test_two_signatures_with_one_keyid_and_alg_are_malformed() -> None:
    # SPEC §4.1: a statement carries at most one signature per (keyid, alg).
    signed = sign(PayloadType.RECEIPT, _receipt(), [signing_key("TR")])
    (sig,) = signed.signatures
    other = sign(PayloadType.RECEIPT, _receipt(accepted=False), [signing_key("TR")]).signatures[0]
    doubled = json.loads(signed.to_bytes())
    doubled["signatures"] = [json.loads(sig.to_bytes()), json.loads(other.to_bytes())]
    with pytest.raises(MalformedError, match="same keyid and alg"):
        Signed.from_bytes(json.dumps(doubled).encode())
    with pytest.raises(ValueError, match="same keyid and alg"):
        Signed(payload_type=signed.payload_type, payload=signed.payload, signatures=(sig, other))
    # The same key id under another algorithm is another signature.
    renamed = Signature(keyid=sig.keyid, alg="ed25519-batch", sig=sig.sig)
    assert len(Signed(payload_type="t", payload=b"", signatures=(sig, renamed)).signatures) == 2


def test_the_same_key_signs_once() -> None:
    # SPEC §4.1
    with pytest.raises(LocalProtocolError, match="only once"):
        sign(PayloadType.RECEIPT, _receipt(), [signing_key("TR"), signing_key("TR")])
    with pytest.raises(LocalProtocolError, match="only once"):
        sign_many([(PayloadType.RECEIPT, _receipt())], [signing_key("TR"), signing_key("TR")])


# --- items: strict from a peer, lenient from a local draft -------------------------------------


def test_decrypted_item_must_be_canonical() -> None:
    # SPEC §8.6 step 9, §4.4: the plaintext is parsed like a signed payload.
    for item in (report(), raw()):
        data = item.to_bytes()
        assert item_from_plaintext(data) == item
        declared = item.model_dump_json().encode()
        assert declared != data
        with pytest.raises(MalformedError, match="canonical"):
            item_from_plaintext(declared)
        assert item_from_bytes(declared) == item  # an officer's draft may be in any JSON form
    with pytest.raises(MalformedError, match="does not parse"):
        item_from_plaintext(b'{"kind":"other"}')
    with pytest.raises(MalformedError, match="does not parse"):
        item_from_bytes(b'{"kind":"other"}')


def test_band_in_python_must_be_a_band_or_its_name() -> None:
    assert label(band=Band.SECRET) == Label.model_validate({**label().model_dump(), "band": "SECRET"})
    with pytest.raises(ValueError, match="a band is one of"):
        Label.model_validate({**label().model_dump(), "band": 3})


def test_xwing_seed_must_be_32_bytes() -> None:
    # SPEC §5.4.2: an X-Wing private key is a 32-byte seed.
    x25519 = bytes(32)
    assert HpkeKeyPair.from_seeds(x25519, bytes(32)).public() == HpkeKeyPair.from_seeds(x25519, bytes(32)).public()
    with pytest.raises(LocalProtocolError, match="32 bytes"):
        HpkeKeyPair.from_seeds(x25519, bytes(64))
    assert hpke_keys("TR").public().mlkem768_x25519 is not None


@pytest.mark.parametrize(
    ("number", "text"),
    [(1.0, b"1"), (0.5, b"0.5"), (1e-7, b"1e-7"), (1e21, b"1e+21"), (2**53 - 1, b"9007199254740991"), (-0.0, b"0")],
)
def test_numbers_in_audit_detail_are_written_as_jcs_writes_them(number: float, text: bytes) -> None:
    # SPEC §4.4.1, §11.4: detail numbers have one spelling, the ECMAScript one.
    assert canonical_json({"detail": {"n": number}}) == b'{"detail":{"n":' + text + b"}}"


@pytest.mark.parametrize("number", [float("nan"), float("inf"), 2**53])
def test_numbers_without_a_jcs_form_are_refused(number: float) -> None:
    # SPEC §4.4.1
    with pytest.raises(LocalProtocolError):
        canonical_json({"n": number})


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**60), 2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=5),
    max_leaves=25,
)


@settings(max_examples=400, deadline=None, database=None, derandomize=True)
@given(_JSON)
def test_canonical_json_is_exactly_rfc8785(value: object) -> None:
    # SPEC §4.4.1: whichever encoder writes it, the bytes are the rfc8785 package's.
    try:
        expected = rfc8785.dumps(value)  # type: ignore[arg-type]
    except rfc8785.CanonicalizationError:
        with pytest.raises(LocalProtocolError):
            canonical_json(value)
        return
    assert canonical_json(value) == expected


def test_keys_sort_by_utf16_code_units() -> None:
    # SPEC §4.4.1: U+1F600 (surrogates D83D DE00) sorts before U+FFFF in UTF-16, after it by code point.
    assert canonical_json({"\uffff": 1, "\U0001f600": 2}) == '{"\U0001f600":2,"\uffff":1}'.encode()


def test_item_version_beyond_32_bits_signed_by_a_member_is_a_refusal_not_a_crash() -> None:
    # SPEC §4.4.2, §9.2.9 step 3 (issue 11 point 1): an item_version of 2^63 in a validly signed
    # header and origin is refused as malformed at ingress, with a reason a receipt can carry.
    origin, pt = make_origin()
    payload = origin.payload.replace(b'"item_version":1,', b'"item_version":9223372036854775808,')
    big_origin = _signed_raw(PayloadType.ORIGIN, payload)
    env = make_envelope("KZ", "TR", origin, pt)
    header = json.loads(env.header.payload)
    header["origin_digest"] = big_origin.digest
    pointed = _signed_raw(PayloadType.HEADER, canonical_json(header))
    result = ingress(Envelope(pointed, big_origin, (), env.ciphertext), "TR")
    assert (result.decision.reason, result.decision.rule) == (Reason.ENVELOPE_MALFORMED, "§9.2.1")
    assert "item_version" in result.decision.detail
    assert result.fault is Fault.REMOTE
    # The same in the header itself (written by a sender that does not use JCS).
    header.update(item_version=2**63)
    big_header = _signed_raw(PayloadType.HEADER, json.dumps(header, sort_keys=True, separators=(",", ":")).encode())
    assert (
        ingress(Envelope(big_header, big_origin, (), env.ciphertext), "TR").decision.reason is Reason.ENVELOPE_MALFORMED
    )


def _signed_raw(payload_type: PayloadType, payload: bytes) -> Signed:
    """Exact payload bytes, validly signed by KZ (whatever they hold)."""
    sigs = signing_key("KZ").sign(pae(payload_type.value, payload))
    return Signed(
        payload_type=payload_type.value,
        payload=payload,
        signatures=tuple(Signature(keyid=k, alg=a, sig=s) for k, a, s in sigs),
    )
