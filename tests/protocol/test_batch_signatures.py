"""Batch signatures (SPEC §4.6): one root signature per batch, one inclusion proof per statement.

One short named test per attack or behaviour. Every batch statement must verify alone, and
every change to its signature bytes, its payload, its type or the key must make it fail.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import (
    NOW,
    WINDOW,
    Ctx,
    flip,
    header_of,
    hpke_keys,
    ingress,
    label,
    member,
    never_replayed,
    raw,
    report,
    roster,
    signing_key,
    tls,
    with_payload,
    with_signature,
)

import protocol.keys as keys_mod
from protocol.encoding import pae
from protocol.envelope import Envelope, OriginAttestation, SealRequest, Suite, ToAttest, attest_many, seal_many
from protocol.errors import LocalProtocolError, OpenError, SignatureError
from protocol.keys import (
    BATCH_ROOT_TYPE,
    SignatureAlg,
    SigningKey,
    VerifiedRoots,
    batch_root_message,
    encode_batch_signature,
    keyid_of,
)
from protocol.merkle import inclusion_proofs, leaf_hash, root_from_inclusion_proof
from protocol.policy import IngressResult, Reason, check_ingress, open_envelope
from protocol.receipt import Receipt
from protocol.roster import Roster
from protocol.statements import PayloadType, Signature, Signed, sign, sign_many, verify, verify_and_parse

KZ = signing_key("KZ")
HYBRID = SigningKey.from_seeds(b"\x01" * 32, b"\x02" * 32)
ED25519_SIG_LEN = 64


def _receipt(n: int) -> Receipt:
    return Receipt(
        envelope_id=f"{n:032x}",
        envelope_digest=f"{n:064x}",
        sender="KZ",
        receiver="TR",
        accepted=True,
        reason="ALLOWED",
        rule="§9.3",
        received_at=NOW,
        log_seq=7,
        log_leaf="ab" * 32,
    )


def _batch(n: int = 5, key: SigningKey = KZ) -> list[Signed]:
    return sign_many([(PayloadType.RECEIPT, _receipt(i)) for i in range(n)], [key])


def _ok(signed: Signed, key: SigningKey = KZ, roots: VerifiedRoots | None = None) -> bool:
    try:
        verify(signed, PayloadType.RECEIPT, [key.public()], roots)
    except SignatureError:
        return False
    return True


def _fields(sig: bytes) -> tuple[int, int, list[bytes], bytes]:
    """tree size, index, proof, root signature of a batch signature (SPEC §4.6 layout)."""
    count = sig[8]
    end = 9 + 32 * count
    return (
        int.from_bytes(sig[:4], "big"),
        int.from_bytes(sig[4:8], "big"),
        [sig[at : at + 32] for at in range(9, end, 32)],
        sig[end:],
    )


def _resig(
    signed: Signed,
    *,
    size: int | None = None,
    index: int | None = None,
    proof: list[bytes] | None = None,
    root_sig: bytes | None = None,
) -> Signed:
    """``signed`` with its (only) batch signature re-encoded with some fields changed."""
    old_size, old_index, old_proof, old_root_sig = _fields(signed.signatures[0].sig)
    sig = encode_batch_signature(
        old_size if size is None else size,
        old_index if index is None else index,
        old_proof if proof is None else proof,
        old_root_sig if root_sig is None else root_sig,
    )
    return with_signature(signed, 0, sig)


@pytest.fixture
def ed25519_calls(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every message the Ed25519 primitive is asked to verify."""
    calls: list[bytes] = []
    real: Callable[[bytes, bytes, bytes], bool] = keys_mod._verify_ed25519

    def counting(public_raw: bytes, signature: bytes, message: bytes) -> bool:
        calls.append(message)
        return real(public_raw, signature, message)

    monkeypatch.setattr(keys_mod, "_verify_ed25519", counting)
    return calls


# --- signing and verifying ----------------------------------------------------------------


