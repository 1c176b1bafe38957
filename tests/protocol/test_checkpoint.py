"""Checkpoints, cosignatures and the witness rule (SPEC §11.10).

Byte formats are checked against the C2SP examples and independently of the module (the
signature is verified with ``cryptography`` directly over the bytes SPEC §11.10.2 names);
the witness rule reason by reason; the log owner's and auditor's verifiers. The attacks
are in ``test_checkpoint_attacks.py``.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from checkpoint_support import FEDERATION, HYBRID_KZ, Log, Witness, ed25519_line, hybrid_roster, later
from cryptography.hazmat.primitives.asymmetric import ed25519
from support import NOW, roster, signing_key

from protocol.checkpoint import (
    COSIGNATURE_HEADER,
    ED25519_COSIGNATURE_TYPE,
    MAX_NOTE_BYTES,
    MAX_NOTE_SIGNATURES,
    MAX_PROOF_LINES,
    ML_DSA_65_COSIGNATURE_TYPE,
    WITNESS_RULES,
    Checkpoint,
    NoteSignature,
    SignedCheckpoint,
    WitnessReason,
    accept_cosignature,
    cosigned_message,
    log_origin,
    note_key_id,
    parse_checkpoint,
    parse_witness_request,
    sign_checkpoint,
    verify_checkpoint,
    verify_cosigned,
    witness_name,
    witness_request,
)
from protocol.errors import ConfigurationError, MalformedError, SignatureError
from protocol.keys import SigningKey
from protocol.merkle import EMPTY_ROOT
from protocol.roster import Roster

R = WitnessReason
#: The example checkpoint of C2SP tlog-checkpoint, with the witness line of C2SP tlog-cosignature.
C2SP_CHECKPOINT = (
    "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n"
    "— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+z"
    "yWE+xeMcTOAYQ8=\n"
    "— witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5n"
    "No0xUe+mbIUBkBIfZ+qnA==\n"
).encode()


def _lines(note: bytes) -> list[bytes]:
    _, _, signatures = note.partition(b"\n\n")
    return [line + b"\n" for line in signatures.split(b"\n")[:-1]]


def _body(note: bytes) -> bytes:
    return note.partition(b"\n\n")[0] + b"\n"


# --- names, key ids, bytes ----------------------------------------------------------------


def test_origin_and_witness_names() -> None:
    assert log_origin("OTS", "KZ") == "intelshare/OTS/audit/KZ"
    assert witness_name("OTS", "KZ") == "intelshare/OTS/witness/KZ"
    # The federation name is percent-encoded: no space, '+' or '/' reaches the origin line.
    assert log_origin("Turkic States/ü+1", "KZ-NSC") == "intelshare/Turkic%20States%2F%C3%BC%2B1/audit/KZ-NSC"


def test_key_ids_follow_signed_note() -> None:
    # C2SP signed-note's example vkey example.com/foo+530d903a (type 0x01), and the
    # transparency-dev/formats cosignature/v1 test vkey remora.n621.de+da77ade7 (type 0x04).
    foo = base64.b64decode("AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k")
    remora = base64.b64decode("BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2")
    assert note_key_id("example.com/foo", foo[:1], foo[1:]).hex() == "530d903a"
    assert note_key_id("remora.n621.de", remora[:1], remora[1:]).hex() == "da77ade7"
    assert remora[:1] == ED25519_COSIGNATURE_TYPE


def test_c2sp_examples_parse_and_round_trip() -> None:
    note = parse_checkpoint(C2SP_CHECKPOINT)
    assert note.checkpoint.origin == "example.com/behind-the-sofa"
    assert note.checkpoint.size == 20852163
    assert [s.name for s in note.signatures] == ["example.com/behind-the-sofa", "witness.example.com/w1"]
    assert int.from_bytes(note.signatures[1].signature[:8], "big") == 1679315147  # the cosignature's time
    assert note.to_bytes() == C2SP_CHECKPOINT
    request = (
        b"old 20852014\nPlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\njrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=\n\n"
        + C2SP_CHECKPOINT
    )
    parsed = parse_witness_request(request)
    assert (parsed.old_size, len(parsed.proof), parsed.note) == (20852014, 2, note)


def test_checkpoint_bytes() -> None:
    log = Log.of(10)
    note = log.checkpoint(NOW)
    origin, root = "intelshare/OTS/audit/KZ", base64.b64encode(log.root()).decode()
    body = f"{origin}\n10\n{root}\n".encode()
    assert _body(note) == body
    (line,) = _lines(note)
    assert line.startswith(f"— {origin} ".encode())
    raw = base64.b64decode(line.split(b" ")[2])
    public = signing_key("KZ").public().ed25519
    assert raw[:4] == hashlib.sha256(origin.encode() + b"\n\x04" + public).digest()[:4]
    timestamp = int(NOW.timestamp())
    assert raw[4:12] == timestamp.to_bytes(8, "big")
    assert len(raw) == 4 + 8 + 64
    message = b"cosignature/v1\ntime %d\n" % timestamp + body
    assert cosigned_message(body, timestamp) == message
    assert message.startswith(COSIGNATURE_HEADER)
    ed25519.Ed25519PublicKey.from_public_bytes(public).verify(raw[12:], message)
    assert note == log.checkpoint(NOW)  # Ed25519: deterministic


def test_verify_checkpoint_gives_the_signing_time_and_lines() -> None:
    note = Log.of(3).checkpoint(later(7))
    verified = verify_checkpoint(note, roster=roster(), member_id="KZ")
    assert (verified.member_id, verified.checkpoint.size, verified.time) == ("KZ", 3, later(7))
    assert verified.note() == note
    assert parse_checkpoint(note).to_bytes() == note


def test_signing_time_is_whole_seconds() -> None:
    note = Log.of(3).checkpoint(NOW + timedelta(milliseconds=999))
    assert verify_checkpoint(note, roster=roster(), member_id="KZ").time == NOW


def test_empty_log_checkpoint() -> None:
    note = sign_checkpoint(signing_key("KZ"), federation=FEDERATION, member_id="KZ", size=0, root=EMPTY_ROOT, now=NOW)
    assert verify_checkpoint(note, roster=roster(), member_id="KZ").checkpoint.root == EMPTY_ROOT
    with pytest.raises(ValueError, match="not a root hash"):
        sign_checkpoint(signing_key("KZ"), federation=FEDERATION, member_id="KZ", size=0, root=b"\x00" * 32, now=NOW)


@pytest.mark.parametrize(
    ("size", "root", "now", "message"),
    [
        (-1, EMPTY_ROOT, NOW, "out of range"),
        (1 << 63, EMPTY_ROOT, NOW, "out of range"),
        (1, b"\x00" * 31, NOW, "not a root hash"),
        (1, b"\x00" * 32, NOW.replace(tzinfo=None), "timezone-aware"),
        (1, b"\x00" * 32, datetime(1969, 12, 31, tzinfo=UTC), "outside the range"),
    ],
)
def test_sign_checkpoint_refuses_impossible_checkpoints(size: int, root: bytes, now: datetime, message: str) -> None:
    # SPEC §11.10.2: a log MUST NOT sign a checkpoint no tree of that size has.
    with pytest.raises(ValueError, match=message):
        sign_checkpoint(signing_key("KZ"), federation=FEDERATION, member_id="KZ", size=size, root=root, now=now)


# --- strict parsing -------------------------------------------------------------------------

GOOD = Log.of(10).checkpoint(NOW)
BODY = _body(GOOD)
(LINE,) = _lines(GOOD)
ORIGIN, SIZE, ROOT = BODY.decode().split("\n")[:3]


def _note(origin: str = ORIGIN, size: str = SIZE, root: str = ROOT, tail: bytes = b"\n" + LINE) -> bytes:
    return f"{origin}\n{size}\n{root}\n".encode() + tail


def _sig_line(name: str, raw: bytes) -> bytes:
    return f"— {name} {base64.b64encode(raw).decode()}\n".encode()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\xff" + GOOD, "not UTF-8"),
        (GOOD.replace(b"\n", b"\r\n", 1), "control character"),
        (GOOD.replace(b"\n10\n", b"\n10\t\n"), "control character"),
        (GOOD[:-1], "does not end with a newline"),
        (_note(tail=b"ext line\n\n" + LINE), "no extension lines"),
        (_note(tail=LINE), "no extension lines"),
        (_note(tail=b"\n"), "at least one signature line"),
        (_note(origin=""), "origin"),
        (_note(origin="intelshare/OTS audit/KZ"), "origin"),
        (_note(origin="intelshare/OTS+/audit/KZ"), "origin"),
        (_note(origin="intelshare/OTS\u00a0/audit/KZ"), "origin"),
        (_note(size="010"), "tree size"),
        (_note(size="+10"), "tree size"),
        (_note(size="1e1"), "tree size"),
        (_note(size=str(1 << 63)), "tree size"),
        (_note(root=ROOT[:-1]), "root hash is not base64"),
        (_note(root=ROOT[:-2] + "B="), "not canonical base64"),
        (_note(root="AAAA" + ROOT), "not 32 bytes"),
        (_note(root=ROOT.replace("+", "-").replace("/", "_") + "%"), "not base64"),
        (_note(size="0"), "empty tree's root"),
        (_note(tail=b"\n" + LINE.replace("—".encode(), b"-", 1)), "em dash"),
        (_note(tail=b"\n" + LINE + b"\n"), "em dash"),
        (_note(tail=b"\n" + _sig_line("", b"\x00" * 76)), "key name"),
        (_note(tail=b"\n" + _sig_line("a+b", b"\x00" * 76)), "key name"),
        (_note(tail=b"\n" + "— name\n".encode()), "key name"),
        (_note(tail=b"\n" + "— name not!base64\n".encode()), "not base64"),
        (_note(tail=b"\n" + _sig_line("name", b"\x00" * 4)), "shorter than a key id"),
        (_note(tail=b"\n" + LINE + LINE), "same key"),
        (_note(tail=b"\n" + _sig_line("n", b"\x00" * 5) * (MAX_NOTE_SIGNATURES + 1)), "more than 1024"),
        (_note(tail=b"\n" + _sig_line("n", b"\x00" * MAX_NOTE_BYTES)), "longer than"),
    ],
)
def test_parse_refuses_anything_not_byte_exact(data: bytes, message: str) -> None:
    with pytest.raises(MalformedError, match=message):
        parse_checkpoint(data)


def test_unicode_key_names_and_many_lines_parse() -> None:
    # Names of other ecosystems' cosigners may be any non-space text; 1024 lines are allowed.
    lines = b"".join(_sig_line(f"wit\u00f1ess/{i}", i.to_bytes(4, "big") + b"\x00") for i in range(1023))
    note = _note(tail=b"\n" + LINE + lines)
    assert parse_checkpoint(note).to_bytes() == note


# --- identities: Ed25519 and hybrid -----------------------------------------------------------


def test_hybrid_checkpoint_carries_both_algorithms_over_one_message() -> None:
    log = Log.of(4, key=HYBRID_KZ)
    note = log.checkpoint(NOW)
    ed_line, ml_line = (parse_checkpoint(note).signatures[i] for i in (0, 1))
    public = HYBRID_KZ.public()
    assert public.ml_dsa_65 is not None
    assert ed_line.key_id == note_key_id(ORIGIN, b"\x04", public.ed25519)
    assert ml_line.key_id == note_key_id(ORIGIN, ML_DSA_65_COSIGNATURE_TYPE, public.ml_dsa_65)
    assert ML_DSA_65_COSIGNATURE_TYPE == b"\xffintelshare/cosignature/v1/ml-dsa-65"
    assert (len(ed_line.signature), len(ml_line.signature)) == (8 + 64, 8 + 3309)
    assert ed_line.signature[:8] == ml_line.signature[:8]
    verified = verify_checkpoint(note, roster=hybrid_roster(), member_id="KZ")
    assert verified.log_signatures == (ed_line, ml_line)


@pytest.mark.parametrize("drop", [0, 1])
def test_hybrid_checkpoint_needs_both_algorithms(drop: int) -> None:
    # SPEC §11.10.3: every algorithm of the roster key MUST have signed.
    note = Log.of(4, key=HYBRID_KZ).checkpoint(NOW)
    lines = _lines(note)
    del lines[drop]
    with pytest.raises(SignatureError, match=r"no (ed25519|ml-dsa-65) signature"):
        verify_checkpoint(_body(note) + b"\n" + b"".join(lines), roster=hybrid_roster(), member_id="KZ")


def test_hybrid_lines_must_carry_one_time() -> None:
    log = Log.of(4, key=HYBRID_KZ)
    first, second = _lines(log.checkpoint(NOW)), _lines(log.checkpoint(later(1)))
    mixed = _body(log.checkpoint(NOW)) + b"\n" + first[0] + second[1]
    with pytest.raises(SignatureError, match="different times"):
        verify_checkpoint(mixed, roster=hybrid_roster(), member_id="KZ")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (ed25519_line(signing_key("KZ"), ORIGIN, BODY, 0), "timestamp out of range"),
        (ed25519_line(signing_key("KZ"), ORIGIN, BODY, 1 << 63), "timestamp out of range"),
        (ed25519_line(signing_key("KZ"), ORIGIN, BODY, 5, b"\x00" * 63), "wrong length"),
        (ed25519_line(signing_key("KZ"), ORIGIN, BODY, 5, b"\x00" * 64), "does not verify"),
        (ed25519_line(signing_key("KZ"), ORIGIN, BODY + b"x", 5), "does not verify"),
    ],
)
def test_a_bad_line_from_the_log_key_fails_the_checkpoint(line: bytes, message: str) -> None:
    with pytest.raises(SignatureError, match=message):
        verify_checkpoint(BODY + b"\n" + line, roster=roster(), member_id="KZ")


def test_lines_from_unknown_keys_are_ignored() -> None:
    # signed-note: ignore a line unless both name and key id are a known key's.
    stranger = SigningKey.from_seeds(b"\x09" * 32, None)
    other_name = ed25519_line(signing_key("KZ"), "intelshare/OTS/audit/TR", BODY, 5, b"\x00" * 64)
    other_id = NoteSignature(ORIGIN, b"\x00\x00\x00\x00", b"\x00" * 72).line()
    foreign = ed25519_line(stranger, "example.com/log", BODY, 5)
    note = BODY + b"\n" + other_name + other_id + foreign + LINE
    assert verify_checkpoint(note, roster=roster(), member_id="KZ").log_signatures == parse_checkpoint(GOOD).signatures
    with pytest.raises(SignatureError, match="no signature by KZ's roster key"):
        verify_checkpoint(BODY + b"\n" + other_name + other_id + foreign, roster=roster(), member_id="KZ")


@pytest.mark.parametrize(
    ("member_id", "ros", "message"),
    [
        ("TR", roster(), "not of TR's log"),
        ("XX", roster(), "XX is not a roster member"),
        ("KZ", roster(revoked=(signing_key("KZ").keyid,)), "key is revoked"),
    ],
)
def test_verify_checkpoint_refuses_the_wrong_log_or_key(member_id: str, ros: Roster, message: str) -> None:
    with pytest.raises(SignatureError, match=message):
        verify_checkpoint(GOOD, roster=ros, member_id=member_id)


# --- witness requests --------------------------------------------------------------------------


def test_witness_request_bytes_and_round_trip() -> None:
    log = Log.of(7)
    proof = log.consistency(3)
    request = witness_request(3, proof, log.checkpoint(NOW))
    head = b"old 3\n" + b"".join(base64.b64encode(p) + b"\n" for p in proof) + b"\n"
    assert request == head + log.checkpoint(NOW)
    parsed = parse_witness_request(request)
    assert (parsed.old_size, parsed.proof, parsed.note.to_bytes()) == (3, tuple(proof), log.checkpoint(NOW))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"old 3\n", "blank line"),
        (GOOD, "old <size>"),
        (b"old 03\n\n" + GOOD, "old <size>"),
        (b"old\n\n" + GOOD, "old <size>"),
        (b"new 3\n\n" + GOOD, "old <size>"),
        (b"old 3\n" + b"AAAA\n" + b"\n" + GOOD, "not 32 bytes"),
        (b"old 3\nA\n\n" + GOOD, "not base64"),
        (b"old 3\n" + base64.b64encode(b"\x00" * 64) + b"\n\n" + GOOD, "not 32 bytes"),
        (b"old 3\n" + (base64.b64encode(b"\x00" * 32) + b"\n") * (MAX_PROOF_LINES + 1) + b"\n" + GOOD, "more than 63"),
        (b"old 3\x00\n\n" + GOOD, "control character"),
        (b"old 3\n\n" + GOOD[:-1], "newline"),
    ],
)
def test_parse_witness_request_is_strict(data: bytes, message: str) -> None:
    with pytest.raises(MalformedError, match=message):
        parse_witness_request(data)


# --- the witness rule --------------------------------------------------------------------------


def test_first_checkpoint_is_witnessed_and_kept() -> None:
    log, tr = Log.of(5), Witness()
    decision = tr.see(log.request(0, NOW), now=later(2))
    assert decision.accepted
    assert (decision.reason, decision.rule) == (R.CHECKPOINT_WITNESSED, "§11.10.5 step 8")
    assert (decision.log_member, decision.witnessed_size, decision.evidence) == ("KZ", 0, None)
    assert decision.checkpoint == parse_checkpoint(log.checkpoint(NOW)).checkpoint
    kept = decision.keep
    assert kept is not None
    assert (kept.origin, kept.size, kept.root, kept.log_time) == (ORIGIN, 5, log.root(), NOW)
    assert decision.cosignature is not None
    assert kept.note == log.checkpoint(NOW) + decision.cosignature
    cosignature = accept_cosignature(
        log.checkpoint(NOW), decision.cosignature, roster=roster(), member_id="KZ", witness_id="TR"
    )
    assert (cosignature.witness, cosignature.time, cosignature.lines) == ("TR", later(2), decision.cosignature)
    (line,) = parse_checkpoint(kept.note).signatures[1:]
    assert line.name == "intelshare/OTS/witness/TR"
    assert line.key_id == note_key_id(line.name, b"\x04", signing_key("TR").public().ed25519)


def test_an_extension_is_witnessed_with_a_consistency_proof() -> None:
    log, tr = Log.of(5), Witness()
    tr.see(log.request(0, NOW))
    log.append(6)
    decision = tr.see(log.request(5, later(10)), now=later(11))
    assert decision.reason is R.CHECKPOINT_WITNESSED
    assert decision.witnessed_size == 5
    assert tr.kept[ORIGIN].size == 11


def test_the_same_checkpoint_later_is_witnessed_again() -> None:
    # An idle log re-signs its head: the witness co-signs it with a fresh time, so the
    # window of unwitnessed entries stays bounded in time too (SPEC §11.10.7).
    log, tr = Log.of(5), Witness()
    tr.see(log.request(0, NOW))
    decision = tr.see(log.request(5, later(60)), now=later(61))
    assert decision.reason is R.CHECKPOINT_WITNESSED
    assert tr.kept[ORIGIN].log_time == later(60)


def test_a_witness_that_lost_its_state_starts_again() -> None:
    log = Log.of(5)
    assert Witness().see(log.request(0, NOW)).reason is R.CHECKPOINT_WITNESSED
    assert Witness().see(log.request(3, NOW)).reason is R.CHECKPOINT_OLD_SIZE_MISMATCH


@pytest.mark.parametrize(
    ("request_bytes", "reason"),
    [
        (b"garbage", R.CHECKPOINT_MALFORMED),
        (b"old 0\n\n" + GOOD.replace(b"\n10\n", b"\n010\n"), R.CHECKPOINT_MALFORMED),
        (b"old 0\n\n" + Log.of(10, member_id="TR").checkpoint(NOW), R.CHECKPOINT_UNKNOWN_LOG),
        (b"old 0\n\n" + BODY.replace(b"/KZ\n", b"/XX\n") + b"\n" + LINE, R.CHECKPOINT_UNKNOWN_LOG),
        (b"old 0\n\n" + BODY.replace(b"OTS", b"EU") + b"\n" + LINE, R.CHECKPOINT_UNKNOWN_LOG),
        (b"old 0\n\n" + BODY.replace(b"intelshare/", b"example.com/") + b"\n" + LINE, R.CHECKPOINT_UNKNOWN_LOG),
        (b"old 0\n\n" + Log.of(10, key=signing_key("AZ")).checkpoint(NOW), R.CHECKPOINT_SIGNATURE_INVALID),
        (b"old 0\n\n" + Log.of(10).checkpoint(later(301)), R.CHECKPOINT_FROM_FUTURE),
        (Log.of(10).request(3, NOW), R.CHECKPOINT_OLD_SIZE_MISMATCH),
        (b"old 11\n\n" + GOOD, R.CHECKPOINT_OLD_SIZE_MISMATCH),
        (witness_request(0, Log.of(10).consistency(3), GOOD), R.CONSISTENCY_PROOF_INVALID),
    ],
)
def test_witness_refusals_on_a_fresh_witness(request_bytes: bytes, reason: WitnessReason) -> None:
    decision = Witness().see(request_bytes)
    assert (decision.reason, decision.rule) == (reason, WITNESS_RULES[reason])
    assert not decision.accepted
    assert (decision.cosignature, decision.keep) == (None, None)


def test_a_checkpoint_up_to_max_future_ahead_is_witnessed() -> None:
    assert Witness().see(Log.of(3).request(0, later(300))).reason is R.CHECKPOINT_WITNESSED


def test_witness_refusals_against_what_it_holds() -> None:
    # SPEC §11.10.5: a witness MUST NOT co-sign what does not extend what it holds.
    log, tr = Log.of(10), Witness()
    tr.see(log.request(0, later(10)))
    held = tr.kept[ORIGIN]
    log.append(5)
    cases: list[tuple[bytes, WitnessReason]] = [
        (log.request(0, later(20)), R.CHECKPOINT_OLD_SIZE_MISMATCH),
        (log.request(9, later(20)), R.CHECKPOINT_OLD_SIZE_MISMATCH),
        (witness_request(10, log.consistency(9), log.checkpoint(later(20))), R.CONSISTENCY_PROOF_INVALID),
        (witness_request(10, [], log.checkpoint(later(20))), R.CONSISTENCY_PROOF_INVALID),
        (witness_request(10, log.consistency(5, 10), log.checkpoint(later(20), 10)), R.CONSISTENCY_PROOF_INVALID),
        (log.request(10, later(5)), R.CHECKPOINT_STALE),
        (log.request(9, later(5), 9), R.CHECKPOINT_STALE),
        (log.request(9, later(10), 9), R.CHECKPOINT_STALE),
    ]
    for request, reason in cases:
        decision = tr.see(request, now=later(30))
        assert decision.reason is reason, (reason, decision.detail)
        assert (decision.witnessed_size, decision.keep, decision.evidence) == (10, None, None)
    assert tr.kept[ORIGIN] == held


def test_every_reason_has_a_rule_and_decisions_are_frozen() -> None:
    assert set(WITNESS_RULES) == set(WitnessReason)
    decision = Witness().see(b"garbage")
    with pytest.raises(dataclasses.FrozenInstanceError):
        decision.reason = R.CHECKPOINT_WITNESSED  # type: ignore[misc]


@pytest.mark.parametrize(
    ("witness_id", "key", "ros"),
    [
        ("XX", signing_key("TR"), roster()),
        ("TR", signing_key("AZ"), roster()),
        ("TR", signing_key("TR"), roster(revoked=(signing_key("TR").keyid,))),
    ],
)
def test_the_witness_key_must_be_its_usable_roster_key(witness_id: str, key: SigningKey, ros: Roster) -> None:
    with pytest.raises(ConfigurationError, match="usable roster key"):
        Witness(witness_id, ros, key).see(GOOD)


def test_witness_parameters_are_checked() -> None:
    from protocol.checkpoint import witness

    with pytest.raises(ValueError, match="max_future"):
        witness(
            GOOD,
            roster=roster(),
            witness_id="TR",
            key=signing_key("TR"),
            last=lambda origin: None,
            now=NOW,
            max_future=timedelta(-1),
        )
    with pytest.raises(ValueError, match="timezone-aware"):
        Witness().see(GOOD, now=NOW.replace(tzinfo=None))


def test_a_hybrid_witness_cosigns_with_both_algorithms() -> None:
    hybrid_tr = SigningKey.from_seeds(b"\x03" * 32, b"\x04" * 32)
    ros = hybrid_roster("TR", hybrid_tr)
    decision = Witness("TR", ros, hybrid_tr).see(Log.of(3).request(0, NOW))
    assert decision.cosignature is not None
    ed_line, ml_line = parse_checkpoint(Log.of(3).checkpoint(NOW) + decision.cosignature).signatures[1:]
    assert (ed_line.name, ml_line.name) == ("intelshare/OTS/witness/TR", "intelshare/OTS/witness/TR")
    assert (len(ed_line.signature), len(ml_line.signature)) == (8 + 64, 8 + 3309)
    cosignature = accept_cosignature(
        Log.of(3).checkpoint(NOW), decision.cosignature, roster=ros, member_id="KZ", witness_id="TR"
    )
    assert cosignature.lines == decision.cosignature


# --- the log owner and the auditor -------------------------------------------------------------


def _cosigned(log: Log, *witnesses: str) -> bytes:
    note = log.checkpoint(NOW)
    lines = b"".join(Witness(w).see(log.request(0, NOW), now=later(1)).cosignature or b"" for w in witnesses)
    return note + lines


def test_verify_cosigned_counts_each_witness() -> None:
    log = Log.of(6)
    cosigned = verify_cosigned(_cosigned(log, "TR", "AZ", "UZ"), roster=roster(), member_id="KZ", quorum=3)
    assert [c.witness for c in cosigned.witnesses] == ["TR", "AZ", "UZ"]
    assert {c.time for c in cosigned.witnesses} == {later(1)}
    assert cosigned.checkpoint.checkpoint.size == 6
    with pytest.raises(SignatureError, match="2 valid cosignatures, 3 required"):
        verify_cosigned(_cosigned(log, "TR", "AZ"), roster=roster(), member_id="KZ", quorum=3)
    with pytest.raises(ValueError, match="quorum"):
        verify_cosigned(_cosigned(log, "TR"), roster=roster(), member_id="KZ", quorum=0)


def test_verify_cosigned_ignores_revoked_witnesses() -> None:
    note = _cosigned(Log.of(6), "TR", "AZ")
    ros = roster(revoked=(signing_key("AZ").keyid,))
    assert [c.witness for c in verify_cosigned(note, roster=ros, member_id="KZ", quorum=1).witnesses] == ["TR"]


def test_a_bad_line_by_a_witness_key_fails_the_note() -> None:
    note = _cosigned(Log.of(6), "TR")
    broken = NoteSignature(
        "intelshare/OTS/witness/AZ",
        note_key_id("intelshare/OTS/witness/AZ", b"\x04", signing_key("AZ").public().ed25519),
        (5).to_bytes(8, "big") + b"\x00" * 64,
    ).line()
    with pytest.raises(SignatureError, match="witness/AZ: signature does not verify"):
        verify_cosigned(note + broken, roster=roster(), member_id="KZ", quorum=1)


@pytest.mark.parametrize(
    ("witness_id", "response", "error", "message"),
    [
        ("KZ", None, SignatureError, "cannot witness KZ's log"),
        ("XX", None, SignatureError, "cannot witness KZ's log"),
        ("AZ", None, SignatureError, "no cosignature by AZ"),
        ("TR", b"", MalformedError, "newline"),
        ("TR", b"\n", MalformedError, "em dash"),
    ],
)
def test_accept_cosignature_refusals(
    witness_id: str, response: bytes | None, error: type[Exception], message: str
) -> None:
    log = Log.of(4)
    decision = Witness("TR").see(log.request(0, NOW))
    assert decision.cosignature is not None
    with pytest.raises(error, match=message):
        accept_cosignature(
            log.checkpoint(NOW),
            decision.cosignature if response is None else response,
            roster=roster(),
            member_id="KZ",
            witness_id=witness_id,
        )


def test_checkpoint_dataclasses_round_trip() -> None:
    note = parse_checkpoint(GOOD)
    assert SignedCheckpoint(Checkpoint(ORIGIN, 10, note.checkpoint.root), note.signatures).to_bytes() == GOOD
