"""Origin attestation, seal, decrypt and open (SPEC §8), and the remaining policy paths."""

from __future__ import annotations

from dataclasses import replace

import pytest
from support import (
    NOW,
    Ctx,
    grant,
    header_of,
    hpke_keys,
    ingress,
    label,
    make_envelope,
    make_origin,
    member,
    raw,
    report,
    resign_header,
    roster,
    signing_key,
    with_payload,
)

from protocol.classification import Band
from protocol.envelope import Envelope, OriginAttestation, Suite, _open_batch_key, attest, batch_key_info, decrypt, seal
from protocol.errors import ConfigurationError, LocalProtocolError, OpenError
from protocol.item import RawData, item_from_bytes
from protocol.keys import HpkePublicKeys
from protocol.label import SourceReliability
from protocol.policy import Decision, Reason, Transfer, check_egress, check_transfers, open_envelope
from protocol.statements import PayloadType, sign


def _open(env: object, recipient: str = "TR") -> object:
    return open_envelope(env, recipient_id=recipient, recipient_keys=hpke_keys(recipient), roster=roster())  # type: ignore[arg-type]


# --- attest and seal: what the local side may not do -----------------------------------------


def test_attest_refuses_report_with_other_grading() -> None:
    # SPEC §8.1, §7.2.1: the originator MUST NOT attest a report graded otherwise.
    with pytest.raises(LocalProtocolError, match="grading"):
        attest(item_id="i", label=label("KZ"), item=report("A1"), originator_key=signing_key("KZ"), now=NOW)


def test_seal_refuses_plaintext_other_than_attested() -> None:
    origin, pt = make_origin()
    with pytest.raises(LocalProtocolError, match="does not match"):
        make_envelope("KZ", "TR", origin, pt + b" ")


def test_seal_refuses_suite_the_recipient_has_no_key_for() -> None:
    # SPEC §5.4.2: MUST NOT seal with a KEM key not published.
    origin, pt = make_origin()
    classic_only = member("TR").model_copy(update={"hpke_keys": HpkePublicKeys(x25519=member("TR").hpke_keys.x25519)})
    with pytest.raises(ConfigurationError):
        seal(
            plaintext=pt,
            origin=origin,
            sender="KZ",
            sender_key=signing_key("KZ"),
            recipient=classic_only,
            agreement_id="KZ-TR",
            agreement_version=1,
            consents=(),
            suite=Suite.MLKEM768X25519_AES256GCM,
            now=NOW,
        )


def test_each_envelope_is_fresh() -> None:
    origin, pt = make_origin()
    a, b = make_envelope("KZ", "TR", origin, pt), make_envelope("KZ", "TR", origin, pt)
    assert (header_of(a).envelope_id, header_of(a).nonce) != (header_of(b).envelope_id, header_of(b).nonce)
    assert a.ciphertext != b.ciphertext
    assert a.digest == a.header.digest != b.digest


# --- open ------------------------------------------------------------------------------------


def test_open_returns_verified_statements() -> None:
    origin, pt = make_origin()
    opened = _open(make_envelope("KZ", "TR", origin, pt))
    assert opened.attestation == OriginAttestation.from_bytes(origin.payload)  # type: ignore[attr-defined]
    assert opened.header.sender == "KZ"  # type: ignore[attr-defined]
    assert opened.item == item_from_bytes(pt)  # type: ignore[attr-defined]


def test_open_with_wrong_private_keys() -> None:
    origin, pt = make_origin()
    env = make_envelope("KZ", "TR", origin, pt)
    with pytest.raises(OpenError):
        open_envelope(env, recipient_id="TR", recipient_keys=hpke_keys("AZ"), roster=roster())


def test_open_refuses_unknown_sender() -> None:
    origin, pt = make_origin()
    with pytest.raises(OpenError):
        _open(make_envelope("KG", "TR", origin, pt))


