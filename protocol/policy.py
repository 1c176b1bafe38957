"""The policy engine: pure egress and ingress decisions (SPEC §9).

Every check is a row of the policy table (SPEC §9.5) and returns a frozen
``Decision`` with a stable reason code. The receiver re-checks everything the sender
checked and never trusts the sender's decision (SPEC §9.1). What the core cannot know
without storage (replays, recalls, revoked grants) comes in as predicates.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from protocol.agreement import AgreementBook, ReshareRule
from protocol.consent import ConsentGrant, check_conditions
from protocol.encoding import require_aware
from protocol.envelope import BatchKeys, Envelope, EnvelopeHeader, OriginAttestation, decrypt_exact
from protocol.errors import MalformedError, OpenError, SignatureError
from protocol.item import ContentKind, RawData, ReportTemplate
from protocol.keys import HpkeKeyPair, VerifiedRoots
from protocol.retention import retention_passed
from protocol.roster import Member, Roster
from protocol.statements import PayloadType, Signed, parse_unverified

__all__ = [
    "INGRESS_ONLY",
    "RULES",
    "Decision",
    "Direction",
    "Fault",
    "IngressResult",
    "Opened",
    "PolicyContext",
    "Reason",
    "TimeWindow",
    "Transfer",
    "check_egress",
    "check_ingress",
    "check_transfers",
    "equivocation_detail",
    "open_envelope",
]


class Reason(StrEnum):
    """Stable reason codes shared by the audit log, the CLI and the tests (SPEC §9.5)."""

    ALLOWED = "ALLOWED"
    NO_AGREEMENT = "NO_AGREEMENT"
    AGREEMENT_NOT_IN_FORCE = "AGREEMENT_NOT_IN_FORCE"
    BAND_ABOVE_CEILING = "BAND_ABOVE_CEILING"
    CATEGORY_NOT_COVERED = "CATEGORY_NOT_COVERED"
    TOPIC_NOT_COVERED = "TOPIC_NOT_COVERED"
    RAW_DATA_NOT_ALLOWED = "RAW_DATA_NOT_ALLOWED"
    TEMPLATE_REQUIRED = "TEMPLATE_REQUIRED"
    RETENTION_EXCEEDS_AGREEMENT = "RETENTION_EXCEEDS_AGREEMENT"
    RETENTION_EXPIRED = "RETENTION_EXPIRED"
    NOT_RELEASABLE = "NOT_RELEASABLE"
    THIRD_PARTY_WITHOUT_CONSENT = "THIRD_PARTY_WITHOUT_CONSENT"
    CONSENT_INVALID = "CONSENT_INVALID"
    CONSENT_EXPIRED = "CONSENT_EXPIRED"
    CONSENT_REVOKED = "CONSENT_REVOKED"
    CONSENT_WRONG_GRANTEE = "CONSENT_WRONG_GRANTEE"
    CONSENT_NOT_TRANSFERABLE = "CONSENT_NOT_TRANSFERABLE"
    CONSENT_CONDITION_UNMET = "CONSENT_CONDITION_UNMET"
    ORIGIN_SIGNATURE_INVALID = "ORIGIN_SIGNATURE_INVALID"
    SENDER_SIGNATURE_INVALID = "SENDER_SIGNATURE_INVALID"
    SENDER_IDENTITY_MISMATCH = "SENDER_IDENTITY_MISMATCH"
    UNKNOWN_MEMBER = "UNKNOWN_MEMBER"
    KEY_REVOKED = "KEY_REVOKED"
    TIMESTAMP_OUT_OF_WINDOW = "TIMESTAMP_OUT_OF_WINDOW"
    REPLAY = "REPLAY"
    RECALLED = "RECALLED"
    ENVELOPE_MALFORMED = "ENVELOPE_MALFORMED"
    NOT_ADDRESSED_TO_RECEIVER = "NOT_ADDRESSED_TO_RECEIVER"
    LABEL_INVALID = "LABEL_INVALID"
    ENVELOPE_UNOPENABLE = "ENVELOPE_UNOPENABLE"
    EQUIVOCATION = "EQUIVOCATION"

    def fault(self, direction: Direction) -> Fault | None:
        """Who caused a refusal with this reason, in that direction (SPEC §9.5 "At fault").

        None for ``ALLOWED``. On egress the local caller asked for a forbidden transfer; on
        ingress the sender, the TLS peer, the originator or the network is at fault. A reason
        only ingress gives (``INGRESS_ONLY``) has no egress fault: asking is a ``ValueError``.
        """
        if self is Reason.ALLOWED:
            return None
        if direction is Direction.INGRESS:
            return Fault.REMOTE
        if self in INGRESS_ONLY:
            raise ValueError(f"{self.value} is given only on ingress")
        return Fault.LOCAL


class Direction(StrEnum):
    """Which side's decision: the sender's before sealing, or the receiver's (SPEC §9.1)."""

    EGRESS = "egress"
    INGRESS = "ingress"


