"""Bilateral agreements and the terms they give each direction (SPEC §6).

An agreement is in force only when both parties signed the same version, the
validity window contains ``now``, and no newer version of the same agreement is
held. The trust model changes what the terms demand (SPEC §6.3, Table 2).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import cached_property
from typing import Annotated

from pydantic import Field, field_validator, model_validator

from protocol._model import AgreementId, Digest, Hex32Id, MemberId, Model, SortedUnique, Timestamp, Version
from protocol.classification import Band, BandField
from protocol.errors import ConfigurationError, MalformedError, NoticeMismatchError, RollbackError, SignatureError
from protocol.keys import SigningKey
from protocol.label import Category, Topic
from protocol.roster import Member, Roster
from protocol.statements import PayloadType, Signed, cosign, parse_unverified, verify

__all__ = [
    "Agreement",
    "AgreementBook",
    "AgreementProposal",
    "AgreementRejection",
    "DirectionTerms",
    "ReshareRule",
    "TrustModel",
    "check_markings",
    "countersign",
    "pair_key",
    "verify_proposal",
    "verify_rejection",
]


class TrustModel(StrEnum):
    """The three ways of containing sharing risks (SPEC §6.3)."""

    HIGH_TRUST = "high-trust"
    INSTITUTIONAL_OVERSIGHT = "institutional-oversight"
    HIERARCHICAL = "hierarchical"


class ReshareRule(StrEnum):
    """What it takes for an item received under this agreement to reach a third party."""

    #: Always the originator's signed consent, whatever the label says (the default ban).
    ORIGINATOR_CONSENT = "originator-consent"
    #: The label decides: if not originator-controlled, members on its release list may
    #: receive it without consent.
    LABEL_DECIDES = "label-decides"


def pair_key(a: str, b: str) -> tuple[str, str]:
    """The unordered pair, as a sorted tuple."""
    return (a, b) if a <= b else (b, a)


class Agreement(Model):
    """One version of a bilateral agreement (SPEC §6.1)."""

    agreement_id: AgreementId
    version: Version
    parties: tuple[MemberId, MemberId]
    title: str = Field(default="", max_length=512)
    valid_from: Timestamp
    valid_until: Timestamp
    #: Band ceiling for items SENT BY each party (asymmetric ceilings: SPEC §6.3).
    ceilings: dict[MemberId, BandField]
    categories: Annotated[tuple[Category, ...], SortedUnique] = Field(min_length=1, max_length=3)
    topics: Annotated[tuple[Topic, ...], SortedUnique] = Field(min_length=1, max_length=256)
    max_retention_days: int = Field(ge=1, le=36500)
    raw_data_allowed: bool
    trust_model: TrustModel
    #: Under the hierarchical model, the party that sets the parameters.
    senior_party: MemberId | None = None
    reshare_rule: ReshareRule = ReshareRule.ORIGINATOR_CONSENT

    @field_validator("parties")
    @classmethod
    def _ordered_parties(cls, value: tuple[str, str]) -> tuple[str, str]:
        if value[0] == value[1]:
            raise ValueError("an agreement needs two different parties")
        return pair_key(*value)

    @model_validator(mode="after")
    def _consistent(self) -> Agreement:
        if self.valid_until <= self.valid_from:
            raise ValueError("valid_until must be after valid_from")
        if set(self.ceilings) != set(self.parties):
            raise ValueError("ceilings must name exactly the two parties")
        if self.trust_model is TrustModel.HIERARCHICAL:
            if self.senior_party not in self.parties:
                raise ValueError("a hierarchical agreement names its senior party")
            junior = self.other(self.senior_party)
            # SPEC §6.3: the junior party receives no higher band than it sends.
            if self.ceilings[self.senior_party] > self.ceilings[junior]:
                raise ValueError("hierarchical: the ceiling towards the junior party must not be higher")
        elif self.senior_party is not None:
            raise ValueError("only a hierarchical agreement names a senior party")
        return self

    def other(self, party: str) -> str:
        """The party that is not ``party``."""
        return self.parties[1] if party == self.parties[0] else self.parties[0]

    def in_window(self, now: datetime) -> bool:
        """Whether ``now`` is inside the validity window."""
        return self.valid_from <= now < self.valid_until

    def terms(self, sender: str, recipient: str) -> DirectionTerms:
        """The effective terms for items from ``sender`` to ``recipient`` (SPEC §6.3 table)."""
        terms = self._directions.get((sender, recipient))
        if terms is None:
            raise ConfigurationError(f"{self.agreement_id} is not between {sender} and {recipient}")
        return terms

    @cached_property
    def _directions(self) -> dict[tuple[str, str], DirectionTerms]:
        # Every transfer asks and the agreement is immutable, so both directions are worked out
        # once. A cached property, unlike a private attribute, is not part of model equality:
        # two agreements with the same fields compare equal whatever was asked of them (SPEC §6.2).
        a, b = self.parties
        return {(a, b): self._work_out_terms(a, b), (b, a): self._work_out_terms(b, a)}

    def _work_out_terms(self, sender: str, recipient: str) -> DirectionTerms:
        raw_allowed = self.raw_data_allowed
        template_required = False
        if self.trust_model is TrustModel.INSTITUTIONAL_OVERSIGHT:
            raw_allowed, template_required = False, True
        elif self.trust_model is TrustModel.HIERARCHICAL and recipient != self.senior_party:
            # Towards the junior party: finished reports only.
            raw_allowed, template_required = False, True
        return DirectionTerms(
            ceiling=self.ceilings[sender],
            categories=frozenset(self.categories),
            topics=frozenset(self.topics),
            max_retention=timedelta(days=self.max_retention_days),
            raw_data_allowed=raw_allowed,
            template_required=template_required,
            reshare_rule=(
                ReshareRule.ORIGINATOR_CONSENT
                if self.trust_model is TrustModel.INSTITUTIONAL_OVERSIGHT
                else self.reshare_rule
            ),
        )


@dataclass(frozen=True)
class DirectionTerms:
    """What an agreement allows in one direction, after the trust model is applied."""

    ceiling: Band
    categories: frozenset[Category]
    topics: frozenset[str]
    max_retention: timedelta
    raw_data_allowed: bool
    template_required: bool
    reshare_rule: ReshareRule


def check_markings(agreement: Agreement, roster: Roster) -> None:
    """Every band a pair may use needs a marking on both sides (SPEC §5.2).

    Raises ``ConfigurationError`` naming the party and band that lack a marking.
    """
    top = max(agreement.ceilings.values())
    for party in agreement.parties:
        member = roster.member(party)
        if member is None:
            raise ConfigurationError(f"{agreement.agreement_id}: party {party} is not in the roster")
        have = member.national_markings.bands()
        missing = [band.title for band in Band if band <= top and band not in have]
        if missing:
            raise ConfigurationError(
                f"{agreement.agreement_id} v{agreement.version} is invalid: {party} has no national "
                f"marking for {', '.join(missing)}"
            )
    for topic in agreement.topics:
        if topic not in roster.topics:
            raise ConfigurationError(f"{agreement.agreement_id}: topic {topic!r} is not in the vocabulary")


class AgreementBook:
    """The agreements a node holds: the newest verified version per pair (SPEC §6.2).

    Pure state: the caller persists the signed statements and replays ``accept`` on
    start-up. ``accept`` refuses older versions (rollback) and a different text under
    an already-held version.
    """

    def __init__(self) -> None:
        self._signed: dict[tuple[str, str], Signed] = {}
        self._agreements: dict[tuple[str, str], Agreement] = {}
        self._fully_signed: dict[tuple[str, str], bool] = {}

    def accept(self, signed: Signed, roster: Roster) -> Agreement:
        """Verify an agreement statement and hold it if it is the newest for its pair.

        A statement signed by only one party is held but is not in force (SPEC §6.2);
        countersigning means presenting one statement that carries both parties'
        signatures. Signatures by anyone but the two parties are ignored; no party's
        signature, an invalid one, or one by a revoked key raises ``SignatureError``.
        """
        agreement = parse_unverified(signed, PayloadType.AGREEMENT, Agreement)
        claimed = {s.keyid for s in signed.signatures}
        signed_by: list[str] = []
        revoked: list[str] = []
        for party in agreement.parties:
            member = roster.member(party)
            if member is None:
                raise ConfigurationError(f"{agreement.agreement_id}: party {party} is not in the roster")
            # SPEC §5.4.3: the party's key, or a retired one in its overlap; a revoked one refuses.
            keys = (member.signing_key, *(r.signing_key for r in roster.retired_keys if r.member_id == party))
            named = [key for key in keys if key.keyid in claimed]
            if any(roster.is_revoked(key.keyid) for key in named):
                revoked.append(party)
            elif named:
                signed_by.append(party)
        if revoked:  # SPEC §12.8: a compromised key can no longer bind its member to terms
            raise SignatureError(f"{agreement.agreement_id}: signed with the revoked key of {', '.join(revoked)}")
        if not signed_by:
            raise SignatureError(f"{agreement.agreement_id}: not signed by either party")
        for party in signed_by:
            roster.verify_member(signed, PayloadType.AGREEMENT, party)
        signers = signed_by
        check_markings(agreement, roster)
        pair = agreement.parties
        held = self._agreements.get(pair)
        if held is not None:
            if held.agreement_id != agreement.agreement_id:
                raise ConfigurationError(f"{pair[0]}–{pair[1]} already has agreement {held.agreement_id}")
            if agreement.version < held.version:
                raise RollbackError(f"{agreement.agreement_id} v{agreement.version} is older than held v{held.version}")
            if agreement.version == held.version:
                # SPEC §6.2 rule 4: "the same text" is the same payload bytes, which under the
                # canonical encoding (§4.4) is the same thing as equal parsed content.
                if signed.payload != self._signed[pair].payload:
                    raise RollbackError(f"{agreement.agreement_id} v{agreement.version} differs from the held text")
                if self._fully_signed[pair] or len(signers) < 2:
                    return held
        self._signed[pair] = signed
        self._agreements[pair] = agreement
        self._fully_signed[pair] = len(signers) == 2
        return agreement

    def get(self, a: str, b: str) -> Agreement | None:
        """The newest held version for the pair, in force or not."""
        return self._agreements.get(pair_key(a, b))

    def in_force(self, a: str, b: str, now: datetime) -> bool:
        """Both parties signed the held version and ``now`` is in its window (SPEC §6.2)."""
        pair = pair_key(a, b)
        agreement = self._agreements.get(pair)
        return agreement is not None and self._fully_signed[pair] and agreement.in_window(now)

    def signed(self, a: str, b: str) -> Signed | None:
        """The held statement for the pair, to persist or forward."""
        return self._signed.get(pair_key(a, b))

    def agreements(self) -> Iterable[Agreement]:
        """Every held agreement."""
        return self._agreements.values()


# --- amendments between the two parties (SPEC §6.4) ---------------------------------------


class AgreementProposal(Model):
    """One party proposes a new version of the pair's agreement to the other (SPEC §6.4).

    ``agreement`` is the proposed version as an AGREEMENT statement signed by the proposer
    alone: the counterparty countersigns those exact bytes (``countersign``), which makes
    the statement both parties signed, the format of SPEC §6.2. The proposal itself, a
    separate statement signed by the proposer, says to whom it is offered and which held
    version it would replace, so that an offer is never taken for a version either party
    holds: a one-party AGREEMENT statement handed to ``AgreementBook.accept`` would
    supersede the pair's agreement at once (SPEC §6.2), a proposal does not.
    """

    proposal_id: Hex32Id
    proposer: MemberId
    counterparty: MemberId
    agreement: Signed
    #: The version of the agreement the proposer held when it proposed (null: none held).
    replaces: Version | None
    note: str = Field(default="", max_length=1024)
    proposed_at: Timestamp

    @model_validator(mode="after")
    def _agreement_between_the_two(self) -> AgreementProposal:
        if self.agreement.payload_type != PayloadType.AGREEMENT.value:
            raise ValueError("the proposed agreement is not an AGREEMENT statement")
        try:
            proposed = Agreement.from_bytes(self.agreement.payload)
        except MalformedError as exc:
            raise ValueError(f"the proposed agreement does not parse: {exc}") from exc
        if set(proposed.parties) != {self.proposer, self.counterparty}:
            raise ValueError("the proposed agreement is not between the proposer and the counterparty")
        if self.replaces is not None and proposed.version <= self.replaces:
            raise ValueError("a proposal's version must be higher than the version it replaces")
        return self

    @property
    def proposed(self) -> Agreement:
        """The proposed version (parsed when the proposal was)."""
        return Agreement.from_bytes(self.agreement.payload)


class AgreementRejection(Model):
    """The counterparty declines a proposal, with its reason (SPEC §6.4)."""

    proposal_id: Hex32Id
    agreement_id: AgreementId
    version: Version
    #: SHA-256 of the proposed agreement's payload (SPEC §4.3).
    agreement_digest: Digest
    proposer: MemberId
    rejecter: MemberId
    reason: str = Field(min_length=1, max_length=1024)
    rejected_at: Timestamp


def _trusted_key(roster: Roster, member_id: str, what: str) -> Member:
    member = roster.trusted_signer(member_id)
    if member is None:
        raise SignatureError(f"{what} claims unknown or revoked member {member_id}")
    return member


def verify_proposal(signed: Signed, *, roster: Roster, counterparty: str, held: Agreement | None) -> AgreementProposal:
    """Verify a proposal addressed to ``counterparty`` against the version it holds (SPEC §6.4).

    ``MalformedError`` if it does not parse; ``SignatureError`` unless the proposer (a
    roster member with an unrevoked key) signed both the proposal and the proposed
    agreement; ``NoticeMismatchError`` if it is addressed to another member;
    ``ConfigurationError`` if the agreement breaks the marking rule (SPEC §5.2) or has
    another id than the one held for the pair; ``RollbackError`` unless its version is
    higher than ``held``'s.
    """
    proposal = parse_unverified(signed, PayloadType.AGREEMENT_PROPOSAL, AgreementProposal)
    proposer = _trusted_key(roster, proposal.proposer, "proposal")
    verify(signed, PayloadType.AGREEMENT_PROPOSAL, [proposer.signing_key])
    verify(proposal.agreement, PayloadType.AGREEMENT, [proposer.signing_key])
    if proposal.counterparty != counterparty:
        raise NoticeMismatchError(f"proposal {proposal.proposal_id} is addressed to {proposal.counterparty}")
    _check_amendment(proposal.proposed, roster, held)
    return proposal


def _check_amendment(proposed: Agreement, roster: Roster, held: Agreement | None) -> None:
    check_markings(proposed, roster)
    if held is None:
        return
    if held.agreement_id != proposed.agreement_id:
        raise ConfigurationError(
            f"{proposed.parties[0]}–{proposed.parties[1]} holds agreement {held.agreement_id}, "
            f"not {proposed.agreement_id}"
        )
    if proposed.version <= held.version:
        raise RollbackError(f"{proposed.agreement_id} v{proposed.version} is not newer than held v{held.version}")


def countersign(
    proposal: AgreementProposal, *, key: SigningKey, me: str, roster: Roster, held: Agreement | None
) -> Signed:
    """The counterparty's countersignature: the proposed statement signed by both (SPEC §6.2, §6.4).

    Checks again that the proposal is addressed to ``me`` and newer than ``held`` (the
    pair may have moved on since it arrived), then adds ``key``'s signatures over the
    exact payload bytes the proposer signed.
    """
    if proposal.counterparty != me:
        raise NoticeMismatchError(f"proposal {proposal.proposal_id} is addressed to {proposal.counterparty}")
    _check_amendment(proposal.proposed, roster, held)
    return cosign(proposal.agreement, PayloadType.AGREEMENT, [key])


def verify_rejection(signed: Signed, *, roster: Roster, proposal: AgreementProposal) -> AgreementRejection:
    """Verify the counterparty's rejection of ``proposal`` (SPEC §6.4).

    ``MalformedError`` if it does not parse; ``SignatureError`` unless the proposal's
    counterparty signed it; ``NoticeMismatchError`` if it names another proposal, version
    or text.
    """
    rejection = parse_unverified(signed, PayloadType.AGREEMENT_REJECTION, AgreementRejection)
    if rejection.rejecter != proposal.counterparty:
        raise SignatureError(f"rejection is signed by {rejection.rejecter}, not {proposal.counterparty}")
    rejecter = _trusted_key(roster, rejection.rejecter, "rejection")
    verify(signed, PayloadType.AGREEMENT_REJECTION, [rejecter.signing_key])
    proposed = proposal.proposed
    bound = (rejection.proposal_id, rejection.agreement_id, rejection.version, rejection.agreement_digest)
    if bound != (proposal.proposal_id, proposed.agreement_id, proposed.version, proposal.agreement.digest) or (
        rejection.proposer != proposal.proposer
    ):
        raise NoticeMismatchError(f"rejection of {rejection.proposal_id} is not bound to this proposal")
    return rejection
