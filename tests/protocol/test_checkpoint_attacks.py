"""Attacks on the audit trail once checkpoints are witnessed, one short named test each (SPEC §11.10.7).

The attacker is an insider with write access to KZ's database (it can rewrite KZ's log and
make KZ's node sign whatever the log then holds), a member forging or replaying notes, or
someone on the wire. TR (and AZ) witness KZ's log. Every attack must end in a refusal with
a reason code, a typed error, or a cosignature that does not count.
"""

from __future__ import annotations

import pytest
from checkpoint_support import HYBRID_KZ, Log, Witness, ed25519_line, entry, hybrid_roster, later
from support import NOW, roster, signing_key

from protocol.checkpoint import (
    NoteSignature,
    WitnessReason,
    accept_cosignature,
    log_origin,
    parse_checkpoint,
    verify_checkpoint,
    verify_cosigned,
    witness_request,
)
from protocol.errors import MalformedError, ProofError, SignatureError
from protocol.keys import SigningKey
from protocol.merkle import verify_consistency, verify_inclusion

R = WitnessReason


def _witnessed(size: int = 10) -> tuple[Log, Witness]:
    """KZ's log of ``size`` entries, witnessed by TR at time NOW."""
    log, tr = Log.of(size), Witness("TR")
    assert tr.see(log.request(0, NOW)).accepted
    return log, tr


def _body(note: bytes) -> bytes:
    return note.partition(b"\n\n")[0] + b"\n"


def _lines(note: bytes) -> bytes:
    return note.partition(b"\n\n")[2]


# --- insider rewrites of the witnessed log ----------------------------------------------------


def test_fork_shown_to_a_witness() -> None:
    # Same size, another root: two signed roots for one size are proof of a fork.
    log, tr = _witnessed()
    log.leaves[3] = entry(4, "forged")
    decision = tr.see(witness_request(10, [], log.checkpoint(later(10))), now=later(11))
    assert decision.reason is R.CHECKPOINT_FORK
    assert decision.evidence is not None
    held, shown = (parse_checkpoint(note).checkpoint for note in decision.evidence)
    assert (held.size, shown.size) == (10, 10)
    assert held.root != shown.root
    assert tr.kept[log_origin("OTS", "KZ")].root == held.root


def test_rollback_shown_to_a_witness() -> None:
    # A smaller tree signed after the witnessed one: the log went back on its word.
    log, tr = _witnessed()
    decision = tr.see(witness_request(10, [], log.checkpoint(later(10), 7)), now=later(11))
    assert decision.reason is R.CHECKPOINT_ROLLBACK
    assert decision.evidence is not None
    assert [parse_checkpoint(note).checkpoint.size for note in decision.evidence] == [10, 7]


def test_truncated_and_rechained_log_cannot_be_witnessed() -> None:
    # Entries 8..10 deleted, the chain re-linked and the log grown again past the witnessed
    # size: no consistency proof joins the witnessed root to the new tree.
    log, tr = _witnessed()
    del log.leaves[7:]
    log.leaves.extend(entry(100 + i) for i in range(6))
    assert tr.see(log.request(10, later(10)), now=later(11)).reason is R.CONSISTENCY_PROOF_INVALID


def test_deleted_entry_and_rechained_log_cannot_be_witnessed() -> None:
    # One INGRESS entry deleted mid-log, later entries renumbered and re-chained.
    log, tr = _witnessed()
    log.append(5)
    del log.leaves[4]
    assert tr.see(log.request(10, later(10)), now=later(11)).reason is R.CONSISTENCY_PROOF_INVALID


def test_refusal_rewritten_as_allowed_cannot_be_witnessed() -> None:
    log, tr = _witnessed()
    log.leaves[5] = entry(6, "ALLOWED instead of NOT_RELEASABLE")
    log.append(2)
    assert tr.see(log.request(10, later(10)), now=later(11)).reason is R.CONSISTENCY_PROOF_INVALID


def test_forged_entry_inserted_into_the_witnessed_past_cannot_be_witnessed() -> None:
    # A forged officer read slipped in before the witnessed size shifts every later leaf.
    log, tr = _witnessed()
    log.leaves.insert(2, entry(3, "OFFICER_READ forged"))
    assert tr.see(log.request(10, later(10)), now=later(11)).reason is R.CONSISTENCY_PROOF_INVALID


def test_erased_item_with_its_entries_cannot_be_witnessed() -> None:
    log, tr = _witnessed()
    log.append(4)
    for index in (9, 6, 2):  # every entry about one item
        del log.leaves[index]
    log.append(3)
    assert tr.see(log.request(10, later(10)), now=later(11)).reason is R.CONSISTENCY_PROOF_INVALID