@pytest.mark.parametrize("with_roots", [False, True])
def test_each_statement_of_a_batch_verifies_alone(with_roots: bool) -> None:
    for i, signed in enumerate(_batch()):
        alone = Signed.from_bytes(signed.to_bytes())  # travels on its own
        roots = VerifiedRoots() if with_roots else None
        assert verify_and_parse(alone, PayloadType.RECEIPT, [KZ.public()], Receipt, roots) == _receipt(i)


def test_batch_signature_layout() -> None:
    batch = _batch(5)
    leaves = [leaf_hash(pae(s.payload_type, s.payload)) for s in batch]
    root, proofs = inclusion_proofs(leaves)
    ((_, _, root_sig),) = KZ.sign(batch_root_message(5, root))
    for index, signed in enumerate(batch):
        (sig,) = signed.signatures
        assert (sig.keyid, sig.alg) == (KZ.keyid, "ed25519-batch")
        assert _fields(sig.sig) == (5, index, proofs[index], root_sig)
        assert len(root_sig) == ED25519_SIG_LEN


def test_batch_root_message_is_pae_of_size_and_root() -> None:
    root = bytes(range(32))
    assert BATCH_ROOT_TYPE == "application/vnd.intelshare.batch-root;v=1"
    message = batch_root_message(5, root)
    assert message == b"DSSEv1 41 application/vnd.intelshare.batch-root;v=1 36 \x00\x00\x00\x05" + root


def test_batch_algorithm_names() -> None:
    assert SignatureAlg.ED25519.batch is SignatureAlg.ED25519_BATCH
    assert SignatureAlg.ML_DSA_65.batch is SignatureAlg.ML_DSA_65_BATCH
    assert SignatureAlg.ED25519_BATCH.batch is SignatureAlg.ED25519_BATCH
    assert SignatureAlg.ML_DSA_65_BATCH.value == "ml-dsa-65-batch"


def test_batch_of_one() -> None:
    (signed,) = _batch(1)
    size, index, proof, _ = _fields(signed.signatures[0].sig)
    assert (size, index, proof) == (1, 0, [])
    assert _ok(signed)


def test_batch_keeps_order_types_and_payloads() -> None:
    items = [(PayloadType.RECEIPT, _receipt(0)), (PayloadType.HEADER, _receipt(1)), (PayloadType.RECALL, _receipt(2))]
    batch = sign_many(items, [KZ])
    for (ptype, model), signed in zip(items, batch, strict=True):
        assert signed.payload_type == ptype.value
        assert signed.payload == model.to_bytes()
        assert signed.digest == sign(ptype, model, [KZ]).digest  # batch signing does not change the digest
        verify(signed, ptype, [KZ.public()])


def test_several_signers_each_sign_the_root_once() -> None:
    tr = signing_key("TR")
    batch = sign_many([(PayloadType.RECEIPT, _receipt(i)) for i in range(3)], [KZ, tr])
    for signed in batch:
        assert [s.keyid for s in signed.signatures] == [KZ.keyid, tr.keyid]
        verify(signed, PayloadType.RECEIPT, [KZ.public(), tr.public()])


def test_empty_batch() -> None:
    assert sign_many([], [KZ]) == []
    assert seal_many([], sender="KZ", sender_key=KZ, suite=Suite.X25519_AES256GCM, now=NOW) == []
    assert attest_many([], originator_key=KZ, now=NOW) == []


def test_sign_many_needs_a_signer() -> None:
    with pytest.raises(LocalProtocolError, match="signer"):
        sign_many([(PayloadType.RECEIPT, _receipt(0))], [])
    with pytest.raises(LocalProtocolError, match="signer"):
        sign_many([], [])


# --- hybrid identities ----------------------------------------------------------------------


def test_hybrid_signer_needs_both_batch_signatures() -> None:
    batch = _batch(3, HYBRID)
    pq_keyid = keyid_of(HYBRID.public().ml_dsa_65 or b"")
    for signed in batch:
        assert [(s.keyid, s.alg) for s in signed.signatures] == [
            (HYBRID.keyid, "ed25519-batch"),
            (pq_keyid, "ml-dsa-65-batch"),
        ]
        assert _ok(signed, HYBRID)
        assert not _ok(signed.model_copy(update={"signatures": signed.signatures[:1]}), HYBRID)
        assert not _ok(signed.model_copy(update={"signatures": signed.signatures[1:]}), HYBRID)