class Fault(StrEnum):
    """Who is at fault for a refusal (SPEC §9.5), as errors say it (SPEC §3.4)."""

    #: This side asked for a transfer the protocol or an agreement forbids.
    LOCAL = "local"
    #: Another party: the sender, the TLS peer, the originator, or the network.
    REMOTE = "remote"


#: Reasons only the receiver's verification of an envelope gives (SPEC §9.2, §9.5).
INGRESS_ONLY: frozenset[Reason] = frozenset(
    {
        Reason.ENVELOPE_MALFORMED,
        Reason.SENDER_IDENTITY_MISMATCH,
        Reason.KEY_REVOKED,
        Reason.SENDER_SIGNATURE_INVALID,
        Reason.NOT_ADDRESSED_TO_RECEIVER,
        Reason.TIMESTAMP_OUT_OF_WINDOW,
        Reason.REPLAY,
        Reason.ORIGIN_SIGNATURE_INVALID,
        Reason.EQUIVOCATION,
        Reason.LABEL_INVALID,
        Reason.ENVELOPE_UNOPENABLE,
    }
)


#: The SPEC section of the rule behind each reason code (SPEC §9.5).
RULES: dict[Reason, str] = {
    Reason.ALLOWED: "§9.3",
    Reason.ENVELOPE_MALFORMED: "§9.2.1",
    Reason.UNKNOWN_MEMBER: "§9.2.2",
    Reason.SENDER_IDENTITY_MISMATCH: "§9.2.3",
    Reason.KEY_REVOKED: "§9.2.4",
    Reason.SENDER_SIGNATURE_INVALID: "§9.2.5",
    Reason.NOT_ADDRESSED_TO_RECEIVER: "§9.2.6",
    Reason.TIMESTAMP_OUT_OF_WINDOW: "§9.2.7",
    Reason.REPLAY: "§9.2.8",
    Reason.ORIGIN_SIGNATURE_INVALID: "§9.2.9",
    Reason.EQUIVOCATION: "§9.2.9",
    Reason.LABEL_INVALID: "§9.2.10",
    Reason.ENVELOPE_UNOPENABLE: "§9.2.11",
    Reason.RECALLED: "§9.3.1",
    Reason.NO_AGREEMENT: "§9.3.2",
    Reason.AGREEMENT_NOT_IN_FORCE: "§9.3.3",
    Reason.BAND_ABOVE_CEILING: "§9.3.4",
    Reason.CATEGORY_NOT_COVERED: "§9.3.5",
    Reason.TOPIC_NOT_COVERED: "§9.3.6",
    Reason.RAW_DATA_NOT_ALLOWED: "§9.3.7",
    Reason.TEMPLATE_REQUIRED: "§9.3.8",
    Reason.RETENTION_EXCEEDS_AGREEMENT: "§9.3.9",
    Reason.RETENTION_EXPIRED: "§9.3.9",
    Reason.NOT_RELEASABLE: "§9.3.10",
    Reason.THIRD_PARTY_WITHOUT_CONSENT: "§9.4.2",
    Reason.CONSENT_INVALID: "§9.4.2",
    Reason.CONSENT_REVOKED: "§9.4.2",
    Reason.CONSENT_EXPIRED: "§9.4.2",
    Reason.CONSENT_NOT_TRANSFERABLE: "§9.4.2",
    Reason.CONSENT_WRONG_GRANTEE: "§9.4.2",
    Reason.CONSENT_CONDITION_UNMET: "§9.4.4",
}


