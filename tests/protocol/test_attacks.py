"""Attacks on the protocol core, one short named test each.

The attacker is a member of the test federation (or someone on the wire) who controls its
own keys and everything it sends; ``support`` gives it the tools (re-signing, byte
flips, forged statements). Every attack must be refused with a typed error or a reason code.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from support import (
    NOW,
    SECRETARIAT,
    Ctx,
    ReplayStore,
    agreement,
    book,
    correction,
    grant,
    header_of,
    hpke_keys,
    ingress,
    label,
    make_envelope,
    make_origin,
    raw,
    recall,
    report,
    resign_header,
    roster,
    signed_agreement,
    signed_roster,
    signing_key,
    tls,
    with_payload,
)

from protocol.agreement import AgreementBook
from protocol.classification import Band
from protocol.envelope import OriginAttestation, attest
from protocol.errors import NoticeMismatchError, OpenError, RollbackError, SignatureError
from protocol.notices import Correction, Recall, verify_correction, verify_recall
from protocol.policy import IngressResult, Reason, Transfer, check_egress, open_envelope
from protocol.roster import Roster, SecretariatKeys, accept_roster
from protocol.statements import PayloadType, Signed, sign

ANCHOR = SecretariatKeys(threshold=1, keys=(SECRETARIAT.public(),))


def _reason(result: IngressResult) -> Reason:
    assert not result.decision.allowed
    assert result.item is None
    return result.decision.reason


# --- forged sender ---------------------------------------------------------------------------


def test_forged_sender_over_own_tls_connection() -> None:
    origin, pt = make_origin()
    env = resign_header(make_envelope("KZ", "TR", origin, pt), "AZ")  # AZ poses as KZ
    assert _reason(ingress(env, "TR", peer=tls("AZ"))) is Reason.SENDER_IDENTITY_MISMATCH


def test_forged_sender_with_stolen_tls_identity() -> None:
    origin, pt = make_origin()
    env = resign_header(make_envelope("KZ", "TR", origin, pt), "AZ")
    assert _reason(ingress(env, "TR", peer=tls("KZ"))) is Reason.SENDER_SIGNATURE_INVALID


def test_forged_sender_with_wrong_certificate_fingerprint() -> None:
    # SPEC §9.2.3: the fingerprint MUST equal the roster's.
    ros = roster()
    pinned = ros.model_copy(
        update={"members": tuple(m.model_copy(update={"tls_fingerprint": "a" * 64}) for m in ros.members)}
    )
    origin, pt = make_origin()
    env = make_envelope("KZ", "TR", origin, pt)
    ctx = Ctx().policy(ros=pinned)
    assert _reason(ingress(env, "TR", ctx=ctx, peer_fingerprint="b" * 64)) is Reason.SENDER_IDENTITY_MISMATCH
    assert ingress(env, "TR", ctx=ctx, peer_fingerprint="a" * 64).decision.allowed


def test_forged_originator_attestation() -> None:
    # TR makes up an item and attests it in KZ's name with its own key.
    # SPEC §9.2.9 step 6: the origin MUST verify with the originator's identity.
    lab = label("KZ", releasable_to=("AZ",))
    forged, pt = attest(item_id="item-9", label=lab, item=report(), originator_key=signing_key("TR"), now=NOW)
    env = make_envelope("TR", "AZ", forged, pt)
    assert _reason(ingress(env, "AZ")) is Reason.ORIGIN_SIGNATURE_INVALID


# --- label tampering and downgrade -----------------------------------------------------------


def _tampered_origin(**label_changes: object) -> tuple[Signed, bytes]:
    origin, pt = make_origin()
    att = OriginAttestation.from_bytes(origin.payload)
    lab = att.label.model_copy(update=label_changes)
    tampered = with_payload(origin, att.model_copy(update={"label": lab}).to_bytes())  # old signature kept
    return tampered, pt


def test_label_downgrade_keeping_signature() -> None:
    tampered, pt = _tampered_origin(band=Band.RESTRICTED, originator_marking="ДЛЯ СЛУЖЕБНОГО ПОЛЬЗОВАНИЯ")
    env = make_envelope("KZ", "TR", tampered, pt)
    assert _reason(ingress(env, "TR")) is Reason.ORIGIN_SIGNATURE_INVALID


def test_label_release_list_widened_by_holder() -> None:
    tampered, pt = _tampered_origin(releasable_to=("AZ", "TR"), originator_controlled=False)
    env = make_envelope("TR", "AZ", tampered, pt)
    assert _reason(ingress(env, "AZ")) is Reason.ORIGIN_SIGNATURE_INVALID


def test_label_marking_mismatch_signed_by_originator() -> None:
    # Even the originator cannot put a SECRET marking on a RESTRICTED label.
    origin, pt = make_origin(label("KZ", band=Band.RESTRICTED, originator_marking="СЕКРЕТНО"))
    assert _reason(ingress(make_envelope("KZ", "TR", origin, pt), "TR")) is Reason.LABEL_INVALID


def test_label_with_topic_outside_vocabulary() -> None:
    # SPEC §9.2.10 step 4: label topics MUST be in the vocabulary.
    origin, pt = make_origin(label("KZ", topics=("terrorism", "weather")))
    assert _reason(ingress(make_envelope("KZ", "TR", origin, pt), "TR")) is Reason.TOPIC_NOT_COVERED


def test_attestation_label_originator_mismatch() -> None:
    # KZ attests an item whose label names TR as originator: the label is inconsistent.
    # SPEC §9.2.10 step 2: label originator and version MUST match.
    origin, pt = make_origin(label("KZ"))
    att = OriginAttestation.from_bytes(origin.payload)
    bad = att.model_copy(update={"label": att.label.model_copy(update={"originator": "TR"})})
    resigned = sign(PayloadType.ORIGIN, bad, [signing_key("KZ")])
    assert _reason(ingress(make_envelope("KZ", "TR", resigned, pt), "TR")) is Reason.LABEL_INVALID


# --- swapped label / mix-and-match envelopes -------------------------------------------------


def test_swapped_origin_attestation() -> None:
    # An on-path attacker swaps in the attestation of a less restrictive item.
    # SPEC §9.2.9 step 2: origin_digest MUST be the carried origin's.
    origin, pt = make_origin()
    other, _ = make_origin(label("KZ", band=Band.RESTRICTED), item_id="item-2")
    env = replace(make_envelope("KZ", "TR", origin, pt), origin=other)
    assert _reason(ingress(env, "TR")) is Reason.ORIGIN_SIGNATURE_INVALID


def test_swapped_label_by_sender_cannot_be_opened() -> None:
    # A dishonest sender signs a header binding another item's label to this ciphertext.
    origin, pt = make_origin(item_id="item-1")
    other, _ = make_origin(label("KZ", band=Band.RESTRICTED), item_id="item-1", item=raw())
    env = make_envelope("KZ", "TR", origin, pt)
    swapped = resign_header(replace(env, origin=other), "KZ", origin_digest=other.digest)
    assert _reason(ingress(swapped, "TR")) is Reason.ENVELOPE_UNOPENABLE


def test_header_and_origin_name_different_items() -> None:
    # SPEC §9.2.10 step 1: item id and version MUST match the header.
    origin, pt = make_origin(item_id="item-1")
    env = resign_header(make_envelope("KZ", "TR", origin, pt), "KZ", item_id="item-2")
    assert _reason(ingress(env, "TR")) is Reason.LABEL_INVALID


def test_consents_stripped_from_envelope() -> None:
    # SPEC §9.2.9 step 1: consent_refs MUST equal the carried consents.
    origin, pt = make_origin()
    g = grant(origin, grantor="KZ", holder="TR", grantee="AZ")
    env = replace(make_envelope("TR", "AZ", origin, pt, consents=(g,)), consents=())
    assert _reason(ingress(env, "AZ")) is Reason.SENDER_SIGNATURE_INVALID


# --- re-share without consent ----------------------------------------------------------------


def test_reshare_without_consent() -> None:
    # SPEC §9.3.10 step 3, §9.4.2: a third party needs a valid chain.
    origin, pt = make_origin()
    assert _reason(ingress(make_envelope("TR", "AZ", origin, pt), "AZ")) is Reason.THIRD_PARTY_WITHOUT_CONSENT


def test_reshare_with_self_signed_consent() -> None:
    # SPEC §9.3.10 step 4: the carried consents MUST form a valid chain.
    origin, pt = make_origin()
    g = grant(origin, grantor="TR", holder="TR", grantee="AZ")  # TR consents on KZ's behalf
    assert _reason(ingress(make_envelope("TR", "AZ", origin, pt, consents=(g,)), "AZ")) is Reason.CONSENT_INVALID


def test_reshare_with_consent_for_another_item() -> None:
    # SPEC §9.4.2 step 2: a grant MUST be for the transferred item.
    origin, pt = make_origin(item_id="item-1")
    other, _ = make_origin(item_id="item-2")
    g = grant(other, grantor="KZ", holder="TR", grantee="AZ")
    assert _reason(ingress(make_envelope("TR", "AZ", origin, pt, consents=(g,)), "AZ")) is Reason.CONSENT_INVALID


def test_reshare_extending_non_transferable_consent() -> None:
    origin, pt = make_origin()
    g1 = grant(origin, grantor="KZ", holder="TR", grantee="AZ")
    env = make_envelope("AZ", "UZ", origin, pt, consents=(g1,))
    assert _reason(ingress(env, "UZ")) is Reason.CONSENT_NOT_TRANSFERABLE


def test_reshare_by_grantee_without_its_own_grant() -> None:
    origin, pt = make_origin()
    g1 = grant(origin, grantor="KZ", holder="TR", grantee="AZ", transferable=True)
    env = make_envelope("AZ", "UZ", origin, pt, consents=(g1,))
    assert _reason(ingress(env, "UZ")) is Reason.THIRD_PARTY_WITHOUT_CONSENT


def test_reshare_chain_grant_in_originators_name() -> None:
    # SPEC §9.4.2 step 4: the grantor MUST be the originator or the previous grantee.
    origin, pt = make_origin()
    g1 = grant(origin, grantor="KZ", holder="TR", grantee="AZ", transferable=True)
    g2 = grant(origin, grantor="KZ", holder="AZ", grantee="UZ", signer="AZ", grant_id="0" * 31 + "2")
    env = make_envelope("AZ", "UZ", origin, pt, consents=(g1, g2))
    assert _reason(ingress(env, "UZ")) is Reason.CONSENT_INVALID


def test_reshare_chain_with_valid_transferable_grants_is_allowed() -> None:
    origin, pt = make_origin()
    g1 = grant(origin, grantor="KZ", holder="TR", grantee="AZ", transferable=True)
    g2 = grant(origin, grantor="AZ", holder="AZ", grantee="UZ", grant_id="0" * 31 + "2")
    assert ingress(make_envelope("AZ", "UZ", origin, pt, consents=(g1, g2)), "UZ").decision.allowed


def test_malformed_consent() -> None:
    # SPEC §9.4.2 step 1: a grant MUST parse as a CONSENT_GRANT.
    origin, pt = make_origin()
    g = with_payload(grant(origin, grantor="KZ", holder="TR", grantee="AZ"), b"[]")
    assert _reason(ingress(make_envelope("TR", "AZ", origin, pt, consents=(g,)), "AZ")) is Reason.CONSENT_INVALID


# --- replay ----------------------------------------------------------------------------------


def test_replay_of_seen_nonce_with_other_envelope() -> None:
    store = ReplayStore()
    origin, pt = make_origin()
    first = make_envelope("KZ", "TR", origin, pt)
    assert ingress(first, "TR", is_replay=store.is_replay).decision.allowed
    store.record(header_of(first), first.digest)
    # A different envelope under a nonce already seen (a buggy or coerced re-send by KZ).
    resent = resign_header(first, "KZ", envelope_id="f" * 32)
    assert header_of(resent).nonce == header_of(first).nonce
    assert _reason(ingress(resent, "TR", is_replay=store.is_replay)) is Reason.REPLAY


def test_replay_of_stale_envelope() -> None:
    origin, pt = make_origin()
    env = make_envelope("KZ", "TR", origin, pt)
    later = Ctx().policy(now=NOW + timedelta(days=8))
    assert _reason(ingress(env, "TR", ctx=later)) is Reason.TIMESTAMP_OUT_OF_WINDOW


def test_envelope_from_the_future() -> None:
    origin, pt = make_origin()
    env = make_envelope("KZ", "TR", origin, pt, now=NOW + timedelta(hours=1))
    assert _reason(ingress(env, "TR")) is Reason.TIMESTAMP_OUT_OF_WINDOW


# --- redirected envelope ---------------------------------------------------------------------


def test_redirected_envelope() -> None:
    origin, pt = make_origin(label("KZ", releasable_to=("AZ", "TR")))
    env = make_envelope("KZ", "TR", origin, pt)
    assert _reason(ingress(env, "AZ", peer=tls("KZ"))) is Reason.NOT_ADDRESSED_TO_RECEIVER
    with pytest.raises(OpenError):
        open_envelope(env, recipient_id="AZ", recipient_keys=hpke_keys("AZ"), roster=roster())


def test_redirected_envelope_readdressed_by_holder() -> None:
    # TR re-signs KZ's envelope as its own, addressed to AZ, with a valid consent: the
    # ciphertext is still sealed to TR, so AZ cannot open it.
    origin, pt = make_origin()
    g = grant(origin, grantor="KZ", holder="TR", grantee="AZ")
    env = make_envelope("KZ", "TR", origin, pt)
    readdressed = resign_header(
        replace(env, consents=(g,)),
        "TR",
        sender="TR",
        recipient="AZ",
        agreement_id="AZ-TR",
        consent_refs=(g.digest,),
    )
    assert _reason(ingress(readdressed, "AZ")) is Reason.ENVELOPE_UNOPENABLE


# --- rollback --------------------------------------------------------------------------------


def test_roster_rollback() -> None:
    current = roster(version=3)
    with pytest.raises(RollbackError):
        accept_roster(signed_roster(roster(version=2)), secretariat=ANCHOR, current=current)


def test_roster_replay_of_same_version() -> None:
    current = roster(version=3)
    with pytest.raises(RollbackError):
        accept_roster(signed_roster(roster(version=3)), secretariat=ANCHOR, current=current)


def test_roster_rollback_unrevokes_key() -> None:
    # After KZ's key was revoked in v2, an old v1 (which still trusts it) must not come back.
    current = roster(version=2, revoked=(signing_key("KZ").keyid,))
    with pytest.raises(RollbackError):
        accept_roster(signed_roster(roster(version=1)), secretariat=ANCHOR, current=current)


def test_roster_for_another_federation() -> None:
    other = roster(version=9).model_copy(update={"federation": "OTHER"})
    with pytest.raises(RollbackError):
        accept_roster(signed_roster(other), secretariat=ANCHOR, current=roster())


def test_roster_signed_by_a_member() -> None:
    with pytest.raises(SignatureError):
        accept_roster(signed_roster(roster(version=2), signing_key("TR")), secretariat=ANCHOR, current=roster())


def test_agreement_rollback() -> None:
    held = book(agreement("KZ", "TR"), agreement("KZ", "TR", version=2, max_retention_days=30))
    with pytest.raises(RollbackError):
        held.accept(signed_agreement(agreement("KZ", "TR")), roster())


def test_agreement_same_version_other_text() -> None:
    held = book(agreement("KZ", "TR"))
    with pytest.raises(RollbackError):
        held.accept(signed_agreement(agreement("KZ", "TR", max_retention_days=3000)), roster())


def test_envelope_sent_under_superseded_agreement() -> None:
    # TR tightened the agreement (v2); KZ still seals under v1, which v2 would refuse.
    # SPEC §9.2.10 step 5: the header MUST name the held agreement version.
    loose = book(agreement("KZ", "TR"))
    tight = book(agreement("KZ", "TR"), agreement("KZ", "TR", version=2, raw_data_allowed=False))
    origin, pt = make_origin(item=raw())
    env = make_envelope("KZ", "TR", origin, pt, agreements=loose)
    assert _reason(ingress(env, "TR", ctx=Ctx().policy(tight))) is Reason.AGREEMENT_NOT_IN_FORCE


def test_agreement_signed_by_outsider() -> None:
    # SPEC §6.2 rule 2b: at least one party MUST have signed.
    with pytest.raises(SignatureError):
        AgreementBook().accept(signed_agreement(agreement("KZ", "TR"), signers=("AZ",)), roster())


def test_agreement_forged_countersignature() -> None:
    # SPEC §6.2 rule 2c: every party that signed MUST verify.
    ag = agreement("KZ", "TR")
    kz_only = signed_agreement(ag, signers=("KZ",))
    tr_sig = sign(PayloadType.AGREEMENT, agreement("KZ", "TR", version=2), [signing_key("TR")]).signatures[0]
    forged = kz_only.model_copy(update={"signatures": (*kz_only.signatures, tr_sig)})
    with pytest.raises(SignatureError):
        AgreementBook().accept(forged, roster())


# --- notices: forged recall, mix-and-match correction ----------------------------------------


def _recall_at_holder(notice: Signed, origin: Signed, ros: Roster | None = None) -> Recall:
    """What a holder of ``origin`` does with a recall: verify it against the held item."""
    att = OriginAttestation.from_bytes(origin.payload)
    return verify_recall(
        notice,
        roster=ros or roster(),
        item_id=att.item_id,
        item_version=att.item_version,
        origin_digest=origin.digest,
        originator=att.originator,
    )


def _correction_at_holder(notice: Signed, origin: Signed) -> Correction:
    att = OriginAttestation.from_bytes(origin.payload)
    return verify_correction(
        notice,
        roster=roster(),
        item_id=att.item_id,
        item_version=att.item_version,
        origin_digest=origin.digest,
        originator=att.originator,
    )


def test_forged_recall_signed_in_originators_name() -> None:
    origin, _ = make_origin()
    with pytest.raises(SignatureError):
        _recall_at_holder(recall(origin, originator="KZ", signer="TR"), origin)


def test_forged_recall_by_other_holder() -> None:
    # TR holds KZ's item and signs, as itself, a recall of it.
    origin, _ = make_origin()
    with pytest.raises(SignatureError):
        _recall_at_holder(recall(origin, originator="TR"), origin)


def test_recall_for_another_item() -> None:
    origin, _ = make_origin(item_id="item-1")
    other, _ = make_origin(item_id="item-2")
    with pytest.raises(NoticeMismatchError):
        _recall_at_holder(recall(other), origin)


def test_genuine_recall_verifies() -> None:
    origin, _ = make_origin()
    assert _recall_at_holder(recall(origin), origin).originator == "KZ"


def test_mix_and_match_correction_other_item() -> None:
    v1, _ = make_origin(item_id="item-1")
    other_v1, _ = make_origin(item_id="item-2")
    other_v2, _ = make_origin(label("KZ", item_version=2, supersedes=other_v1.digest), item_id="item-2")
    with pytest.raises(NoticeMismatchError):
        _correction_at_holder(correction(other_v1, other_v2), v1)


def test_mix_and_match_correction_older_version() -> None:
    v1, _ = make_origin()
    v2, _ = make_origin(label("KZ", item_version=2, supersedes=v1.digest))
    v3, _ = make_origin(label("KZ", item_version=3, supersedes=v2.digest))
    # A correction of v1 replayed at a holder of v2.
    with pytest.raises(NoticeMismatchError):
        _correction_at_holder(correction(v1, v2), v2)
    assert _correction_at_holder(correction(v2, v3), v2).new_version == 3


def test_forged_correction() -> None:
    v1, _ = make_origin()
    v2, _ = make_origin(label("KZ", item_version=2, supersedes=v1.digest))
    with pytest.raises(SignatureError):
        _correction_at_holder(correction(v1, v2, signer="TR"), v1)
    with pytest.raises(SignatureError):
        _correction_at_holder(correction(v1, v2, originator="TR"), v1)


# --- key compromise --------------------------------------------------------------------------

REVOKED_KZ = roster(version=2, revoked=(signing_key("KZ").keyid,))


def test_revoked_sender_key() -> None:
    # SPEC §5.1, §9.2.4: a revoked key MUST NOT be trusted.
    origin, pt = make_origin()
    env = make_envelope("KZ", "TR", origin, pt)
    assert _reason(ingress(env, "TR", ctx=Ctx().policy(ros=REVOKED_KZ))) is Reason.KEY_REVOKED
    with pytest.raises(OpenError):
        open_envelope(env, recipient_id="TR", recipient_keys=hpke_keys("TR"), roster=REVOKED_KZ)


def test_revoked_originator_key_on_relayed_item() -> None:
    # SPEC §5.1, §9.2.9 step 5: nor an originator's revoked key.
    origin, pt = make_origin()
    g = grant(origin, grantor="KZ", holder="TR", grantee="AZ")
    env = make_envelope("TR", "AZ", origin, pt, consents=(g,))
    assert _reason(ingress(env, "AZ", ctx=Ctx().policy(ros=REVOKED_KZ))) is Reason.KEY_REVOKED
    with pytest.raises(OpenError):
        open_envelope(env, recipient_id="AZ", recipient_keys=hpke_keys("AZ"), roster=REVOKED_KZ)


def test_revoked_grantor_key() -> None:
    # The originator's key is fine; the intermediate grantor's (AZ) was revoked.
    # SPEC §5.1, §9.4.2 step 5: nor a grantor's revoked key.
    origin, pt = make_origin()
    g1 = grant(origin, grantor="KZ", holder="TR", grantee="AZ", transferable=True)
    g2 = grant(origin, grantor="AZ", holder="AZ", grantee="UZ", grant_id="0" * 31 + "2")
    ros = roster(version=2, revoked=(signing_key("AZ").keyid,))
    # AZ's header key is the same revoked key, so the ingress check would stop at KEY_REVOKED;
    # the sender-side check shows the chain itself is refused.
    att = OriginAttestation.from_bytes(origin.payload)
    decision = check_egress(Transfer("AZ", "UZ", att, origin.digest, (g1, g2)), Ctx().policy(ros=ros))
    assert decision.reason is Reason.CONSENT_INVALID
    assert (
        _reason(ingress(make_envelope("AZ", "UZ", origin, pt, consents=(g1, g2)), "UZ", ctx=Ctx().policy(ros=ros)))
        is Reason.KEY_REVOKED
    )


def test_recall_with_revoked_key() -> None:
    origin, _ = make_origin()
    with pytest.raises(SignatureError):
        _recall_at_holder(recall(origin), origin, REVOKED_KZ)


def test_agreement_signed_with_a_revoked_key_is_refused() -> None:
    # SPEC §6.2 rule 2a, §12.8
    compromised = signing_key("KZ").keyid
    book = AgreementBook()
    with pytest.raises(SignatureError, match="revoked"):
        book.accept(signed_agreement(agreement("KZ", "TR")), roster(revoked=(compromised,)))
    assert book.get("KZ", "TR") is None