def test_hybrid_signer_may_mix_direct_and_batch() -> None:
    (batched,) = _batch(1, HYBRID)
    direct = sign(PayloadType.RECEIPT, _receipt(0), [HYBRID])
    assert _ok(batched.model_copy(update={"signatures": (direct.signatures[0], batched.signatures[1])}), HYBRID)
    assert _ok(batched.model_copy(update={"signatures": (batched.signatures[0], direct.signatures[1])}), HYBRID)


def test_hybrid_forged_pq_batch_signature_fails() -> None:
    (signed,) = _batch(1, HYBRID)
    forged = with_signature(signed, 1, flip(signed.signatures[1].sig, -1))
    assert not _ok(forged, HYBRID)


def test_hybrid_roots_are_cached_per_algorithm() -> None:
    roots = VerifiedRoots()
    for signed in _batch(3, HYBRID):
        assert _ok(signed, HYBRID, roots)
    assert len(roots) == 2


# --- attacks on a batch signature ---------------------------------------------------------


def test_signature_moved_to_another_statement_of_the_batch() -> None:
    batch = _batch()
    moved = batch[0].model_copy(update={"signatures": batch[1].signatures})
    assert not _ok(moved)
    assert not _ok(moved, roots=VerifiedRoots())


def test_payload_changed_after_batch_signing() -> None:
    signed = _batch()[2]
    assert not _ok(with_payload(signed, _receipt(9).to_bytes()))


def test_proof_truncated() -> None:
    signed = _batch()[0]
    _, _, proof, _ = _fields(signed.signatures[0].sig)
    assert not _ok(_resig(signed, proof=proof[:-1]))


def test_proof_extended() -> None:
    signed = _batch()[0]
    _, _, proof, _ = _fields(signed.signatures[0].sig)
    assert not _ok(_resig(signed, proof=[*proof, proof[0]]))


@pytest.mark.parametrize("at", range(9, 9 + 3 * 32, 7))
def test_proof_bit_flipped(at: int) -> None:
    signed = _batch()[0]
    assert not _ok(with_signature(signed, 0, flip(signed.signatures[0].sig, at)))


def test_proof_count_byte_altered() -> None:
    signed = _batch()[0]
    sig = signed.signatures[0].sig
    for count in (0, sig[8] - 1, sig[8] + 1, 255):
        assert not _ok(with_signature(signed, 0, sig[:8] + bytes([count]) + sig[9:]))


@pytest.mark.parametrize("size", [0, 4, 6, 8, 2**32 - 1])
def test_tree_size_altered(size: int) -> None:
    assert not _ok(_resig(_batch()[3], size=size))


@pytest.mark.parametrize("index", [0, 1, 2, 4, 5, 2**32 - 1])
def test_index_altered(index: int) -> None:
    assert not _ok(_resig(_batch()[3], index=index))


def test_size_and_index_altered_to_a_tree_with_the_same_root() -> None:
    # Leaf 4 of 5 and leaf 2 of 3 have the same path shape: the proof leads to the same root,
    # and only the size signed with the root tells them apart (SPEC §4.6).
    signed = _batch()[4]
    size, index, proof, _ = _fields(signed.signatures[0].sig)
    message = pae(signed.payload_type, signed.payload)
    root = root_from_inclusion_proof(leaf_hash(message), index, size, proof)
    assert root is not None
    assert root_from_inclusion_proof(leaf_hash(message), 2, 3, proof) == root
    assert not _ok(_resig(signed, size=3, index=2))


def test_root_signature_altered() -> None:
    signed = _batch()[1]
    assert not _ok(with_signature(signed, 0, flip(signed.signatures[0].sig, -1)))
    assert not _ok(with_signature(signed, 0, flip(signed.signatures[0].sig, -ED25519_SIG_LEN)))


def test_root_signature_missing_or_truncated(ed25519_calls: list[bytes]) -> None:
    signed = _batch()[1]
    assert not _ok(_resig(signed, root_sig=b""))
    assert ed25519_calls == []  # refused as malformed, before any signature check
    assert not _ok(_resig(signed, root_sig=_fields(signed.signatures[0].sig)[3][:-1]))
    assert not _ok(with_signature(signed, 0, signed.signatures[0].sig[:8]))
    assert not _ok(with_signature(signed, 0, b""))


