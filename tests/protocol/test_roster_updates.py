"""Roster administration in the core: k-of-n secretariat signatures, a secretariat that
changes its own keys, and signing keys that rotate with an overlap (SPEC §5.3, §5.4.3).
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from support import (
    NOW,
    SECRETARIAT,
    WINDOW,
    Ctx,
    agreement,
    grant,
    hpke_keys,
    ingress,
    make_envelope,
    make_origin,
    never_replayed,
    roster,
    signed_agreement,
    signing_key,
    tls,
)

from protocol.agreement import AgreementBook
from protocol.checkpoint import sign_checkpoint, verify_checkpoint, verify_own_checkpoint
from protocol.envelope import BatchKeys, OriginAttestation
from protocol.errors import MalformedError, RollbackError, SignatureError
from protocol.keys import HpkeKeyPair, SigningKey
from protocol.policy import Reason, Transfer, check_egress, check_ingress
from protocol.roster import RetiredKey, Roster, SecretariatKeys, accept_roster
from protocol.statements import PayloadType, Signed, sign, sign_many, verify_any

CHAIR, DEPUTY, REGISTRAR = (SigningKey.from_seeds(bytes([n]) * 32, None) for n in (11, 12, 13))
TWO_OF_THREE = SecretariatKeys(threshold=2, keys=(CHAIR.public(), DEPUTY.public(), REGISTRAR.public()))


def _declaring(version: int, secretariat: SecretariatKeys | None = TWO_OF_THREE, **changes: object) -> Roster:
    return roster(version=version).model_copy(update={"secretariat": secretariat, **changes})


def _signed(ros: Roster, *signers: SigningKey) -> Signed:
    return sign(PayloadType.ROSTER, Roster.model_validate_json(ros.model_dump_json()), list(signers))


def test_two_of_three_accepts_any_two_and_refuses_one() -> None:
    # SPEC §5.3 step 1: distinct valid signatures of `threshold` keys of the set.
    first = _declaring(1)
    for pair in ((CHAIR, DEPUTY), (DEPUTY, REGISTRAR), (CHAIR, REGISTRAR)):
        assert accept_roster(_signed(first, *pair), secretariat=TWO_OF_THREE, current=None) == first
    with pytest.raises(SignatureError, match="1 of the 3 trusted secretariat keys; 2 needed"):
        accept_roster(_signed(first, CHAIR), secretariat=TWO_OF_THREE, current=None)


def test_a_signature_by_a_stranger_does_not_count() -> None:
    # SPEC §5.3: only keys of the set count; others are ignored, they do not refuse either.
    outsider = SigningKey.from_seeds(b"\x21" * 32, None)
    with pytest.raises(SignatureError, match="1 of the 3"):
        accept_roster(_signed(_declaring(1), CHAIR, outsider), secretariat=TWO_OF_THREE, current=None)
    assert accept_roster(_signed(_declaring(1), CHAIR, outsider, DEPUTY), secretariat=TWO_OF_THREE, current=None)


def test_a_signature_that_fails_does_not_count() -> None:
    signed = _signed(_declaring(1), CHAIR, DEPUTY)
    broken = signed.signatures[1].model_copy(update={"sig": bytes(64)})
    with pytest.raises(SignatureError, match="1 of the 3"):
        accept_roster(
            signed.model_copy(update={"signatures": (signed.signatures[0], broken)}),
            secretariat=TWO_OF_THREE,
            current=None,
        )


def test_batch_signatures_count_like_direct_ones() -> None:
    ros = Roster.model_validate_json(_declaring(1).model_dump_json())
    (signed,) = sign_many([(PayloadType.ROSTER, ros)], [CHAIR, DEPUTY])
    assert accept_roster(signed, secretariat=TWO_OF_THREE, current=None) == ros


def test_another_payload_type_is_refused() -> None:
    ros = _declaring(1)
    retyped = Signed(
        payload_type=PayloadType.AGREEMENT.value,
        payload=ros.to_bytes(),
        signatures=_signed(ros, CHAIR, DEPUTY).signatures,
    )
    with pytest.raises(SignatureError, match="expected a ROSTER statement"):
        accept_roster(retyped, secretariat=TWO_OF_THREE, current=None)


def test_the_held_rosters_set_signs_the_next_not_the_anchor() -> None:
    # SPEC §5.3: once a held roster declares its set, the configured anchor is not consulted.
    held = _declaring(1)
    anchor_only = SecretariatKeys(threshold=1, keys=(SECRETARIAT.public(),))
    with pytest.raises(SignatureError, match="0 of the 3"):
        accept_roster(signed_roster_by(_declaring(2), SECRETARIAT), secretariat=anchor_only, current=held)
    newer = _declaring(2)
    assert accept_roster(_signed(newer, CHAIR, REGISTRAR), secretariat=anchor_only, current=held) == newer


def signed_roster_by(ros: Roster, *signers: SigningKey) -> Signed:
    return _signed(ros, *signers)


def test_a_roster_without_a_set_is_checked_against_the_anchor() -> None:
    anchor = SecretariatKeys(threshold=1, keys=(SECRETARIAT.public(),))
    assert accept_roster(_signed(roster(2), SECRETARIAT), secretariat=anchor, current=roster(1)) == roster(2)


def test_rotating_the_secretariat_needs_k_of_the_old_set_and_k_of_the_new() -> None:
    # SPEC §5.3: a new set takes over only if the set in force signed for it, and the new
    # set shows it holds its keys.
    held = _declaring(1)
    new_key = SigningKey.from_seeds(b"\x31" * 32, None)
    rotated_set = SecretariatKeys(threshold=2, keys=(CHAIR.public(), DEPUTY.public(), new_key.public()))
    rotated = _declaring(2, rotated_set)
    assert accept_roster(_signed(rotated, CHAIR, REGISTRAR, new_key), secretariat=TWO_OF_THREE, current=held)
    with pytest.raises(SignatureError, match="1 of the 3 new secretariat keys"):
        accept_roster(_signed(rotated, REGISTRAR, DEPUTY), secretariat=TWO_OF_THREE, current=held)
    with pytest.raises(SignatureError, match="trusted"):
        # The new keys alone cannot take over: that is what a stolen key would try.
        accept_roster(_signed(rotated, new_key, CHAIR), secretariat=TWO_OF_THREE, current=held)


def test_version_and_federation_are_checked_after_the_signatures() -> None:
    held = _declaring(2)
    with pytest.raises(RollbackError, match="not newer"):
        accept_roster(_signed(_declaring(2), CHAIR, DEPUTY), secretariat=TWO_OF_THREE, current=held)
    other = _declaring(3, federation="OTHER")
    with pytest.raises(RollbackError, match="federation"):
        accept_roster(_signed(other, CHAIR, DEPUTY), secretariat=TWO_OF_THREE, current=held)


def test_secretariat_set_is_consistent() -> None:
    with pytest.raises(ValueError, match="threshold 3 is more than the 2"):
        SecretariatKeys(threshold=3, keys=(CHAIR.public(), DEPUTY.public()))
    with pytest.raises(ValueError, match="duplicate secretariat key"):
        SecretariatKeys(threshold=1, keys=(CHAIR.public(), CHAIR.public()))


def test_optional_fields_are_omitted_when_empty() -> None:
    # SPEC §5.1: a roster without retired keys or a declared set keeps the bytes it had.
    plain = roster()
    assert b"retired_keys" not in plain.to_bytes()
    assert b"secretariat" not in plain.to_bytes()
    doc = json.loads(plain.to_bytes())
    doc["retired_keys"] = []
    with pytest.raises(MalformedError, match="canonical"):
        Roster.from_bytes(json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode())
    declared = _declaring(1)
    assert Roster.from_bytes(declared.to_bytes()) == declared


# --- signing key rotation (SPEC §5.4.3) --------------------------------------------------


def _rotated(member_id: str, new: SigningKey, *, revoked: tuple[str, ...] = ()) -> Roster:
    ros = roster(2, revoked=revoked)
    old = signing_key(member_id).public()
    members = tuple(
        m.model_copy(update={"signing_key": new.public()}) if m.member_id == member_id else m for m in ros.members
    )
    retired = (RetiredKey(member_id=member_id, signing_key=old, until=NOW + timedelta(days=14)),)
    return Roster.model_validate(ros.model_dump() | {"members": members, "retired_keys": retired})


NEW_KZ = SigningKey.from_seeds(b"\x41" * 32, None)


def test_a_retired_key_verifies_during_its_overlap() -> None:
    # SPEC §5.4.3: statements signed before the rotation still verify while the key is listed.
    ros = _rotated("KZ", NEW_KZ)
    assert Roster.from_bytes(ros.to_bytes()) == ros
    assert ros.verification_keys("KZ") == (NEW_KZ.public(), signing_key("KZ").public())
    old_statement = sign(PayloadType.RECALL, roster(), [signing_key("KZ")])
    new_statement = sign(PayloadType.RECALL, roster(), [NEW_KZ])
    assert ros.verify_member(old_statement, PayloadType.RECALL, "KZ") == signing_key("KZ").public()
    assert ros.verify_member(new_statement, PayloadType.RECALL, "KZ") == NEW_KZ.public()
    # Once the key is no longer listed, what it signed no longer verifies.
    dropped = Roster.model_validate(ros.model_dump() | {"version": 3, "retired_keys": ()})
    with pytest.raises(SignatureError):
        dropped.verify_member(old_statement, PayloadType.RECALL, "KZ")


def test_a_revoked_retired_key_verifies_nothing() -> None:
    old = signing_key("KZ")
    ros = _rotated("KZ", NEW_KZ, revoked=(old.keyid,))
    assert ros.verification_keys("KZ") == (NEW_KZ.public(),)
    statement = sign(PayloadType.RECALL, roster(), [old])
    assert ros.signed_with_revoked_key(statement)
    with pytest.raises(SignatureError):
        ros.verify_member(statement, PayloadType.RECALL, "KZ")


def test_unknown_member_has_no_keys() -> None:
    assert roster().verification_keys("HU") == ()
    with pytest.raises(SignatureError, match="no usable signing key"):
        roster().verify_member(sign(PayloadType.RECALL, roster(), [SECRETARIAT]), PayloadType.RECALL, "HU")


def test_retired_keys_are_unique_and_belong_to_members() -> None:
    ros = _rotated("KZ", NEW_KZ)
    clash = RetiredKey(member_id="TR", signing_key=signing_key("TR").public(), until=NOW)
    with pytest.raises(ValueError, match="duplicate signing key"):
        Roster.model_validate(ros.model_dump() | {"retired_keys": (*ros.retired_keys, clash)})
    stranger = RetiredKey(member_id="HU", signing_key=SECRETARIAT.public(), until=NOW)
    with pytest.raises(ValueError, match="not in the roster: HU"):
        Roster.model_validate(ros.model_dump() | {"retired_keys": (stranger,)})


def test_verify_any_wants_the_payload_type_and_one_identity() -> None:
    statement = sign(PayloadType.RECALL, roster(), [NEW_KZ])
    with pytest.raises(SignatureError, match="expected a HEADER"):
        verify_any(statement, PayloadType.HEADER, [NEW_KZ.public()])
    with pytest.raises(SignatureError, match="no signer"):
        verify_any(statement, PayloadType.RECALL, [])
    with pytest.raises(SignatureError, match="no valid signature"):
        verify_any(statement, PayloadType.RECALL, [SECRETARIAT.public()])


# --- what was in flight when a key rotated (SPEC §5.4.3, §5.4.4) --------------------------


def _rotated_hpke(member_id: str, new: HpkeKeyPair) -> Roster:
    ros = roster(2)
    members = tuple(
        m.model_copy(update={"hpke_keys": new.public()}) if m.member_id == member_id else m for m in ros.members
    )
    return Roster.model_validate(ros.model_dump() | {"members": members})


def test_an_envelope_signed_before_the_rotation_is_accepted_after_it() -> None:
    # SPEC §5.4.3: header and origin signed with KZ's key before the roster rotated it.
    origin, pt = make_origin()
    env = make_envelope("KZ", "TR", origin, pt)
    result = ingress(env, "TR", ctx=Ctx().policy(ros=_rotated("KZ", NEW_KZ)))
    assert result.decision.allowed, result.decision


def test_an_envelope_under_a_retired_key_that_was_then_revoked_is_refused() -> None:
    # SPEC §9.2.4: a header under a revoked key is KEY_REVOKED, whichever key is current.
    origin, pt = make_origin()
    env = make_envelope("KZ", "TR", origin, pt)
    ros = _rotated("KZ", NEW_KZ, revoked=(signing_key("KZ").keyid,))
    assert ingress(env, "TR", ctx=Ctx().policy(ros=ros)).decision.reason is Reason.KEY_REVOKED


def test_an_origin_under_a_revoked_retired_key_is_refused_on_a_relayed_item() -> None:
    # SPEC §9.2.9 step 5: TR relays KZ's item attested with KZ's key that was then revoked.
    origin, pt = make_origin()
    g = grant(origin, grantor="KZ", holder="TR", grantee="AZ")
    env = make_envelope("TR", "AZ", origin, pt, consents=(g,))
    ros = _rotated("KZ", NEW_KZ, revoked=(signing_key("KZ").keyid,))
    assert ingress(env, "AZ", ctx=Ctx().policy(ros=ros)).decision.reason is Reason.KEY_REVOKED


def test_a_grant_under_a_retired_key_counts_and_under_a_revoked_one_does_not() -> None:
    # SPEC §9.4.2 step 5, §5.4.3
    origin, _ = make_origin()
    g = grant(origin, grantor="KZ", holder="TR", grantee="AZ")
    att = OriginAttestation.from_bytes(origin.payload)
    transfer = Transfer("TR", "AZ", att, origin.digest, (g,))
    assert check_egress(transfer, Ctx().policy(ros=_rotated("KZ", NEW_KZ))).allowed
    revoked = _rotated("KZ", NEW_KZ, revoked=(signing_key("KZ").keyid,))
    assert check_egress(transfer, Ctx().policy(ros=revoked)).reason is Reason.CONSENT_INVALID


def test_an_envelope_sealed_to_the_previous_hpke_key_opens_with_it() -> None:
    # SPEC §5.4.4: the recipient keeps its previous HPKE key to open what was sealed before.
    origin, pt = make_origin()
    env = make_envelope("KZ", "TR", origin, pt)  # sealed to TR's key as it was
    new = HpkeKeyPair.from_seeds(b"\x51" * 32, b"\x52" * 32)
    ctx = Ctx().policy(ros=_rotated_hpke("TR", new))
    common = {"receiver": "TR", "peer_tls_identity": tls("KZ"), "peer_fingerprint": None, "ctx": ctx}
    without = check_ingress(env, receiver_keys=new, window=WINDOW, is_replay=never_replayed, **common)
    assert without.decision.reason is Reason.ENVELOPE_UNOPENABLE
    cache = BatchKeys(new)
    with_previous = check_ingress(
        env,
        receiver_keys=new,
        window=WINDOW,
        is_replay=never_replayed,
        previous_keys=(hpke_keys("TR"),),
        batch_keys=cache,
        **common,
    )
    assert with_previous.decision.allowed
    assert with_previous.plaintext == pt


def test_an_agreement_under_a_retired_key_is_held_and_under_a_revoked_one_refused() -> None:
    # SPEC §6.2 rule 2, §5.4.3
    statement = signed_agreement(agreement("KZ", "TR"))
    assert AgreementBook().accept(statement, _rotated("KZ", NEW_KZ)).agreement_id == "KZ-TR"
    revoked = _rotated("KZ", NEW_KZ, revoked=(signing_key("KZ").keyid,))
    with pytest.raises(SignatureError, match="revoked key of KZ"):
        AgreementBook().accept(statement, revoked)


def test_a_checkpoint_under_a_retired_key_verifies() -> None:
    # SPEC §11.10.3 with §5.4.3: a log's checkpoint signed just before the rotation.
    note = sign_checkpoint(signing_key("KZ"), federation="OTS", member_id="KZ", size=1, root=bytes(32), now=NOW)
    assert verify_checkpoint(note, roster=_rotated("KZ", NEW_KZ), member_id="KZ").checkpoint.size == 1
    revoked = _rotated("KZ", NEW_KZ, revoked=(signing_key("KZ").keyid,))
    with pytest.raises(SignatureError):
        verify_checkpoint(note, roster=revoked, member_id="KZ")


def test_a_log_owner_checks_its_own_checkpoint_with_any_key_it_held() -> None:
    # SPEC §11.10.6 with §5.4.3: the owner's check does not consult the roster's revocations.
    note = sign_checkpoint(signing_key("KZ"), federation="OTS", member_id="KZ", size=3, root=bytes(32), now=NOW)
    keys = [NEW_KZ.public(), signing_key("KZ").public()]
    assert verify_own_checkpoint(note, federation="OTS", member_id="KZ", keys=keys).checkpoint.size == 3
    with pytest.raises(SignatureError, match="no signature by a key KZ held"):
        verify_own_checkpoint(note, federation="OTS", member_id="KZ", keys=[NEW_KZ.public()])
    with pytest.raises(SignatureError, match="not of TR's log"):
        verify_own_checkpoint(note, federation="OTS", member_id="TR", keys=keys)