@dataclass(frozen=True)
class Decision:
    """The value every policy check returns."""

    allowed: bool
    reason: Reason
    rule: str
    detail: str

    @classmethod
    def allow(cls, detail: str) -> Decision:
        """An allowed transfer."""
        return cls(True, Reason.ALLOWED, RULES[Reason.ALLOWED], detail)

    def fault(self, direction: Direction) -> Fault | None:
        """Who is at fault for this decision, taken in ``direction`` (SPEC §9.5)."""
        return self.reason.fault(direction)

    @classmethod
    def refuse(cls, reason: Reason, detail: str) -> Decision:
        """A refusal with its reason code and the rule behind it."""
        if reason is Reason.ALLOWED:
            raise ValueError("a refusal needs a refusal reason")
        return cls(False, reason, RULES[reason], detail)


@dataclass(frozen=True)
class Transfer:
    """One item version moving from ``sender`` to ``recipient``."""

    sender: str
    recipient: str
    attestation: OriginAttestation
    origin_digest: str
    consents: tuple[Signed, ...]


@dataclass(frozen=True)
class PolicyContext:
    """The state a decision depends on, passed in so the core needs no storage."""

    roster: Roster
    agreements: AgreementBook
    now: datetime
    is_recalled: Callable[[str, int], bool]
    is_grant_revoked: Callable[[str], bool]

    def __post_init__(self) -> None:
        require_aware(self.now)  # SPEC §3.3: every decision is reproducible from aware inputs


@dataclass(frozen=True)
class TimeWindow:
    """How far an envelope's ``created_at`` may be from ``now`` (SPEC §9.2.7). No defaults."""

    max_age: timedelta
    max_future_skew: timedelta


def check_egress(transfer: Transfer, ctx: PolicyContext) -> Decision:
    """The sender's decision before sealing (SPEC §9.3, §9.4)."""
    return _check_transfer(transfer, ctx)


def _check_transfer(t: Transfer, ctx: PolicyContext) -> Decision:
    """The checks both sides make (SPEC §9.3): the receiver repeats all of them."""
    label = t.attestation.label
    for party in (t.sender, t.recipient):
        if ctx.roster.member(party) is None:
            return Decision.refuse(Reason.UNKNOWN_MEMBER, f"{party} is not in the roster")
    # §9.3.1
    if ctx.is_recalled(t.attestation.item_id, t.attestation.item_version):
        return Decision.refuse(Reason.RECALLED, f"{t.attestation.item_id} v{label.item_version} was recalled")
    # §9.3.2, §9.3.3
    agreement = ctx.agreements.get(t.sender, t.recipient)
    if agreement is None:
        return Decision.refuse(Reason.NO_AGREEMENT, f"no agreement between {t.sender} and {t.recipient}")
    if not ctx.agreements.in_force(t.sender, t.recipient, ctx.now):
        return Decision.refuse(
            Reason.AGREEMENT_NOT_IN_FORCE,
            f"{agreement.agreement_id} v{agreement.version} is not signed by both parties or not in its window",
        )
    terms = agreement.terms(t.sender, t.recipient)
    under = f"{agreement.agreement_id} v{agreement.version}"
    # §9.3.4 – §9.3.9
    if label.band > terms.ceiling:
        return Decision.refuse(
            Reason.BAND_ABOVE_CEILING,
            f"{label.band.title} is above the {terms.ceiling.title} ceiling {t.sender}→{t.recipient} of {under}",
        )
    if label.category not in terms.categories:
        return Decision.refuse(Reason.CATEGORY_NOT_COVERED, f"{label.category.value} is not covered by {under}")
    uncovered = sorted(set(label.topics) - terms.topics)
    if uncovered:
        return Decision.refuse(Reason.TOPIC_NOT_COVERED, f"{', '.join(uncovered)} not covered by {under}")
    # §9.3.8 before §9.3.7: a model that requires the template also forbids raw data, so the
    # other order would make TEMPLATE_REQUIRED unreachable.
    if terms.template_required and t.attestation.content_kind is not ContentKind.REPORT:
        return Decision.refuse(Reason.TEMPLATE_REQUIRED, f"{under} requires the report template")
    if t.attestation.content_kind is ContentKind.RAW and not terms.raw_data_allowed:
        return Decision.refuse(Reason.RAW_DATA_NOT_ALLOWED, f"{under} does not allow raw data {t.sender}→{t.recipient}")
    # §9.3.9: an item whose retention has passed goes nowhere; its holders purge it (§11.13).
    if retention_passed(label.retain_until, ctx.now):
        return Decision.refuse(
            Reason.RETENTION_EXPIRED,
            f"retention of {t.attestation.item_id} v{label.item_version} ended {label.retain_until}",
        )
    if label.retain_until > ctx.now + terms.max_retention:
        return Decision.refuse(
            Reason.RETENTION_EXCEEDS_AGREEMENT,
            f"retain-until {label.retain_until:%Y-%m-%d} exceeds {terms.max_retention.days} days of {under}",
        )
    release = _check_release(t, ctx)
    if release is not None:
        return release
    return Decision.allow(f"{t.sender}→{t.recipient} under {under}")