def test_type_confusion_header_batch_signature_on_receipt() -> None:
    # The leaf is the hash of PAE(type, payload): the same payload under another type is
    # another leaf, so a HEADER batch signature does not vouch for a RECEIPT.
    (header,) = sign_many([(PayloadType.HEADER, _receipt(0))], [KZ])
    verify(header, PayloadType.HEADER, [KZ.public()])
    as_receipt = header.model_copy(update={"payload_type": PayloadType.RECEIPT.value})
    assert not _ok(as_receipt)


def test_root_signature_lifted_into_a_direct_signature() -> None:
    signed = _batch()[0]
    root_sig = _fields(signed.signatures[0].sig)[3]
    lifted = signed.model_copy(update={"signatures": (Signature(keyid=KZ.keyid, alg="ed25519", sig=root_sig),)})
    assert not _ok(lifted)


def test_direct_signature_wrapped_as_a_batch_of_one() -> None:
    # A direct signature signs PAE(statement type, payload), never a batch root message.
    direct = sign(PayloadType.RECEIPT, _receipt(0), [KZ])
    wrapped = encode_batch_signature(1, 0, [], direct.signatures[0].sig)
    forged = direct.model_copy(update={"signatures": (Signature(keyid=KZ.keyid, alg="ed25519-batch", sig=wrapped),)})
    assert not _ok(forged)


def test_invalid_direct_signature_is_not_rescued_by_a_valid_batch_one() -> None:
    (batched,) = _batch(1)
    direct = sign(PayloadType.RECEIPT, _receipt(0), [KZ]).signatures[0]
    bad_direct = direct.model_copy(update={"sig": flip(direct.sig, 0)})
    assert _ok(batched)
    assert not _ok(batched.model_copy(update={"signatures": (bad_direct, *batched.signatures)}))
    assert not _ok(batched.model_copy(update={"signatures": (*batched.signatures, bad_direct)}))


def test_valid_direct_signature_is_used_before_a_batch_one() -> None:
    (batched,) = _batch(1)
    direct = sign(PayloadType.RECEIPT, _receipt(0), [KZ]).signatures[0]
    garbage = batched.signatures[0].model_copy(update={"sig": b"\x00" * 9})
    assert _ok(batched.model_copy(update={"signatures": (garbage, direct)}))


def test_wrong_key() -> None:
    signed = _batch()[0]
    assert not _ok(signed, signing_key("AZ"))
    # Relabelled with AZ's key id, KZ's root signature still does not verify under AZ's key.
    relabelled = signed.model_copy(
        update={"signatures": (signed.signatures[0].model_copy(update={"keyid": signing_key("AZ").keyid}),)}
    )
    assert not _ok(relabelled, signing_key("AZ"))


def test_batch_signed_by_another_member_over_the_same_statements() -> None:
    az_batch = _batch(5, signing_key("AZ"))
    assert not _ok(az_batch[0])


BATCH = _batch()


@settings(deadline=None, database=None, max_examples=150)
@given(st.integers(min_value=0, max_value=4), st.integers(min_value=0), st.integers(min_value=1, max_value=255))
def test_any_byte_change_of_a_batch_signature_fails(statement: int, at: int, mask: int) -> None:
    signed = BATCH[statement]
    assert not _ok(with_signature(signed, 0, flip(signed.signatures[0].sig, at, mask)))


# --- the verified-roots cache ---------------------------------------------------------------


def test_verified_root_is_not_verified_again(ed25519_calls: list[bytes]) -> None:
    batch = _batch(5)
    roots = VerifiedRoots()
    for signed in batch:
        assert _ok(signed, roots=roots)
    assert len(ed25519_calls) == 1
    assert ed25519_calls[0].startswith(f"DSSEv1 41 {BATCH_ROOT_TYPE} 36 ".encode())  # the root message
    assert len(roots) == 1
    ed25519_calls.clear()
    for signed in batch:
        assert _ok(signed)
    assert len(ed25519_calls) == 5  # without a cache every statement checks the root signature