def test_open_refuses_unknown_originator() -> None:
    lab = label("KZ").model_copy(update={"originator": "KG"})
    origin, pt = attest(item_id="i", label=lab, item=report(), originator_key=signing_key("KG"), now=NOW)
    with pytest.raises(OpenError):
        _open(make_envelope("KZ", "TR", origin, pt))
    assert ingress(make_envelope("KZ", "TR", origin, pt), "TR").decision.reason is Reason.UNKNOWN_MEMBER


def test_open_refuses_header_naming_another_item_version() -> None:
    origin, pt = make_origin()
    env = resign_header(make_envelope("KZ", "TR", origin, pt), "KZ", item_version=2)
    with pytest.raises(OpenError):
        _open(env)


def test_open_refuses_stripped_consents() -> None:
    origin, pt = make_origin()
    g = grant(origin, grantor="KZ", holder="TR", grantee="AZ")
    env = replace(make_envelope("TR", "AZ", origin, pt, consents=(g,)), consents=())
    with pytest.raises(OpenError):
        _open(env, "AZ")


def test_open_has_one_opaque_error() -> None:
    # SPEC §3.4, §8.6: one opaque error, whatever failed.
    origin, pt = make_origin()
    env = make_envelope("KZ", "TR", origin, pt)
    with pytest.raises(OpenError) as info:
        _open(replace(env, header=with_payload(env.header, b"garbage")))
    assert str(info.value) == "envelope could not be opened"


# --- decrypt: the ciphertext must be what the originator attested ----------------------------


def _decrypt_with(attestation_changes: dict[str, object], item: RawData | None = None) -> None:
    origin, pt = make_origin(item=item)
    env = make_envelope("KZ", "TR", origin, pt)
    att = OriginAttestation.from_bytes(origin.payload).model_copy(update=attestation_changes)
    decrypt(env, header_of(env), att, hpke_keys("TR"))


def test_decrypt_checks_plaintext_digest() -> None:
    with pytest.raises(OpenError):
        _decrypt_with({"plaintext_digest": "0" * 64})


def test_decrypt_checks_content_kind() -> None:
    from protocol.item import ContentKind

    with pytest.raises(OpenError):
        _decrypt_with({"content_kind": ContentKind.RAW})


def test_decrypt_checks_report_grading_against_label() -> None:
    # SPEC §7.2.1: a report's grading MUST equal the label's.
    lab = label("KZ", source_reliability=SourceReliability.A)
    with pytest.raises(OpenError):
        _decrypt_with({"label": lab})


def test_decrypt_checks_plaintext_parses() -> None:
    # An originator that attested bytes which are not an item: the recipient cannot open it.
    origin, pt = make_origin()
    att = OriginAttestation.from_bytes(origin.payload)
    junk = b"not an item"
    from protocol.encoding import sha256_hex

    bad_att = att.model_copy(update={"plaintext_digest": sha256_hex(junk)})
    bad_origin = sign(PayloadType.ORIGIN, bad_att, [signing_key("KZ")])
    env = make_envelope("KZ", "TR", bad_origin, junk)
    with pytest.raises(OpenError):
        decrypt(env, header_of(env), bad_att, hpke_keys("TR"))
    assert ingress(env, "TR").decision.reason is Reason.ENVELOPE_UNOPENABLE
    del pt


def test_raw_data_round_trips() -> None:
    origin, pt = make_origin(item=raw())
    assert _open(make_envelope("KZ", "TR", origin, pt)).item == raw()  # type: ignore[attr-defined]


# --- remaining policy paths ------------------------------------------------------------------


def test_ingress_origin_that_does_not_parse() -> None:
    # SPEC §9.2.9 step 3: the origin MUST parse as an ORIGIN statement.
    origin, pt = make_origin()
    env = make_envelope("KZ", "TR", origin, pt)
    bad = with_payload(origin, b"{}")
    env = resign_header(replace(env, origin=bad), "KZ", origin_digest=bad.digest)
    assert ingress(env, "TR").decision.reason is Reason.ENVELOPE_MALFORMED