def _check_release(t: Transfer, ctx: PolicyContext) -> Decision | None:
    """Release list and the re-sharing ban (SPEC §9.3.10, §9.4). None means allowed."""
    label = t.attestation.label
    if t.sender == label.originator:
        if t.recipient not in label.releasable_to:
            return Decision.refuse(Reason.NOT_RELEASABLE, f"{t.recipient} is not on the release list")
        return None
    if t.recipient == label.originator:
        return None  # returning an item to its originator reaches no third party
    if not t.consents:
        if not label.originator_controlled and _label_decides(t, ctx):
            if t.recipient in label.releasable_to:
                return None
            return Decision.refuse(Reason.NOT_RELEASABLE, f"{t.recipient} is not on the release list")
        return Decision.refuse(
            Reason.THIRD_PARTY_WITHOUT_CONSENT,
            f"{t.recipient} is a third party for {label.originator}'s item and no consent is carried",
        )
    return _check_chain(t, ctx)


def _label_decides(t: Transfer, ctx: PolicyContext) -> bool:
    # The originator's own agreement with the sender says whether its label may relax the ban.
    originator = t.attestation.label.originator
    agreement = ctx.agreements.get(originator, t.sender)
    if agreement is None or not ctx.agreements.in_force(originator, t.sender, ctx.now):
        return False
    return agreement.terms(originator, t.sender).reshare_rule is ReshareRule.LABEL_DECIDES


def _check_chain(t: Transfer, ctx: PolicyContext) -> Decision | None:
    """A chain of grants rooted at the originator (SPEC §9.4.2). None means valid."""
    att = t.attestation
    previous: ConsentGrant | None = None
    grants: list[ConsentGrant] = []
    for position, signed in enumerate(t.consents, start=1):
        try:
            grant = parse_unverified(signed, PayloadType.CONSENT_GRANT, ConsentGrant)
        except MalformedError as exc:
            return Decision.refuse(Reason.CONSENT_INVALID, f"grant {position}: {exc}")
        if (grant.item_id, grant.item_version, grant.origin_digest) != (
            att.item_id,
            att.item_version,
            t.origin_digest,
        ):
            return Decision.refuse(Reason.CONSENT_INVALID, f"grant {position} is for another item version")
        if previous is not None and not previous.transferable:
            return Decision.refuse(
                Reason.CONSENT_NOT_TRANSFERABLE,
                f"grant {position - 1} does not let {previous.grantee} pass it on",
            )
        expected_grantor = att.label.originator if previous is None else previous.grantee
        if grant.grantor != expected_grantor or (previous is not None and grant.holder != grant.grantor):
            return Decision.refuse(
                Reason.CONSENT_INVALID,
                f"grant {position} is signed by {grant.grantor}, not {expected_grantor}",
            )
        grantor = ctx.roster.trusted_signer(grant.grantor)
        if grantor is None or ctx.roster.signed_with_revoked_key(signed):
            return Decision.refuse(Reason.CONSENT_INVALID, f"grant {position}: grantor key unknown or revoked")
        try:  # SPEC §5.4.3: the grantor's key, or a retired one in its overlap
            ctx.roster.verify_member(signed, PayloadType.CONSENT_GRANT, grantor.member_id)
        except SignatureError:
            return Decision.refuse(Reason.CONSENT_INVALID, f"grant {position}: signature does not verify")
        if ctx.is_grant_revoked(grant.grant_id):
            return Decision.refuse(Reason.CONSENT_REVOKED, f"grant {grant.grant_id} was revoked")
        if grant.expires_at <= ctx.now:
            return Decision.refuse(Reason.CONSENT_EXPIRED, f"grant {grant.grant_id} expired {grant.expires_at}")
        previous = grant
        grants.append(grant)
    assert previous is not None  # _check_release only calls with a non-empty chain
    # §9.4.4: every grant's conditions bind every later link of the chain.
    broken = check_conditions(grants, ctx.now)
    if broken is not None:
        return Decision.refuse(Reason.CONSENT_CONDITION_UNMET, broken)
    if previous.holder == t.sender and previous.grantee == t.recipient:
        return None
    if previous.grantee == t.sender:
        if not previous.transferable:
            return Decision.refuse(
                Reason.CONSENT_NOT_TRANSFERABLE,
                f"{t.sender}'s grant does not let it pass the item on",
            )
        return Decision.refuse(
            Reason.THIRD_PARTY_WITHOUT_CONSENT,
            f"{t.sender} carries no grant of its own for {t.recipient}",
        )
    return Decision.refuse(
        Reason.CONSENT_WRONG_GRANTEE,
        f"grant lets {previous.holder} pass to {previous.grantee}, not {t.sender} to {t.recipient}",
    )