def test_failure_is_not_cached(ed25519_calls: list[bytes]) -> None:
    signed = _batch()[0]
    forged = with_signature(signed, 0, flip(signed.signatures[0].sig, -1))
    roots = VerifiedRoots()
    assert not _ok(forged, roots=roots)
    assert not _ok(forged, roots=roots)
    assert len(ed25519_calls) == 2
    assert len(roots) == 0
    assert _ok(signed, roots=roots)
    assert len(roots) == 1


def test_cached_root_does_not_vouch_for_another_root_signature(ed25519_calls: list[bytes]) -> None:
    signed = _batch()[0]
    roots = VerifiedRoots()
    assert _ok(signed, roots=roots)
    forged = with_signature(signed, 0, flip(signed.signatures[0].sig, -1))
    assert not _ok(forged, roots=roots)
    assert len(ed25519_calls) == 2


def test_cached_root_does_not_vouch_for_another_key(ed25519_calls: list[bytes]) -> None:
    signed = _batch()[0]
    roots = VerifiedRoots()
    assert _ok(signed, roots=roots)
    az = signing_key("AZ")
    relabelled = signed.model_copy(
        update={"signatures": (signed.signatures[0].model_copy(update={"keyid": az.keyid}),)}
    )
    assert not _ok(relabelled, az, roots)
    assert len(ed25519_calls) == 2


def test_cached_root_does_not_vouch_for_a_statement_outside_the_tree() -> None:
    signed = _batch()[0]
    roots = VerifiedRoots()
    assert _ok(signed, roots=roots)
    assert not _ok(with_payload(signed, _receipt(9).to_bytes()), roots=roots)
    assert not _ok(_resig(signed, size=6), roots=roots)


def test_cache_bound_is_respected() -> None:
    roots = VerifiedRoots(max_entries=2)
    batches = [sign_many([(PayloadType.RECEIPT, _receipt(n))], [KZ]) for n in range(5)]
    for number, (signed,) in enumerate(batches, start=1):
        assert _ok(signed, roots=roots)
        assert len(roots) == (number - 1) % 2 + 1  # forgets everything when full
    assert _ok(batches[0][0], roots=roots)  # a forgotten root just verifies again


def test_cache_needs_a_positive_bound() -> None:
    with pytest.raises(ValueError, match="positive"):
        VerifiedRoots(max_entries=0)


# --- batch-attested, batch-sealed envelopes ------------------------------------------------


def _ingress_with_roots(env: Envelope, receiver: str, roots: VerifiedRoots, ros: Roster | None = None) -> IngressResult:
    return check_ingress(
        env,
        receiver=receiver,
        receiver_keys=hpke_keys(receiver),
        peer_tls_identity=tls(header_of(env).sender),
        peer_fingerprint=None,
        ctx=Ctx().policy(ros=ros),
        window=WINDOW,
        is_replay=never_replayed,
        roots=roots,
    )


def _batch_envelopes() -> list[Envelope]:
    both = label(releasable_to=("AZ", "TR"), retain_until=NOW + timedelta(days=90))
    attested = attest_many(
        [
            ToAttest("item-1", label(), report()),
            ToAttest("item-2", label(), raw()),
            ToAttest("item-3", both, report()),
        ],
        originator_key=KZ,
        now=NOW,
    )
    ag = {"TR": ("KZ-TR", 1), "AZ": ("AZ-KZ", 1)}
    sends = [(0, "TR"), (1, "TR"), (2, "TR"), (2, "AZ")]
    requests = [SealRequest(attested[i][1], attested[i][0], member(to), ag[to][0], ag[to][1]) for i, to in sends]
    return seal_many(requests, sender="KZ", sender_key=KZ, suite=Suite.X25519_AES256GCM, now=NOW)


