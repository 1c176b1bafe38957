"""Agreement amendments: proposals, countersignatures and rejections (SPEC §6.4)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from support import NOW, agreement, book, roster, signed_agreement, signing_key

from protocol.agreement import (
    Agreement,
    AgreementProposal,
    AgreementRejection,
    countersign,
    verify_proposal,
    verify_rejection,
)
from protocol.classification import Band
from protocol.errors import (
    ConfigurationError,
    LocalProtocolError,
    MalformedError,
    NoticeMismatchError,
    RollbackError,
    SignatureError,
)
from protocol.statements import PayloadType, Signed, cosign, sign

V1 = agreement("KZ", "TR")


def propose(
    version: int = 2, *, proposer: str = "KZ", counterparty: str = "TR", signer: str | None = None, **changes: object
) -> tuple[AgreementProposal, Signed]:
    proposed = V1.model_copy(update={"version": version, **changes})
    inner = sign(PayloadType.AGREEMENT, proposed, [signing_key(signer or proposer)])
    proposal = AgreementProposal(
        proposal_id="1" * 32,
        proposer=proposer,
        counterparty=counterparty,
        agreement=inner,
        replaces=None if version == 1 else 1,
        note="lower the ceilings",
        proposed_at=NOW,
    )
    return proposal, sign(PayloadType.AGREEMENT_PROPOSAL, proposal, [signing_key(signer or proposer)])


def rejection(proposal: AgreementProposal, *, signer: str = "TR", **changes: object) -> Signed:
    fields: dict[str, object] = {
        "proposal_id": proposal.proposal_id,
        "agreement_id": "KZ-TR",
        "version": 2,
        "agreement_digest": proposal.agreement.digest,
        "proposer": "KZ",
        "rejecter": "TR",
        "reason": "not before the review",
        "rejected_at": NOW,
    }
    fields.update(changes)
    return sign(PayloadType.AGREEMENT_REJECTION, AgreementRejection.model_validate(fields), [signing_key(signer)])


def test_a_countersigned_proposal_is_the_agreement_both_signed() -> None:
    # SPEC §6.4: the countersignature completes the two-party format of §6.2; the proposal alone changes nothing.
    _, signed = propose(ceilings={"KZ": Band.CONFIDENTIAL, "TR": Band.CONFIDENTIAL})
    held = book(V1)
    proposal = verify_proposal(signed, roster=roster(), counterparty="TR", held=held.get("KZ", "TR"))
    assert held.get("KZ", "TR") == V1  # verifying is not holding
    statement = countersign(proposal, key=signing_key("TR"), me="TR", roster=roster(), held=held.get("KZ", "TR"))
    assert statement.payload == proposal.agreement.payload  # the exact bytes the proposer signed
    accepted = held.accept(statement, roster())
    assert (accepted.version, held.in_force("KZ", "TR", NOW)) == (2, True)
    # The proposer's node accepts the same statement: one format, both signatures.
    at_kz = book(V1)
    assert at_kz.accept(statement, roster()).version == 2
    assert at_kz.in_force("TR", "KZ", NOW)


def test_the_proposers_own_statement_alone_would_suspend_the_pair() -> None:
    # SPEC §6.4: why a proposal is a statement of its own, and why the proposer checks both signatures.
    proposal, _ = propose()
    held = book(V1)
    held.accept(proposal.agreement, roster())
    assert not held.in_force("KZ", "TR", NOW)


@pytest.mark.parametrize(
    ("make", "error"),
    [
        (lambda: propose(signer="AZ")[1], SignatureError),  # AZ signs in KZ's name
        (lambda: propose(counterparty="TR", proposer="KZ", version=1)[1], RollbackError),
        (lambda: propose(agreement_id="KZ-TR-2")[1], ConfigurationError),
        (lambda: propose(ceilings={"KZ": Band.TOP_SECRET, "TR": Band.SECRET})[1], None),
    ],
    ids=["forged", "not newer", "another agreement id", "allowed: higher ceiling, markings held"],
)
def test_verify_proposal_refuses(make: object, error: type[Exception] | None) -> None:
    # SPEC §6.4 steps 2, 4, 5.
    signed = make()  # type: ignore[operator]
    if error is None:
        verify_proposal(signed, roster=roster(), counterparty="TR", held=V1)
        return
    with pytest.raises(error):
        verify_proposal(signed, roster=roster(), counterparty="TR", held=V1)


def test_a_proposal_for_another_member_or_with_an_inner_signature_missing_is_refused() -> None:
    # SPEC §6.4 steps 2 and 3.
    _, signed = propose()
    with pytest.raises(NoticeMismatchError):
        verify_proposal(signed, roster=roster(), counterparty="KZ", held=None)
    proposal, _ = propose()
    unsigned_inner = proposal.model_copy(update={"agreement": proposal.agreement.model_copy(update={"signatures": ()})})
    resigned = sign(PayloadType.AGREEMENT_PROPOSAL, unsigned_inner, [signing_key("KZ")])
    with pytest.raises(SignatureError):
        verify_proposal(resigned, roster=roster(), counterparty="TR", held=None)
    with pytest.raises(SignatureError):  # a revoked proposer
        verify_proposal(signed, roster=roster(revoked=(signing_key("KZ").keyid,)), counterparty="TR", held=None)


def test_a_proposal_must_be_between_its_two_parties_and_above_what_it_replaces() -> None:
    # SPEC §6.4: otherwise it does not parse.
    inner = sign(PayloadType.AGREEMENT, V1.model_copy(update={"version": 2}), [signing_key("KZ")])
    with pytest.raises(ValueError, match="not between"):
        AgreementProposal(
            proposal_id="1" * 32, proposer="KZ", counterparty="AZ", agreement=inner, replaces=1, proposed_at=NOW
        )
    with pytest.raises(ValueError, match="higher than"):
        AgreementProposal(
            proposal_id="1" * 32, proposer="KZ", counterparty="TR", agreement=inner, replaces=2, proposed_at=NOW
        )
    roster_statement = sign(PayloadType.ROSTER, roster(), [signing_key("KZ")])
    with pytest.raises(ValueError, match="not an AGREEMENT"):
        AgreementProposal(
            proposal_id="1" * 32,
            proposer="KZ",
            counterparty="TR",
            agreement=roster_statement,
            replaces=1,
            proposed_at=NOW,
        )
    garbled = Signed(payload_type=PayloadType.AGREEMENT.value, payload=b"{}", signatures=())
    with pytest.raises(ValueError, match="does not parse"):
        AgreementProposal(
            proposal_id="1" * 32, proposer="KZ", counterparty="TR", agreement=garbled, replaces=None, proposed_at=NOW
        )
    _, signed = propose()
    with pytest.raises(MalformedError):
        verify_proposal(
            signed.model_copy(update={"payload": signed.payload[:-2]}), roster=roster(), counterparty="TR", held=None
        )


def test_countersign_checks_again_what_is_held_then() -> None:
    # SPEC §6.4: the pair may have moved on since the proposal arrived.
    proposal, _ = propose()
    moved_on = V1.model_copy(update={"version": 2, "title": "agreed otherwise"})
    with pytest.raises(RollbackError):
        countersign(proposal, key=signing_key("TR"), me="TR", roster=roster(), held=moved_on)
    with pytest.raises(NoticeMismatchError):
        countersign(proposal, key=signing_key("AZ"), me="AZ", roster=roster(), held=V1)


def test_cosign_adds_signatures_over_the_same_bytes_once() -> None:
    # SPEC §4.1: one signature per key; the payload is never re-serialised.
    one = sign(PayloadType.AGREEMENT, V1, [signing_key("KZ")])
    both = cosign(one, PayloadType.AGREEMENT, [signing_key("TR")])
    assert both.payload == one.payload
    assert both == signed_agreement(V1).model_copy(update={"signatures": both.signatures})
    assert len(both.signatures) == 2
    with pytest.raises(LocalProtocolError, match="already carries"):
        cosign(both, PayloadType.AGREEMENT, [signing_key("TR")])
    with pytest.raises(LocalProtocolError, match="expected a ROSTER"):
        cosign(one, PayloadType.ROSTER, [signing_key("TR")])


def test_a_rejection_is_bound_to_the_proposal_and_signed_by_the_counterparty() -> None:
    # SPEC §6.4: the rejecter MUST be the counterparty; its fields MUST be the proposal's.
    proposal, _ = propose()
    assert verify_rejection(rejection(proposal), roster=roster(), proposal=proposal).reason == "not before the review"
    with pytest.raises(SignatureError):
        verify_rejection(rejection(proposal, signer="AZ"), roster=roster(), proposal=proposal)
    with pytest.raises(SignatureError):
        verify_rejection(rejection(proposal, rejecter="AZ", signer="AZ"), roster=roster(), proposal=proposal)
    with pytest.raises(SignatureError):
        verify_rejection(rejection(proposal), roster=roster(revoked=(signing_key("TR").keyid,)), proposal=proposal)
    for changes in ({"version": 3}, {"agreement_digest": "ab" * 32}, {"proposal_id": "2" * 32}, {"proposer": "AZ"}):
        with pytest.raises(NoticeMismatchError):
            verify_rejection(rejection(proposal, **changes), roster=roster(), proposal=proposal)


def test_proposal_round_trips_in_canonical_form() -> None:
    # SPEC §4.4: an embedded statement is part of the canonical payload.
    proposal, signed = propose()
    parsed = AgreementProposal.from_bytes(signed.payload)
    assert parsed == proposal
    assert parsed.proposed == Agreement.from_bytes(proposal.agreement.payload)
    assert parsed.proposed.valid_until - parsed.proposed.valid_from == timedelta(days=730)