@dataclass(frozen=True)
class IngressResult:
    """The receiver's decision and, where they could be established, what it verified."""

    decision: Decision
    header: EnvelopeHeader | None
    attestation: OriginAttestation | None
    item: ReportTemplate | RawData | None
    #: The exact plaintext the originator attested, when the envelope was opened.
    plaintext: bytes | None = None

    @property
    def fault(self) -> Fault | None:
        """Who is at fault for a refusal on ingress: always another party (SPEC §9.5)."""
        return self.decision.fault(Direction.INGRESS)


def check_ingress(
    envelope: Envelope,
    *,
    receiver: str,
    receiver_keys: HpkeKeyPair,
    peer_tls_identity: str,
    peer_fingerprint: str | None,
    ctx: PolicyContext,
    window: TimeWindow,
    is_replay: Callable[[EnvelopeHeader, str], bool],
    roots: VerifiedRoots | None = None,
    batch_keys: BatchKeys | None = None,
    held_origin: Callable[[str, int], str | None] | None = None,
    previous_keys: Sequence[HpkeKeyPair] = (),
) -> IngressResult:
    """Verify, decide and open an incoming envelope (SPEC §9.2, then §9.3–9.4).

    ``is_replay(header, envelope_digest)`` says whether this sender's nonce or envelope id
    was seen before with a different envelope. Identical re-delivery is the node's
    business (it returns the stored receipt) and never reaches this function.
    ``held_origin(item_id, item_version)`` is the origin digest under which the receiver
    already holds that item version, or None (SPEC §9.2.9 step 7; None: nothing held).
    ``roots`` remembers batch roots already verified (SPEC §4.6), ``batch_keys`` batch
    keys already opened (SPEC §8.2), ``previous_keys`` the receiver's other HPKE key
    pairs during a rotation (SPEC §5.4.4).
    """
    return _verify_envelope(
        envelope,
        receiver=receiver,
        receiver_keys=(receiver_keys, *previous_keys),
        roster=ctx.roster,
        roots=roots,
        batch_keys=batch_keys,
        ingress=_Ingress(peer_tls_identity, peer_fingerprint, ctx, window, is_replay, held_origin),
    )


@dataclass(frozen=True)
class Opened:
    """What ``open_envelope`` returns: the verified statements and the content."""

    header: EnvelopeHeader
    attestation: OriginAttestation
    item: ReportTemplate | RawData


def open_envelope(
    envelope: Envelope,
    *,
    recipient_id: str,
    recipient_keys: HpkeKeyPair,
    roster: Roster,
    roots: VerifiedRoots | None = None,
    batch_keys: BatchKeys | None = None,
) -> Opened:
    """Verify and open an envelope addressed to ``recipient_id``, without policy (SPEC §8.6).

    The verification steps of ``check_ingress``, the same code in the same order, without
    the transport identity, the time window, replay and the transfer checks. A node MUST
    NOT accept items with it: it MUST run ``check_ingress``. Every failure raises the same
    opaque ``OpenError``.
    """
    result = _verify_envelope(
        envelope,
        receiver=recipient_id,
        receiver_keys=(recipient_keys,),
        roster=roster,
        roots=roots,
        batch_keys=batch_keys,
        ingress=None,
    )
    if result.item is None or result.header is None or result.attestation is None:
        raise OpenError
    return Opened(header=result.header, attestation=result.attestation, item=result.item)


@dataclass(frozen=True)
class _Ingress:
    """What a receiver's ingress decision checks beyond opening (SPEC §9.2.3, §9.2.7, §9.2.8, §9.3)."""

    peer_tls_identity: str
    peer_fingerprint: str | None
    ctx: PolicyContext
    window: TimeWindow
    is_replay: Callable[[EnvelopeHeader, str], bool]
    held_origin: Callable[[str, int], str | None] | None = None