def test_attest_many_and_seal_many_are_batch_signed() -> None:
    envs = _batch_envelopes()
    assert {s.alg for env in envs for s in (*env.header.signatures, *env.origin.signatures)} == {"ed25519-batch"}
    assert [_fields(env.header.signatures[0].sig)[:2] for env in envs] == [(4, 0), (4, 1), (4, 2), (4, 3)]
    assert [_fields(env.origin.signatures[0].sig)[:2] for env in envs] == [(3, 0), (3, 1), (3, 2), (3, 2)]
    assert len({header_of(env).envelope_id for env in envs}) == 4


def test_attested_carries_its_parsed_attestation_and_seal_uses_it() -> None:
    (attested,) = attest_many([ToAttest("item-1", label(), report())], originator_key=KZ, now=NOW)
    assert attested.attestation == OriginAttestation.from_bytes(attested.origin.payload)
    given = SealRequest(attested.plaintext, attested.origin, member("TR"), "KZ-TR", 1, (), attested.attestation)
    parsed_here = replace(given, attestation=None)
    for request in (given, parsed_here):
        (env,) = seal_many([request], sender="KZ", sender_key=KZ, suite=Suite.X25519_AES256GCM, now=NOW)
        result = ingress(env, "TR")
        assert result.decision.allowed, result.decision
        # The receiver gets the exact attested bytes back, not a re-serialisation.
        assert result.plaintext == attested.plaintext
    # The plaintext is still checked against the attestation it comes with.
    with pytest.raises(LocalProtocolError, match="does not match"):
        seal_many(
            [replace(given, plaintext=attested.plaintext + b" ")],
            sender="KZ",
            sender_key=KZ,
            suite=Suite.X25519_AES256GCM,
            now=NOW,
        )


@pytest.mark.parametrize("with_roots", [False, True])
def test_batch_sealed_envelopes_open(with_roots: bool) -> None:
    roots = VerifiedRoots() if with_roots else None
    for env in _batch_envelopes():
        receiver = header_of(env).recipient
        opened = open_envelope(
            env, recipient_id=receiver, recipient_keys=hpke_keys(receiver), roster=roster(), roots=roots
        )
        assert opened.header.sender == "KZ"
    if roots is not None:
        assert len(roots) == 2  # one header root, one origin root


def test_batch_sealed_envelopes_pass_ingress() -> None:
    roots = VerifiedRoots()
    for env in _batch_envelopes():
        receiver = header_of(env).recipient
        result = ingress(env, receiver)
        assert result.decision.allowed, result.decision
        assert result.decision.reason is Reason.ALLOWED
        assert _ingress_with_roots(env, receiver, roots).decision.allowed
    assert len(roots) == 2


def test_batch_sealed_header_tampered() -> None:
    env = _batch_envelopes()[0]
    tampered = header_of(env).model_copy(update={"agreement_version": 2}).to_bytes()
    bad = replace(env, header=with_payload(env.header, tampered))
    assert ingress(bad, "TR").decision.reason is Reason.SENDER_SIGNATURE_INVALID
    assert _ingress_with_roots(bad, "TR", VerifiedRoots()).decision.reason is Reason.SENDER_SIGNATURE_INVALID


def test_batch_sealed_header_with_a_sibling_signature() -> None:
    envs = _batch_envelopes()
    bad = replace(envs[0], header=envs[0].header.model_copy(update={"signatures": envs[1].header.signatures}))
    assert ingress(bad, "TR").decision.reason is Reason.SENDER_SIGNATURE_INVALID


def test_batch_attested_origin_tampered() -> None:
    env = _batch_envelopes()[0]
    bad = replace(env, origin=with_signature(env.origin, 0, flip(env.origin.signatures[0].sig, -1)))
    assert ingress(bad, "TR").decision.reason is Reason.ORIGIN_SIGNATURE_INVALID


def test_revoked_key_is_refused_even_with_a_remembered_root() -> None:
    env = _batch_envelopes()[0]
    roots = VerifiedRoots()
    assert _ingress_with_roots(env, "TR", roots).decision.allowed
    revoked = roster(version=2, revoked=(KZ.keyid,))
    assert _ingress_with_roots(env, "TR", roots, revoked).decision.reason is Reason.KEY_REVOKED
    with pytest.raises(OpenError):
        open_envelope(env, recipient_id="TR", recipient_keys=hpke_keys("TR"), roster=revoked, roots=roots)