def test_ingress_label_version_differs_from_attestation() -> None:
    origin, pt = make_origin()
    att = OriginAttestation.from_bytes(origin.payload)
    bad = att.model_copy(update={"label": att.label.model_copy(update={"item_version": 2})})
    resigned = sign(PayloadType.ORIGIN, bad, [signing_key("KZ")])
    assert ingress(make_envelope("KZ", "TR", resigned, pt), "TR").decision.reason is Reason.LABEL_INVALID


def test_egress_to_unknown_member() -> None:
    origin, _ = make_origin()
    att = OriginAttestation.from_bytes(origin.payload)
    decision = check_egress(Transfer("KZ", "KG", att, origin.digest, ()), Ctx().policy())
    assert decision.reason is Reason.UNKNOWN_MEMBER


def test_check_transfers_decides_each_pair() -> None:
    origin, _ = make_origin(label("KZ", releasable_to=("TR", "AZ", "UZ")))
    att = OriginAttestation.from_bytes(origin.payload)
    decisions = check_transfers([Transfer("KZ", r, att, origin.digest, ()) for r in ("TR", "AZ", "UZ")], Ctx().policy())
    assert [d.reason for d in decisions] == [Reason.ALLOWED, Reason.ALLOWED, Reason.NO_AGREEMENT]


def test_a_refusal_needs_a_refusal_reason() -> None:
    with pytest.raises(ValueError, match="refusal reason"):
        Decision.refuse(Reason.ALLOWED, "no")


# --- time-ordered identifiers (SPEC §4.7) ---------------------------------------------------


def test_time_ordered_ids_sort_by_time_and_keep_80_random_bits() -> None:
    from datetime import UTC, datetime, timedelta

    from protocol.encoding import time_ordered_id

    earlier = [time_ordered_id(NOW) for _ in range(200)]
    later = time_ordered_id(NOW + timedelta(milliseconds=1))
    assert len(set(earlier)) == 200  # same millisecond: the random bits tell them apart
    assert all(len(i) == 32 and int(i, 16) >= 0 and i == i.lower() for i in earlier)
    assert max(earlier) < later
    assert {i[:12] for i in earlier} == {f"{int(NOW.timestamp() * 1000):012x}"}
    with pytest.raises(ValueError, match="outside"):
        time_ordered_id(datetime(1969, 12, 31, tzinfo=UTC))


def test_envelope_id_and_nonce_carry_the_creation_time() -> None:
    from datetime import timedelta

    origin, pt = make_origin()
    first = header_of(make_envelope("KZ", "TR", origin, pt))
    second = header_of(make_envelope("KZ", "TR", origin, pt, now=NOW + timedelta(seconds=1)))
    assert first.envelope_id < second.envelope_id
    assert first.nonce < second.nonce
    assert first.envelope_id[:12] == first.nonce[:12] == f"{int(first.created_at.timestamp() * 1000):012x}"


# --- one verification recipe: opening is the ingress steps without policy (SPEC §8.6) ---------


def test_open_checks_the_label_as_ingress_does() -> None:
    # SPEC §8.6, §9.2.10: a marking that is not the originator's is refused by both.
    origin, pt = make_origin(label(originator_marking="GİZLİ"))  # TR's marking on KZ's item
    env = make_envelope("KZ", "TR", origin, pt)
    assert ingress(env, "TR").decision.reason is Reason.LABEL_INVALID
    with pytest.raises(OpenError):
        _open(env)