def _verify_envelope(
    envelope: Envelope,
    *,
    receiver: str,
    receiver_keys: tuple[HpkeKeyPair, ...],
    roster: Roster,
    roots: VerifiedRoots | None,
    batch_keys: BatchKeys | None,
    ingress: _Ingress | None,
) -> IngressResult:
    """The steps of SPEC §9.2 in order; with ``ingress`` None, only those of opening (§8.6).

    Never raises: every failure is a refusal with its reason code (SPEC §9.5).
    """
    header: EnvelopeHeader | None = None
    attestation: OriginAttestation | None = None

    def refuse(reason: Reason, detail: str) -> IngressResult:
        return IngressResult(Decision.refuse(reason, detail), header, attestation, None)

    # §9.2.1: only to learn the claimed sender; nothing is acted on before §9.2.5.
    try:
        claimed = parse_unverified(envelope.header, PayloadType.HEADER, EnvelopeHeader)
    except MalformedError as exc:
        return refuse(Reason.ENVELOPE_MALFORMED, str(exc))
    sender = roster.member(claimed.sender)
    if sender is None:  # §9.2.2
        return refuse(Reason.UNKNOWN_MEMBER, f"sender {claimed.sender} is not in the roster")
    # §9.2.3: the TLS peer must be the member that signed.
    if ingress is not None and not _is_transport_peer(sender, ingress):
        return refuse(
            Reason.SENDER_IDENTITY_MISMATCH,
            f"TLS peer {ingress.peer_tls_identity} is not {claimed.sender} ({sender.tls_identity})",
        )
    # §9.2.4: the sender's key, or the key the header names, is revoked.
    if roster.is_revoked(sender.signing_key.keyid) or roster.signed_with_revoked_key(envelope.header):
        return refuse(Reason.KEY_REVOKED, f"{claimed.sender}'s signing key is revoked")
    try:  # §9.2.5, with a retired key in its overlap (§5.4.3)
        roster.verify_member(envelope.header, PayloadType.HEADER, sender.member_id, roots)
    except SignatureError:
        return refuse(Reason.SENDER_SIGNATURE_INVALID, f"header signature of {claimed.sender} does not verify")
    header = claimed
    if header.recipient != receiver:  # §9.2.6
        return refuse(Reason.NOT_ADDRESSED_TO_RECEIVER, f"addressed to {header.recipient}, not {receiver}")
    if ingress is not None:
        now, window = ingress.ctx.now, ingress.window
        if not (now - window.max_age <= header.created_at <= now + window.max_future_skew):  # §9.2.7
            return refuse(Reason.TIMESTAMP_OUT_OF_WINDOW, f"created {header.created_at}, now {now}")
        if ingress.is_replay(header, envelope.digest):  # §9.2.8
            return refuse(Reason.REPLAY, f"nonce or envelope id of {header.sender} seen before")
    # §9.2.9 step 1: the signed header binds the consents actually carried.
    if header.consent_refs != tuple(c.digest for c in envelope.consents):
        return refuse(Reason.SENDER_SIGNATURE_INVALID, "carried consents are not the ones the sender signed")
    # §9.2.9 steps 2-6: the origin attestation.
    origin_digest = envelope.origin.digest
    if header.origin_digest != origin_digest:
        return refuse(Reason.ORIGIN_SIGNATURE_INVALID, "origin attestation is not the one the sender signed")
    try:
        claimed_origin = parse_unverified(envelope.origin, PayloadType.ORIGIN, OriginAttestation)
    except MalformedError as exc:
        return refuse(Reason.ENVELOPE_MALFORMED, str(exc))
    originator = roster.member(claimed_origin.originator)
    if originator is None:
        return refuse(Reason.UNKNOWN_MEMBER, f"originator {claimed_origin.originator} is not in the roster")
    if roster.is_revoked(originator.signing_key.keyid) or roster.signed_with_revoked_key(envelope.origin):
        return refuse(Reason.KEY_REVOKED, f"{claimed_origin.originator}'s signing key is revoked")
    try:
        roster.verify_member(envelope.origin, PayloadType.ORIGIN, originator.member_id, roots)
    except SignatureError:
        return refuse(
            Reason.ORIGIN_SIGNATURE_INVALID,
            f"origin signature of {claimed_origin.originator} does not verify",
        )
    attestation = claimed_origin
    if ingress is not None and ingress.held_origin is not None:  # §9.2.9 step 7
        held = ingress.held_origin(attestation.item_id, attestation.item_version)
        if held is not None and held != origin_digest:
            return refuse(Reason.EQUIVOCATION, equivocation_detail(attestation, held, origin_digest))
    label_refusal = _check_label(header, attestation, originator, roster)  # §9.2.10 steps 1-4
    if label_refusal is not None:
        return refuse(*label_refusal)
    if ingress is None:
        decision = Decision.allow(f"envelope {header.envelope_id} verified for {receiver}")
    else:
        decision = _check_policy(header, attestation, envelope, receiver, ingress.ctx)  # §9.2.10 steps 5-6
        if not decision.allowed:
            return IngressResult(decision, header, attestation, None)
    try:  # §9.2.11: only now is anything decrypted.
        item, plaintext = decrypt_exact(envelope, header, attestation, receiver_keys[0], batch_keys, receiver_keys[1:])
    except OpenError:
        return refuse(Reason.ENVELOPE_UNOPENABLE, "envelope could not be opened")
    return IngressResult(decision, header, attestation, item, plaintext)


