"""Bilateral agreements, trust models and the agreement book (SPEC §6)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from support import NOW, Ctx, agreement, book, grant, label, make_origin, member, roster, signed_agreement

from protocol.agreement import (
    Agreement,
    AgreementBook,
    DirectionTerms,
    ReshareRule,
    TrustModel,
    check_markings,
    pair_key,
)
from protocol.classification import Band
from protocol.envelope import OriginAttestation
from protocol.errors import ConfigurationError, RollbackError
from protocol.policy import Reason, Transfer, check_egress
from protocol.roster import Roster
from protocol.statements import Signed

# --- validation ------------------------------------------------------------------------------


def test_parties_are_sorted_and_distinct() -> None:
    assert agreement("TR", "KZ").parties == ("KZ", "TR")
    assert pair_key("TR", "KZ") == pair_key("KZ", "TR") == ("KZ", "TR")
    with pytest.raises(ValueError, match="two different parties"):
        agreement("KZ", "KZ", ceilings={"KZ": Band.SECRET})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"valid_until": NOW - timedelta(days=400)}, "valid_until must be after"),
        ({"ceilings": {"KZ": Band.SECRET}}, "exactly the two parties"),
        ({"trust_model": TrustModel.HIERARCHICAL}, "names its senior party"),
        (
            {
                "trust_model": TrustModel.HIERARCHICAL,
                "senior_party": "TR",
                "ceilings": {"TR": Band.TOP_SECRET, "KZ": Band.SECRET},
            },
            "must not be higher",
        ),
        ({"senior_party": "TR"}, "only a hierarchical"),
        ({"topics": ("cyber", "cyber")}, "duplicates"),
    ],
)
def test_agreement_validation(overrides: dict[str, object], message: str) -> None:
    # SPEC §6.1: the senior party's ceiling MUST NOT be above the junior's.
    with pytest.raises(ValueError, match=message):
        agreement("KZ", "TR", **overrides)


def test_other_and_window() -> None:
    ag = agreement("KZ", "TR")
    assert ag.other("KZ") == "TR"
    assert ag.other("TR") == "KZ"
    assert ag.in_window(NOW)
    assert not ag.in_window(ag.valid_until)
    assert ag.in_window(ag.valid_from)


# --- trust models (SPEC §6.3 table) ----------------------------------------------------------


def test_high_trust_terms() -> None:
    terms = agreement("KZ", "TR", ceilings={"KZ": Band.TOP_SECRET, "TR": Band.SECRET}).terms("KZ", "TR")
    assert terms.ceiling is Band.TOP_SECRET
    assert terms.raw_data_allowed
    assert not terms.template_required
    assert terms.reshare_rule is ReshareRule.ORIGINATOR_CONSENT


def test_institutional_oversight_forbids_raw_and_label_decides() -> None:
    ag = agreement("KZ", "TR", trust_model=TrustModel.INSTITUTIONAL_OVERSIGHT, reshare_rule=ReshareRule.LABEL_DECIDES)
    for sender, recipient in (("KZ", "TR"), ("TR", "KZ")):
        terms = ag.terms(sender, recipient)
        assert not terms.raw_data_allowed
        assert terms.template_required
        assert terms.reshare_rule is ReshareRule.ORIGINATOR_CONSENT


def test_hierarchical_restricts_only_towards_junior() -> None:
    ag = agreement(
        "KZ",
        "TR",
        trust_model=TrustModel.HIERARCHICAL,
        senior_party="TR",
        ceilings={"TR": Band.RESTRICTED, "KZ": Band.SECRET},
    )
    to_junior, to_senior = ag.terms("TR", "KZ"), ag.terms("KZ", "TR")
    assert (to_junior.ceiling, to_junior.raw_data_allowed, to_junior.template_required) == (
        Band.RESTRICTED,
        False,
        True,
    )
    assert (to_senior.ceiling, to_senior.raw_data_allowed, to_senior.template_required) == (Band.SECRET, True, False)


def test_terms_for_a_pair_outside_the_agreement() -> None:
    with pytest.raises(ConfigurationError):
        agreement("KZ", "TR").terms("KZ", "AZ")
    with pytest.raises(ConfigurationError):
        agreement("KZ", "TR").terms("KZ", "KZ")


# --- markings and vocabulary -----------------------------------------------------------------


def test_check_markings_needs_a_marking_for_every_band_up_to_the_ceiling() -> None:
    # SPEC §5.2, §6.2 rule 3: every band up to the ceiling MUST have markings.
    ros = roster()
    thin = member("TR").model_copy(update={"markings": {Band.UNCLASSIFIED: "TASNİF DIŞI", Band.SECRET: "GİZLİ"}})
    thin_roster = Roster.model_validate(ros.model_dump() | {"members": (thin, member("KZ"))})
    with pytest.raises(ConfigurationError, match="TR has no national marking for RESTRICTED, CONFIDENTIAL"):
        check_markings(agreement("KZ", "TR"), thin_roster)
    check_markings(agreement("KZ", "TR", ceilings={"KZ": Band.UNCLASSIFIED, "TR": Band.UNCLASSIFIED}), thin_roster)


def test_check_markings_needs_both_parties_in_roster() -> None:
    with pytest.raises(ConfigurationError, match="not in the roster"):
        check_markings(agreement("KZ", "KG"), roster())


def test_check_markings_needs_known_topics() -> None:
    # SPEC §5.2: every agreement topic MUST be in the vocabulary.
    with pytest.raises(ConfigurationError, match="vocabulary"):
        check_markings(agreement("KZ", "TR", topics=("weather",)), roster())


# --- the agreement book ----------------------------------------------------------------------


def test_one_signature_is_held_but_not_in_force_until_countersigned() -> None:
    ag = agreement("KZ", "TR")
    held = AgreementBook()
    held.accept(signed_agreement(ag, signers=("KZ",)), roster())
    assert held.get("TR", "KZ") == ag
    assert not held.in_force("KZ", "TR", NOW)
    held.accept(signed_agreement(ag, signers=("KZ",)), roster())  # same half again: still held
    assert not held.in_force("KZ", "TR", NOW)
    held.accept(signed_agreement(ag), roster())
    assert held.in_force("KZ", "TR", NOW)
    held.accept(signed_agreement(ag, signers=("TR",)), roster())  # a half never undoes a full one
    assert held.in_force("KZ", "TR", NOW)
    assert held.signed("TR", "KZ") == signed_agreement(ag)
    assert list(held.agreements()) == [ag]


def test_not_in_force_outside_window() -> None:
    held = book(agreement("KZ", "TR"))
    assert not held.in_force("KZ", "TR", NOW + timedelta(days=400))
    assert not held.in_force("KZ", "AZ", NOW)
    assert held.signed("KZ", "AZ") is None


def test_second_agreement_for_the_same_pair() -> None:
    held = book(agreement("KZ", "TR"))
    with pytest.raises(ConfigurationError, match="already has agreement"):
        held.accept(signed_agreement(agreement("KZ", "TR", agreement_id="OTHER")), roster())


def test_party_not_in_roster() -> None:
    # SPEC §6.2 rule 1: both parties MUST be in the roster.
    with pytest.raises(ConfigurationError, match="not in the roster"):
        AgreementBook().accept(signed_agreement(agreement("KZ", "KG")), roster())


def test_newer_version_replaces_older() -> None:
    held = book(agreement("KZ", "TR"), agreement("KZ", "TR", version=2, max_retention_days=30))
    assert held.get("KZ", "TR").max_retention_days == 30  # type: ignore[union-attr]
    with pytest.raises(RollbackError):
        held.accept(signed_agreement(agreement("KZ", "TR")), roster())


def test_agreements_with_the_same_fields_are_equal_whatever_was_asked_of_them() -> None:
    # SPEC §6.2 rule 4 (issue 11 point 7): asking for terms must not change equality.
    asked, fresh = agreement("KZ", "TR"), agreement("KZ", "TR")
    asked.terms("KZ", "TR")
    assert asked == fresh


def test_the_held_statement_written_back_unchanged_is_the_same_text() -> None:
    # SPEC §6.2 rule 4: after the pair exchanged items (terms asked), the same statement read
    # back from a file (pretty-printed there) is the held agreement, not a rollback.
    held = AgreementBook()
    statement = signed_agreement(agreement("KZ", "TR"))
    first = held.accept(statement, roster())
    origin, _ = make_origin()
    att = OriginAttestation.from_bytes(origin.payload)
    ctx = Ctx().policy(held)
    assert check_egress(Transfer("KZ", "TR", att, origin.digest, ()), ctx).allowed
    written_back = Signed.from_bytes(json.dumps(json.loads(statement.to_bytes()), indent=2).encode())
    assert held.accept(written_back, roster()) is first
    assert held.in_force("KZ", "TR", NOW)


def test_same_version_with_other_payload_bytes_is_a_rollback() -> None:
    # SPEC §6.2 rule 4: "the same text" is the same payload bytes.
    held = book(agreement("KZ", "TR"))
    with pytest.raises(RollbackError, match="differs from the held text"):
        held.accept(signed_agreement(agreement("KZ", "TR", title="another text")), roster())


# --- the label may relax the re-sharing ban only where the originator agreed (SPEC §9.4) -----


def _reshare(controlled: bool, releasable: tuple[str, ...], *, rule: ReshareRule, kz_tr: bool = True) -> Reason:
    agreements = [agreement("AZ", "TR")]
    if kz_tr:
        agreements.append(agreement("KZ", "TR", reshare_rule=rule))
    origin, _ = make_origin(label("KZ", releasable_to=releasable, originator_controlled=controlled))
    att = OriginAttestation.from_bytes(origin.payload)
    return check_egress(Transfer("TR", "AZ", att, origin.digest, ()), Ctx().policy(book(*agreements))).reason


def test_label_decides_allows_release_list_without_consent() -> None:
    assert _reshare(False, ("TR", "AZ"), rule=ReshareRule.LABEL_DECIDES) is Reason.ALLOWED


def test_reshare_rule_is_read_from_the_originator_to_sender_direction(monkeypatch: pytest.MonkeyPatch) -> None:
    # SPEC §9.3.10 step 3: terms(originator, sender), the terms the sender received it under.
    asked: list[tuple[str, str, str]] = []
    real_terms = Agreement.terms

    def spy(self: Agreement, sender: str, recipient: str) -> DirectionTerms:
        asked.append((self.agreement_id, sender, recipient))
        return real_terms(self, sender, recipient)

    monkeypatch.setattr(Agreement, "terms", spy)
    assert _reshare(False, ("TR", "AZ"), rule=ReshareRule.LABEL_DECIDES) is Reason.ALLOWED
    assert ("KZ-TR", "KZ", "TR") in asked
    assert ("KZ-TR", "TR", "KZ") not in asked


@pytest.mark.parametrize("model", list(TrustModel))
def test_both_directions_of_a_pair_have_the_same_reshare_rule(model: TrustModel) -> None:
    # SPEC §9.3.10 step 3, §6.3: why the direction changes no decision today.
    for rule in ReshareRule:
        extra: dict[str, object] = {"senior_party": "TR"} if model is TrustModel.HIERARCHICAL else {}
        a = agreement("KZ", "TR", trust_model=model, reshare_rule=rule, **extra)
        assert a.terms("KZ", "TR").reshare_rule is a.terms("TR", "KZ").reshare_rule


def test_label_decides_still_needs_the_release_list() -> None:
    assert _reshare(False, ("TR",), rule=ReshareRule.LABEL_DECIDES) is Reason.NOT_RELEASABLE


def test_originator_controlled_label_needs_consent_even_if_label_decides() -> None:
    assert _reshare(True, ("TR", "AZ"), rule=ReshareRule.LABEL_DECIDES) is Reason.THIRD_PARTY_WITHOUT_CONSENT


def test_uncontrolled_label_needs_consent_unless_originator_agreed() -> None:
    assert _reshare(False, ("TR", "AZ"), rule=ReshareRule.ORIGINATOR_CONSENT) is Reason.THIRD_PARTY_WITHOUT_CONSENT


def test_uncontrolled_label_without_originator_agreement() -> None:
    # TR got the item somehow but has no agreement with KZ: the label cannot relax anything.
    assert _reshare(False, ("TR", "AZ"), rule=ReshareRule.LABEL_DECIDES, kz_tr=False) is (
        Reason.THIRD_PARTY_WITHOUT_CONSENT
    )


def test_returning_an_item_to_its_originator_needs_no_consent() -> None:
    origin, _ = make_origin()
    att = OriginAttestation.from_bytes(origin.payload)
    assert check_egress(Transfer("TR", "KZ", att, origin.digest, ()), Ctx().policy()).allowed


def test_tightened_agreement_takes_effect_at_once() -> None:
    origin, _ = make_origin()
    att = OriginAttestation.from_bytes(origin.payload)
    move = Transfer("KZ", "TR", att, origin.digest, ())
    held = book(agreement("KZ", "TR"))
    assert check_egress(move, Ctx().policy(held)).allowed
    held.accept(signed_agreement(agreement("KZ", "TR", version=2, max_retention_days=30)), roster())
    assert check_egress(move, Ctx().policy(held)).reason is Reason.RETENTION_EXCEEDS_AGREEMENT


def test_grant_for_a_party_outside_any_agreement() -> None:
    # A valid consent does not replace an agreement between sender and recipient.
    origin, _ = make_origin()
    g = grant(origin, grantor="KZ", holder="TR", grantee="UZ")
    att = OriginAttestation.from_bytes(origin.payload)
    assert check_egress(Transfer("TR", "UZ", att, origin.digest, (g,)), Ctx().policy()).reason is Reason.NO_AGREEMENT
