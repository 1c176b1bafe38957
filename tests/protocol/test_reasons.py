"""One named test per reason code (SPEC §9.5): each refuses for exactly that reason.

Every test starts from a transfer that is allowed (``test_allowed``) and changes the one
thing its rule is about. Decisions are the receiver's (``check_ingress``) unless the rule
is easier to reach from the sender's side, where ``check_egress`` makes the same check.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from support import (
    NOW,
    Ctx,
    agreement,
    book,
    default_book,
    grant,
    header_of,
    ingress,
    label,
    make_envelope,
    make_origin,
    raw,
    resign_header,
    roster,
    signed_agreement,
    signing_key,
    tls,
)

from protocol.agreement import AgreementBook, TrustModel
from protocol.classification import Band
from protocol.envelope import OriginAttestation, attest
from protocol.label import Category
from protocol.policy import (
    INGRESS_ONLY,
    RULES,
    Decision,
    Direction,
    Fault,
    IngressResult,
    Reason,
    Transfer,
    check_egress,
)
from protocol.statements import Signed


def refused(result: IngressResult | Decision, reason: Reason) -> None:
    decision = result.decision if isinstance(result, IngressResult) else result
    assert decision.reason is reason, decision
    assert not decision.allowed
    assert decision.rule == RULES[reason]
    if isinstance(result, IngressResult):
        assert result.item is None


def kz_to_tr(**label_overrides: object) -> tuple[Signed, bytes]:
    return make_origin(label("KZ", **label_overrides))


# --- the baseline ----------------------------------------------------------------------------


def test_allowed() -> None:
    origin, pt = kz_to_tr()
    result = ingress(make_envelope("KZ", "TR", origin, pt), "TR")
    assert result.decision.allowed
    assert result.decision.reason is Reason.ALLOWED
    assert result.item is not None


# --- §9.2: verification of the envelope ------------------------------------------------------


def test_envelope_malformed() -> None:
    origin, pt = kz_to_tr()
    env = make_envelope("KZ", "TR", origin, pt)
    env = replace(env, header=env.header.model_copy(update={"payload": b"{not json"}))
    refused(ingress(env, "TR", peer=tls("KZ")), Reason.ENVELOPE_MALFORMED)


def test_unknown_member() -> None:
    # SPEC §9.2.2: the claimed sender MUST be in the roster.
    origin, pt = kz_to_tr()
    env = make_envelope("KG", "TR", origin, pt)  # KG is not in the test roster
    refused(ingress(env, "TR", peer=tls("KG")), Reason.UNKNOWN_MEMBER)


def test_sender_identity_mismatch() -> None:
    # SPEC §9.2.3: the TLS peer MUST be the sender's tls_identity.
    origin, pt = kz_to_tr()
    refused(ingress(make_envelope("KZ", "TR", origin, pt), "TR", peer=tls("AZ")), Reason.SENDER_IDENTITY_MISMATCH)


def test_key_revoked() -> None:
    # SPEC §9.2.4: the sender's key MUST NOT be revoked.
    origin, pt = kz_to_tr()
    ctx = Ctx().policy(ros=roster(revoked=(signing_key("KZ").keyid,)))
    refused(ingress(make_envelope("KZ", "TR", origin, pt), "TR", ctx=ctx), Reason.KEY_REVOKED)


def test_sender_signature_invalid() -> None:
    # SPEC §9.2.5: the header MUST verify with the sender's identity.
    origin, pt = kz_to_tr()
    env = make_envelope("KZ", "TR", origin, pt)
    forged = resign_header(env, "AZ")  # claims to be KZ, signed by AZ
    refused(ingress(forged, "TR", peer=tls("KZ")), Reason.SENDER_SIGNATURE_INVALID)


def test_not_addressed_to_receiver() -> None:
    # SPEC §9.2.6: header.recipient MUST be the receiver.
    origin, pt = kz_to_tr()
    refused(ingress(make_envelope("KZ", "TR", origin, pt), "AZ"), Reason.NOT_ADDRESSED_TO_RECEIVER)


def test_timestamp_out_of_window() -> None:
    origin, pt = kz_to_tr()
    env = make_envelope("KZ", "TR", origin, pt, now=NOW - timedelta(days=8))
    refused(ingress(env, "TR"), Reason.TIMESTAMP_OUT_OF_WINDOW)


def test_replay() -> None:
    # SPEC §9.2.8: is_replay MUST be false.
    origin, pt = kz_to_tr()
    refused(ingress(make_envelope("KZ", "TR", origin, pt), "TR", is_replay=lambda h, d: True), Reason.REPLAY)


def test_equivocation() -> None:
    # SPEC §9.2.9 step 7: the receiver MUST NOT hold the item version under another origin digest.
    origin, pt = kz_to_tr()
    other, _ = kz_to_tr(band=Band.RESTRICTED)  # the same item id and version, another label
    env = make_envelope("KZ", "TR", origin, pt)
    result = ingress(env, "TR", held_origin=lambda item_id, version: other.digest)
    refused(result, Reason.EQUIVOCATION)
    assert other.digest in result.decision.detail
    assert origin.digest in result.decision.detail
    # The same attestation held already is no equivocation: a copy from another holder.
    assert ingress(env, "TR", held_origin=lambda item_id, version: origin.digest).decision.allowed


def test_origin_signature_invalid() -> None:
    # SPEC §9.2.9: the origin MUST be the one signed in the header.
    lab = label("KZ")
    origin, pt = attest(item_id="item-1", label=lab, item=raw(), originator_key=signing_key("TR"), now=NOW)
    refused(ingress(make_envelope("KZ", "TR", origin, pt), "TR"), Reason.ORIGIN_SIGNATURE_INVALID)


def test_label_invalid() -> None:
    # SPEC §9.2.10: the originator's marking MUST be its roster marking.
    origin, pt = kz_to_tr(originator_marking="КОНФИДЕНЦИАЛЬНО")  # KZ's CONFIDENTIAL on a SECRET label
    refused(ingress(make_envelope("KZ", "TR", origin, pt), "TR"), Reason.LABEL_INVALID)


def test_envelope_unopenable() -> None:
    origin, pt = kz_to_tr()
    env = make_envelope("KZ", "TR", origin, pt)
    # Another ciphertext for the same recipient, and a header re-signed by the true sender to
    # bind it: every signature holds but the HPKE info (other envelope id) does not match.
    other = make_envelope("KZ", "TR", origin, pt)
    swapped = resign_header(
        replace(env, ciphertext=other.ciphertext), "KZ", ciphertext_digest=header_of(other).ciphertext_digest
    )
    refused(ingress(swapped, "TR"), Reason.ENVELOPE_UNOPENABLE)


# --- §9.3: the agreement ---------------------------------------------------------------------


def test_recalled() -> None:
    # SPEC §9.3.1: is_recalled MUST be false.
    origin, pt = kz_to_tr()
    ctx = Ctx(recalled={("item-1", 1)}).policy()
    refused(ingress(make_envelope("KZ", "TR", origin, pt), "TR", ctx=ctx), Reason.RECALLED)


def test_no_agreement() -> None:
    # SPEC §9.3.2: an agreement MUST be held for the pair.
    origin, pt = kz_to_tr(releasable_to=("UZ",))  # the test federation has no KZ–UZ agreement
    refused(ingress(make_envelope("KZ", "UZ", origin, pt), "UZ"), Reason.NO_AGREEMENT)


def test_agreement_not_in_force() -> None:
    # SPEC §9.3.3: the held version MUST be in force.
    half = AgreementBook()
    half.accept(signed_agreement(agreement("KZ", "TR"), signers=("KZ",)), roster())  # TR never signed
    origin, pt = kz_to_tr()
    env = make_envelope("KZ", "TR", origin, pt, agreements=half)
    refused(ingress(env, "TR", ctx=Ctx().policy(half)), Reason.AGREEMENT_NOT_IN_FORCE)


def _under(**terms: object) -> AgreementBook:
    return book(agreement("KZ", "TR", **terms))


def test_band_above_ceiling() -> None:
    # SPEC §9.1: the receiver repeats the sender's checks, not trusting its decision.
    agreements = _under(ceilings={"KZ": Band.CONFIDENTIAL, "TR": Band.SECRET})
    origin, pt = kz_to_tr()
    env = make_envelope("KZ", "TR", origin, pt, agreements=agreements)
    refused(ingress(env, "TR", ctx=Ctx().policy(agreements)), Reason.BAND_ABOVE_CEILING)


def test_category_not_covered() -> None:
    agreements = _under(categories=(Category.INTELLIGENCE,))
    origin, pt = kz_to_tr(category=Category.MILITARY)
    env = make_envelope("KZ", "TR", origin, pt, agreements=agreements)
    refused(ingress(env, "TR", ctx=Ctx().policy(agreements)), Reason.CATEGORY_NOT_COVERED)


def test_topic_not_covered() -> None:
    origin, pt = kz_to_tr(topics=("terrorism", "separatism"))  # separatism: in the vocabulary, not the agreement
    refused(ingress(make_envelope("KZ", "TR", origin, pt), "TR"), Reason.TOPIC_NOT_COVERED)


def test_raw_data_not_allowed() -> None:
    agreements = _under(raw_data_allowed=False)
    origin, pt = make_origin(label("KZ"), raw())
    env = make_envelope("KZ", "TR", origin, pt, agreements=agreements)
    refused(ingress(env, "TR", ctx=Ctx().policy(agreements)), Reason.RAW_DATA_NOT_ALLOWED)


def test_template_required() -> None:
    # SPEC §9.3.8: the content MUST be a report where the template is required.
    agreements = _under(trust_model=TrustModel.INSTITUTIONAL_OVERSIGHT)
    origin, pt = make_origin(label("KZ"), raw())
    env = make_envelope("KZ", "TR", origin, pt, agreements=agreements)
    refused(ingress(env, "TR", ctx=Ctx().policy(agreements)), Reason.TEMPLATE_REQUIRED)


def test_retention_exceeds_agreement() -> None:
    agreements = _under(max_retention_days=30)
    origin, pt = kz_to_tr()  # retain_until is NOW + 180 days
    env = make_envelope("KZ", "TR", origin, pt, agreements=agreements)
    refused(ingress(env, "TR", ctx=Ctx().policy(agreements)), Reason.RETENTION_EXCEEDS_AGREEMENT)


def test_retention_expired() -> None:
    # SPEC §9.3.9: an item whose retain_until has passed (the instant itself counts) goes nowhere.
    origin, pt = kz_to_tr(retain_until=NOW)
    refused(ingress(make_envelope("KZ", "TR", origin, pt), "TR"), Reason.RETENTION_EXPIRED)
    att = OriginAttestation.from_bytes(origin.payload)
    refused(check_egress(Transfer("KZ", "TR", att, origin.digest, ()), Ctx().policy()), Reason.RETENTION_EXPIRED)


def test_not_releasable() -> None:
    # SPEC §9.3.10 step 1: the recipient MUST be in releasable_to.
    origin, pt = kz_to_tr(releasable_to=("AZ",))
    refused(ingress(make_envelope("KZ", "TR", origin, pt), "TR"), Reason.NOT_RELEASABLE)


# --- §9.4: the re-sharing ban and consent chains ---------------------------------------------


def test_third_party_without_consent() -> None:
    origin, pt = kz_to_tr()
    refused(ingress(make_envelope("TR", "AZ", origin, pt), "AZ"), Reason.THIRD_PARTY_WITHOUT_CONSENT)


def test_consent_invalid() -> None:
    # SPEC §9.4.2 step 6: the grant MUST verify with the grantor's identity.
    origin, pt = kz_to_tr()
    forged = grant(origin, grantor="KZ", holder="TR", grantee="AZ", signer="TR")  # TR signs in KZ's name
    refused(ingress(make_envelope("TR", "AZ", origin, pt, consents=(forged,)), "AZ"), Reason.CONSENT_INVALID)


def test_consent_expired() -> None:
    # SPEC §9.4.2 step 8: expires_at MUST be after now.
    origin, pt = kz_to_tr()
    old = grant(origin, grantor="KZ", holder="TR", grantee="AZ", expires_at=NOW - timedelta(seconds=1))
    refused(ingress(make_envelope("TR", "AZ", origin, pt, consents=(old,)), "AZ"), Reason.CONSENT_EXPIRED)


def test_consent_revoked() -> None:
    # SPEC §9.4.2 step 7: is_grant_revoked MUST be false.
    origin, pt = kz_to_tr()
    g = grant(origin, grantor="KZ", holder="TR", grantee="AZ", grant_id="ab" * 16)
    ctx = Ctx(revoked_grants={"ab" * 16}).policy()
    refused(ingress(make_envelope("TR", "AZ", origin, pt, consents=(g,)), "AZ", ctx=ctx), Reason.CONSENT_REVOKED)


def test_consent_condition_unmet() -> None:
    # SPEC §9.4.4: a grant's onward-to names the only members a later grant may name.
    origin, pt = kz_to_tr()
    to_az = grant(origin, grantor="KZ", holder="TR", grantee="AZ", transferable=True, conditions=("onward-to:KG",))
    az_on = grant(origin, grantor="AZ", holder="AZ", grantee="UZ", grant_id="0" * 31 + "2")
    env = make_envelope("AZ", "UZ", origin, pt, consents=(to_az, az_on))
    refused(ingress(env, "UZ"), Reason.CONSENT_CONDITION_UNMET)


def test_consent_condition_retain_until_passed() -> None:
    # SPEC §9.4.4: a grant's retain-until is when its chain stops carrying consent.
    origin, pt = kz_to_tr()
    held_until = grant(
        origin, grantor="KZ", holder="TR", grantee="AZ", conditions=("retain-until:2026-11-22T12:00:00Z",)
    )
    env = make_envelope("TR", "AZ", origin, pt, consents=(held_until,))
    refused(ingress(env, "AZ"), Reason.CONSENT_CONDITION_UNMET)
    later = grant(origin, grantor="KZ", holder="TR", grantee="AZ", conditions=("retain-until:2026-11-22T12:00:01Z",))
    assert ingress(make_envelope("TR", "AZ", origin, pt, consents=(later,)), "AZ").decision.allowed


def test_consent_wrong_grantee() -> None:
    origin, pt = kz_to_tr()
    for_uz = grant(origin, grantor="KZ", holder="TR", grantee="UZ")
    refused(
        ingress(make_envelope("TR", "AZ", origin, pt, consents=(for_uz,)), "AZ"),
        Reason.CONSENT_WRONG_GRANTEE,
    )


def test_consent_not_transferable() -> None:
    # SPEC §9.4.2 step 3: grant i-1 MUST be transferable.
    origin, pt = kz_to_tr()
    to_az = grant(origin, grantor="KZ", holder="TR", grantee="AZ")  # not transferable
    az_on = grant(origin, grantor="AZ", holder="AZ", grantee="UZ", grant_id="0" * 31 + "2")
    env = make_envelope("AZ", "UZ", origin, pt, consents=(to_az, az_on))
    refused(ingress(env, "UZ"), Reason.CONSENT_NOT_TRANSFERABLE)


# --- the meta-test ---------------------------------------------------------------------------


def test_every_reason_has_its_named_test() -> None:
    module = sys.modules[__name__]
    missing = [r.name for r in Reason if not callable(getattr(module, f"test_{r.name.lower()}", None))]
    assert not missing, f"reason codes without a named test: {missing}"
    assert set(RULES) == set(Reason)


def test_default_book_is_the_baseline() -> None:
    # The tests above rely on these pairs existing, and KZ–UZ not existing.
    agreements = default_book()
    assert agreements.get("KZ", "TR") is not None
    assert agreements.get("AZ", "TR") is not None
    assert agreements.get("KZ", "UZ") is None


# --- who is at fault (SPEC §9.5) ---------------------------------------------------------------


def _spec_fault_column() -> dict[str, str]:
    """The "At fault" column of the SPEC §9.5 table, continuation lines joined, by reason."""
    spec = (Path(__file__).resolve().parents[2] / "protocol" / "SPEC.md").read_text(encoding="utf-8")
    section = spec[spec.index("### 9.5 The policy table") : spec.index("### 9.6")]
    column: dict[str, str] = {}
    current = ""
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.split("|")[1:-1]]
        if len(cells) != 4 or cells[0] == "Reason":
            continue
        if cells[0]:
            current = cells[0]
            column[current] = cells[2]
        else:
            column[current] += " " + cells[2]
    return column


def test_fault_of_every_reason_is_the_spec_table() -> None:
    # SPEC §9.5: "local" rows are the caller's fault on egress; every ingress refusal is remote.
    column = _spec_fault_column()
    assert set(column) == {r.value for r in Reason}
    for reason in Reason:
        text = column[reason.value]
        if text == "-":
            assert (reason.fault(Direction.EGRESS), reason.fault(Direction.INGRESS)) == (None, None)
            continue
        assert reason.fault(Direction.INGRESS) is Fault.REMOTE, reason
        if "local" in text:
            assert reason not in INGRESS_ONLY, reason
            assert reason.fault(Direction.EGRESS) is Fault.LOCAL, reason
        else:
            assert reason in INGRESS_ONLY, reason
            with pytest.raises(ValueError, match="only on ingress"):
                reason.fault(Direction.EGRESS)


def test_fault_of_decisions_and_ingress_results() -> None:
    # SPEC §9.5: an egress refusal is the local caller's; an ingress refusal another party's.
    origin, pt = kz_to_tr(releasable_to=("AZ",))
    egress = check_egress(
        Transfer("KZ", "TR", OriginAttestation.from_bytes(origin.payload), origin.digest, ()), Ctx().policy()
    )
    assert egress.reason is Reason.NOT_RELEASABLE
    assert egress.fault(Direction.EGRESS) is Fault.LOCAL
    result = ingress(make_envelope("KZ", "TR", origin, pt), "TR")
    assert result.decision.reason is Reason.NOT_RELEASABLE
    assert result.fault is Fault.REMOTE
    allowed = ingress(make_envelope("KZ", "TR", *kz_to_tr()), "TR")
    assert allowed.fault is None