def equivocation_detail(attestation: OriginAttestation, held: str, carried: str) -> str:
    """Why an EQUIVOCATION refusal was given: both origin digests, the evidence (SPEC §9.2.9 step 7)."""
    return (
        f"{attestation.originator} attested {attestation.item_id} v{attestation.item_version} twice: "
        f"held under origin digest {held}, this envelope carries {carried}"
    )


def _is_transport_peer(sender: Member, ingress: _Ingress) -> bool:
    """SPEC §9.2.3: the TLS identity, and the fingerprint where the roster gives one."""
    fingerprint_ok = sender.tls_fingerprint is None or sender.tls_fingerprint == ingress.peer_fingerprint
    return ingress.peer_tls_identity == sender.tls_identity and fingerprint_ok


def _check_label(
    header: EnvelopeHeader, attestation: OriginAttestation, originator: Member, roster: Roster
) -> tuple[Reason, str] | None:
    """SPEC §9.2.10 steps 1-4: the label is consistent with the header and the originator's markings."""
    label = attestation.label
    if (attestation.item_id, attestation.item_version) != (header.item_id, header.item_version):
        return Reason.LABEL_INVALID, "header and origin attestation name different item versions"
    if label.originator != attestation.originator or label.item_version != attestation.item_version:
        return Reason.LABEL_INVALID, "label does not match its attestation"
    # SPEC §5.2: exact code points.
    if originator.national_markings.marking(label.band) != label.originator_marking:
        return (
            Reason.LABEL_INVALID,
            f"{label.originator_marking!r} is not {label.originator}'s marking for {label.band.title}",
        )
    unknown_topics = sorted(set(label.topics) - set(roster.topics))
    if unknown_topics:
        return Reason.TOPIC_NOT_COVERED, f"topics not in the federation vocabulary: {', '.join(unknown_topics)}"
    return None


def _check_policy(
    header: EnvelopeHeader, attestation: OriginAttestation, envelope: Envelope, receiver: str, ctx: PolicyContext
) -> Decision:
    """SPEC §9.2.10 steps 5-6: the agreement the sender used, then the transfer checks of §9.3-9.4."""
    agreement = ctx.agreements.get(header.sender, receiver)
    if agreement is not None and (header.agreement_id, header.agreement_version) != (
        agreement.agreement_id,
        agreement.version,
    ):  # the one held now: a superseding version is effective at once (SPEC §6.2)
        return Decision.refuse(
            Reason.AGREEMENT_NOT_IN_FORCE,
            f"sent under {header.agreement_id} v{header.agreement_version}; "
            f"in force: {agreement.agreement_id} v{agreement.version}",
        )
    transfer = Transfer(
        sender=header.sender,
        recipient=receiver,
        attestation=attestation,
        origin_digest=envelope.origin.digest,
        consents=envelope.consents,
    )
    return _check_transfer(transfer, ctx)


def check_transfers(transfers: Sequence[Transfer], ctx: PolicyContext) -> list[Decision]:
    """Egress decisions for a distribution: one per recipient, each under its own pair (SPEC §9.6)."""
    return [check_egress(t, ctx) for t in transfers]