def test_a_rewritten_log_fails_against_the_cosigned_checkpoint() -> None:
    # What an auditor does with a cosigned checkpoint: the rewritten log's tree at the
    # witnessed size no longer has the cosigned root.
    log, tr = _witnessed()
    cosigned = verify_cosigned(tr.kept[log_origin("OTS", "KZ")].note, roster=roster(), member_id="KZ", quorum=1)
    original = log.root(10)
    log.leaves[5] = entry(6, "ALLOWED")
    assert cosigned.checkpoint.checkpoint.root == original != log.root(10)


def test_the_window_before_the_next_witnessed_checkpoint() -> None:
    # Not an attack that fails: entries appended after the last witnessed checkpoint can be
    # rewritten undetected until the next checkpoint is witnessed (SPEC §11.10.7).
    log, tr = _witnessed()
    log.append(5)
    log.leaves[12] = entry(13, "rewritten before witnessing")
    assert tr.see(log.request(10, later(10)), now=later(11)).accepted


# --- forged, lifted and replayed notes ---------------------------------------------------------


def test_proof_for_another_tree() -> None:
    log, tr = _witnessed()
    log.append(6)
    other = Log.of(16)
    other.leaves[0] = entry(1, "another log")
    request = witness_request(10, other.consistency(10), log.checkpoint(later(10)))
    assert tr.see(request, now=later(11)).reason is R.CONSISTENCY_PROOF_INVALID


def test_inclusion_proof_for_another_tree() -> None:
    log = Log.of(16)
    other = Log.of(16)
    other.leaves[9] = entry(10, "another")
    with pytest.raises(ProofError, match="another root"):
        verify_inclusion(log.leaves[3], 3, 16, other.inclusion(3), log.root())


def test_consistency_proof_between_other_sizes() -> None:
    log = Log.of(16)
    with pytest.raises(ProofError):
        verify_consistency(10, 16, log.root(10), log.root(16), log.consistency(9, 16))


def test_signature_lifted_onto_another_checkpoint() -> None:
    log = Log.of(12)
    lifted = _body(log.checkpoint(NOW, 12)) + b"\n" + _lines(log.checkpoint(NOW, 10))
    with pytest.raises(SignatureError, match="does not verify"):
        verify_checkpoint(lifted, roster=roster(), member_id="KZ")
    assert Witness("TR").see(b"old 0\n\n" + lifted).reason is R.CHECKPOINT_SIGNATURE_INVALID


def test_signature_lifted_onto_another_time() -> None:
    # The time is inside the signed message: changing it in the line breaks the signature.
    note = Log.of(10).checkpoint(NOW)
    line = parse_checkpoint(note).signatures[0]
    moved = NoteSignature(line.name, line.key_id, int(later(3600).timestamp()).to_bytes(8, "big") + line.signature[8:])
    with pytest.raises(SignatureError, match="does not verify"):
        verify_checkpoint(_body(note) + b"\n" + moved.line(), roster=roster(), member_id="KZ")


def test_checkpoint_of_one_member_presented_as_another() -> None:
    note = Log.of(10, member_id="AZ").checkpoint(NOW)
    with pytest.raises(SignatureError, match="not of KZ's log"):
        verify_checkpoint(note, roster=roster(), member_id="KZ")


def test_checkpoint_relabelled_with_another_origin() -> None:
    # AZ's signature over its own log presented for KZ's origin.
    note = Log.of(10, member_id="AZ").checkpoint(NOW)
    relabelled = note.replace(b"/audit/AZ", b"/audit/KZ")
    assert Witness("TR").see(b"old 0\n\n" + relabelled).reason is R.CHECKPOINT_SIGNATURE_INVALID


def test_checkpoint_signed_by_a_revoked_key() -> None:
    request = Log.of(10).request(0, NOW)
    tr = Witness("TR", roster(revoked=(signing_key("KZ").keyid,)))
    assert tr.see(request).reason is R.CHECKPOINT_SIGNATURE_INVALID


def test_hybrid_log_downgraded_to_ed25519_only() -> None:
    note = Log.of(10, key=HYBRID_KZ).checkpoint(NOW)
    first_line = _lines(note).split(b"\n")[0] + b"\n"
    decision = Witness("TR", hybrid_roster()).see(b"old 0\n\n" + _body(note) + b"\n" + first_line)
    assert decision.reason is R.CHECKPOINT_SIGNATURE_INVALID
    assert "no ml-dsa-65 signature" in decision.detail