def _variants() -> list[tuple[str, Envelope, Reason, bool]]:
    """(name, envelope, ingress reason, whether open_envelope opens it)."""
    origin, pt = make_origin()
    good = make_envelope("KZ", "TR", origin, pt)
    other_origin, _ = make_origin(label(topics=("cyber",)))
    ts_origin, ts_pt = make_origin(label(band=Band.TOP_SECRET))
    flipped = good.ciphertext[:-1] + bytes([good.ciphertext[-1] ^ 1])
    return [
        ("valid", good, Reason.ALLOWED, True),
        (
            "header does not parse",
            replace(good, header=with_payload(good.header, b"{")),
            Reason.ENVELOPE_MALFORMED,
            False,
        ),
        ("unknown sender", resign_header(good, "AZ", sender="HU"), Reason.UNKNOWN_MEMBER, False),
        ("wrong signer", resign_header(good, "AZ"), Reason.SENDER_SIGNATURE_INVALID, False),
        ("other recipient", make_envelope("KZ", "AZ", origin, pt), Reason.NOT_ADDRESSED_TO_RECEIVER, False),
        ("origin swapped", replace(good, origin=other_origin), Reason.ORIGIN_SIGNATURE_INVALID, False),
        (
            "topic outside the vocabulary",
            make_envelope("KZ", "TR", *make_origin(label(topics=("piracy",)))),
            Reason.TOPIC_NOT_COVERED,
            False,
        ),
        ("ciphertext flipped", replace(good, ciphertext=flipped), Reason.ENVELOPE_UNOPENABLE, False),
        (
            "above the ceiling: policy only",
            make_envelope("KZ", "TR", ts_origin, ts_pt),
            Reason.BAND_ABOVE_CEILING,
            True,
        ),
    ]


@pytest.mark.parametrize(("name", "env", "reason", "opens"), _variants(), ids=[v[0] for v in _variants()])
def test_open_and_ingress_agree_on_verification(name: str, env: Envelope, reason: Reason, opens: bool) -> None:
    # SPEC §8.6: open refuses what ingress refuses at a verification step; policy refusals
    # (§9.3, §9.4) are ingress's alone.
    assert ingress(env, "TR").decision.reason is reason, name
    try:
        _open(env)
        opened = True
    except OpenError:
        opened = False
    assert opened is opens, name


def test_a_batch_key_of_another_length_does_not_open() -> None:
    # SPEC §8.2: the sealed batch key is 32 bytes; anything else is the opaque open error.
    suite = Suite.X25519_AES256GCM
    info = batch_key_info(sender="KZ", recipient="TR", suite=suite)
    sealed = suite._primitive().encrypt(bytes(31), hpke_keys("TR").public().for_kem(suite.kem), info=info)
    with pytest.raises(OpenError):
        _open_batch_key(hpke_keys("TR"), suite, info, sealed)


def test_naive_now_is_refused() -> None:
    # SPEC §3.3: now MUST be timezone-aware; a naive one is the caller's mistake.
    naive = NOW.replace(tzinfo=None)
    origin, pt = make_origin()
    with pytest.raises(LocalProtocolError, match="timezone-aware"):
        Ctx().policy(now=naive)
    with pytest.raises(LocalProtocolError, match="timezone-aware"):
        attest(item_id="item-1", label=label(), item=report(), originator_key=signing_key("KZ"), now=naive)
    with pytest.raises(LocalProtocolError, match="timezone-aware"):
        make_envelope("KZ", "TR", origin, pt, now=naive)


def test_receiver_reads_no_time_from_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    # SPEC §4.7: a receiver MUST NOT read a time from an id or rely on ordering: ids that are
    # not time-ordered at all (and carry another time than created_at) are accepted.
    ids = iter(["ffffffffffff" + "0" * 20, "000000000000" + "f" * 20])
    monkeypatch.setattr("protocol.envelope.time_ordered_id", lambda now: next(ids))
    origin, pt = make_origin()
    env = make_envelope("KZ", "TR", origin, pt)
    header = header_of(env)
    assert (header.envelope_id[:12], header.nonce[:12]) == ("ffffffffffff", "000000000000")
    assert ingress(env, "TR").decision.allowed