def test_old_checkpoint_replayed_to_a_witness() -> None:
    log, tr = _witnessed()
    old = log.request(0, NOW, 6)  # signed earlier, delivered late or replayed
    log.append(5)
    assert tr.see(log.request(10, later(10)), now=later(11)).accepted
    decision = tr.see(old, now=later(12))
    assert decision.reason is R.CHECKPOINT_STALE
    assert (decision.cosignature, decision.keep, decision.evidence) == (None, None, None)


def test_checkpoint_from_the_future() -> None:
    # A log cannot buy a long unwitnessed window by dating its checkpoint ahead.
    assert Witness("TR").see(Log.of(10).request(0, later(3600))).reason is R.CHECKPOINT_FROM_FUTURE


def test_witness_asked_to_witness_its_own_log() -> None:
    decision = Witness("KZ").see(Log.of(10).request(0, NOW))
    assert decision.reason is R.CHECKPOINT_UNKNOWN_LOG


def test_checkpoint_of_another_federation() -> None:
    note = Log.of(10).checkpoint(NOW).replace(b"intelshare/OTS/", b"intelshare/EU/")
    assert Witness("TR").see(b"old 0\n\n" + note).reason is R.CHECKPOINT_UNKNOWN_LOG


# --- cosignatures ---------------------------------------------------------------------------


STRANGER = SigningKey.from_seeds(b"\x07" * 32, None)
TIME = int(NOW.timestamp())


def test_cosignature_by_a_non_member() -> None:
    note = Log.of(10).checkpoint(NOW)
    forged = ed25519_line(STRANGER, "intelshare/OTS/witness/TR", _body(note), TIME)
    with pytest.raises(SignatureError, match="0 valid cosignatures, 1 required"):
        verify_cosigned(note + forged, roster=roster(), member_id="KZ", quorum=1)


def test_cosignature_by_a_non_member_with_a_members_key_id() -> None:
    # The 4-byte key id is no secret and no protection: a line claiming TR's name and key
    # id is checked against TR's roster key, and a failure rejects the whole note.
    note = Log.of(10).checkpoint(NOW)
    forged = ed25519_line(STRANGER, "intelshare/OTS/witness/TR", _body(note), TIME, key_id_of=signing_key("TR"))
    with pytest.raises(SignatureError, match="witness/TR: signature does not verify"):
        verify_cosigned(note + forged, roster=roster(), member_id="KZ", quorum=1)


def test_cosignature_lifted_onto_another_checkpoint() -> None:
    log, tr = _witnessed()
    cosignature = _lines(tr.kept[log_origin("OTS", "KZ")].note).split(b"\n")[1] + b"\n"
    log.append(1)
    other = log.checkpoint(later(5))
    with pytest.raises(SignatureError, match="witness/TR: signature does not verify"):
        verify_cosigned(other + cosignature, roster=roster(), member_id="KZ", quorum=1)
    with pytest.raises(SignatureError, match="witness/TR: signature does not verify"):
        accept_cosignature(other, cosignature, roster=roster(), member_id="KZ", witness_id="TR")


def test_log_cosigning_its_own_checkpoint_does_not_count() -> None:
    # KZ co-signs its own checkpoint under its witness name: a valid signature by a member
    # that must not count as a witness of KZ's log.
    note = Log.of(10).checkpoint(NOW)
    self_cosigned = ed25519_line(signing_key("KZ"), "intelshare/OTS/witness/KZ", _body(note), TIME)
    with pytest.raises(SignatureError, match="0 valid cosignatures"):
        verify_cosigned(note + self_cosigned, roster=roster(), member_id="KZ", quorum=1)
    with pytest.raises(SignatureError, match="cannot witness KZ's log"):
        accept_cosignature(note, self_cosigned, roster=roster(), member_id="KZ", witness_id="KZ")


def test_cosignature_by_a_witness_whose_key_was_revoked() -> None:
    log, tr = _witnessed()
    note = tr.kept[log_origin("OTS", "KZ")].note
    ros = roster(revoked=(signing_key("TR").keyid,))
    with pytest.raises(SignatureError, match="0 valid cosignatures"):
        verify_cosigned(note, roster=ros, member_id="KZ", quorum=1)
    with pytest.raises(SignatureError, match="no cosignature by TR"):
        accept_cosignature(
            log.checkpoint(NOW), _lines(note).split(b"\n", 1)[1], roster=ros, member_id="KZ", witness_id="TR"
        )


def test_one_witness_counted_twice() -> None:
    # The same cosignature line twice is not two witnesses: the note does not even parse.
    _, tr = _witnessed()
    note = tr.kept[log_origin("OTS", "KZ")].note
    cosignature = _lines(note).split(b"\n")[1] + b"\n"
    with pytest.raises(MalformedError, match="two signature lines by the same key"):
        verify_cosigned(note + cosignature, roster=roster(), member_id="KZ", quorum=2)
