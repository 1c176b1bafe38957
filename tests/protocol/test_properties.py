"""Property tests of the protocol core (hypothesis).

(a) No sequence of transfers and re-shares delivers an item to a member without a valid
    consent chain from its originator.
(b) Tightening an agreement never allows what the looser one refused.
(c) Changing any single byte of a label, header, signature or ciphertext makes verify and
    open fail.
(d) seal/open round-trips for every suite.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from support import (
    NOW,
    Ctx,
    agreement,
    book,
    flip,
    grant,
    hpke_keys,
    ingress,
    label,
    make_envelope,
    make_origin,
    member,
    report,
    roster,
    signing_key,
    tls,
    with_payload,
    with_signature,
)

from protocol.agreement import Agreement, ReshareRule, TrustModel
from protocol.classification import Band
from protocol.envelope import Envelope, OriginAttestation, Suite, seal
from protocol.errors import OpenError
from protocol.item import RawData, ReportTemplate
from protocol.label import DEFAULT_TOPICS, Category, InformationCredibility, SourceReliability
from protocol.policy import Reason, Transfer, check_egress, open_envelope
from protocol.statements import Signed

MEMBERS = ("KZ", "TR", "AZ", "UZ")
ORIGINATOR = "KZ"
FAST = settings(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


# --- (a) no delivery without a consent chain -------------------------------------------------


@dataclass(frozen=True)
class GrantRecord:
    """A grant as the model made it: what it claims, and who really signed it."""

    signed: Signed
    grant_id: str
    signer: str
    grantor: str
    holder: str
    grantee: str
    transferable: bool
    expired: bool
    for_this_item: bool


def legitimate_chain(chain: tuple[GrantRecord, ...], sender: str, recipient: str, revoked: set[str]) -> bool:
    """The model's own idea of a valid chain, independent of ``protocol.policy``."""
    if not chain:
        return False
    for i, g in enumerate(chain):
        expected = ORIGINATOR if i == 0 else chain[i - 1].grantee
        if g.signer != expected or g.grantor != expected:
            return False
        if i > 0 and not chain[i - 1].transferable:
            return False
        if g.expired or g.grant_id in revoked or not g.for_this_item:
            return False
    return chain[-1].holder == sender and chain[-1].grantee == recipient


members_st = st.sampled_from(MEMBERS)
mostly_false = st.sampled_from((False, False, False, True))
rarely = st.sampled_from((False,) * 7 + (True,))
DEFECTS = ("none", "none", "none", "wrong signer", "self-appointed grantor", "any holder", "expired", "other item")


@settings(FAST, max_examples=200)
@given(
    data=st.data(),
    releasable=st.sets(st.sampled_from(MEMBERS[1:]), min_size=1),
    controlled=st.booleans(),
    rules=st.lists(st.sampled_from(ReshareRule), min_size=6, max_size=6),
)
def test_no_delivery_without_consent_chain(
    data: st.DataObject, releasable: set[str], controlled: bool, rules: list[ReshareRule]
) -> None:
    pairs = [(a, b) for i, a in enumerate(MEMBERS) for b in MEMBERS[i + 1 :]]
    agreements = book(*(agreement(a, b, reshare_rule=r) for (a, b), r in zip(pairs, rules, strict=True)))
    state = Ctx()
    ctx = state.policy(agreements)
    origin, plaintext = make_origin(
        label(ORIGINATOR, releasable_to=tuple(releasable), originator_controlled=controlled)
    )
    other_item, _ = make_origin(item_id="item-2")

    holders = {ORIGINATOR}
    chains: list[tuple[GrantRecord, ...]] = []
    revoked: set[str] = set()
    recalled = False
    counter = 0

    def new_grant(grantor: str, holder: str, grantee: str) -> GrantRecord:
        """An honest grant by ``grantor``, or one with a single defect an attacker could add."""
        nonlocal counter
        counter += 1
        defect = data.draw(st.sampled_from(DEFECTS), "defect")
        signer = grantor
        if defect == "wrong signer":
            signer = data.draw(st.sampled_from([m for m in MEMBERS if m != grantor]), "signer")
        elif defect == "self-appointed grantor":
            grantor = signer = data.draw(st.sampled_from([m for m in MEMBERS if m != grantor]), "grantor")
        elif defect == "any holder":
            holder = data.draw(members_st, "holder")
        grant_id = f"{counter:032x}"
        record = GrantRecord(
            signed=grant(
                other_item if defect == "other item" else origin,
                grantor=grantor,
                holder=holder,
                grantee=grantee,
                transferable=(transferable := data.draw(st.booleans(), "transferable")),
                expires_at=NOW - timedelta(hours=1) if defect == "expired" else NOW + timedelta(days=1),
                grant_id=grant_id,
                signer=signer,
            ),
            grant_id=grant_id,
            signer=signer,
            grantor=grantor,
            holder=holder,
            grantee=grantee,
            transferable=transferable,
            expired=defect == "expired",
            for_this_item=defect != "other item",
        )
        event(f"grant: {defect}")
        return record

    def label_decides(sender: str, recipient: str) -> bool:
        ag = agreements.get(ORIGINATOR, sender)
        return (
            not controlled
            and recipient in releasable
            and ag is not None
            and ag.terms(ORIGINATOR, sender).reshare_rule is ReshareRule.LABEL_DECIDES
        )

    # Start from one honest direct delivery, so that re-shares are possible from step one.
    first = data.draw(st.sampled_from(sorted(releasable)), "first recipient")
    assert ingress(
        make_envelope(ORIGINATOR, first, origin, plaintext, agreements=agreements), first, ctx=ctx
    ).decision.allowed
    holders.add(first)

    ops = ("grant", "grant", "extend", "extend", *["send"] * 6, "revoke", "revoke", "recall")
    for _ in range(data.draw(st.integers(4, 20), "steps")):
        op = data.draw(st.sampled_from(ops), "op")
        if op == "grant":
            # The originator lets a current holder pass the item to (preferably) a new member.
            holder = data.draw(st.sampled_from(sorted((holders - {ORIGINATOR}) or releasable)), "holder")
            grantee = data.draw(st.sampled_from(sorted(set(MEMBERS) - holders) or MEMBERS) | members_st, "grantee")
            chains.append((new_grant(ORIGINATOR, holder, grantee),))
        elif op == "extend" and chains:
            # The last grantee of a chain passes it on.
            base = data.draw(st.sampled_from(chains), "base")
            chains.append((*base, new_grant(base[-1].grantee, base[-1].grantee, data.draw(members_st, "grantee"))))
        elif op == "revoke" and chains:
            g = data.draw(st.sampled_from([g for c in chains for g in c]), "revoked")
            revoked.add(g.grant_id)
            state.revoked_grants.add(g.grant_id)
        elif op == "recall":
            recalled = recalled or data.draw(rarely, "recall")
            if recalled:
                state.recalled.add(("item-1", 1))
        elif op == "send":
            chain = data.draw(st.sampled_from([(), *chains]), "chain")
            # Mostly follow the chain's own hop; otherwise any holder to anyone.
            follow = bool(chain) and chain[-1].holder in holders and data.draw(st.sampled_from((True, True, False)))
            actual = chain[-1].holder if follow else data.draw(st.sampled_from(sorted(holders)), "sender")
            others = st.sampled_from([m for m in MEMBERS if m != actual])
            addressed = chain[-1].grantee if follow else data.draw(others | members_st, "recipient")
            # Sometimes lie about who sends or to whom.
            claimed = actual if not data.draw(rarely, "forge sender") else data.draw(members_st, "claimed")
            delivered = addressed if not data.draw(rarely, "misdeliver") else data.draw(members_st, "to")
            peer = tls(claimed if data.draw(rarely, "stolen tls") else actual)
            ag = agreements.get(claimed, addressed)
            env = seal(
                plaintext=plaintext,
                origin=origin,
                sender=claimed,
                sender_key=signing_key(actual),
                recipient=member(addressed),
                agreement_id=ag.agreement_id if ag else "none",
                agreement_version=ag.version if ag else 1,
                consents=[g.signed for g in chain],
                suite=Suite.X25519_AES256GCM,
                now=NOW,
            )
            result = ingress(env, delivered, peer=peer, ctx=ctx)
            if not result.decision.allowed:
                continue
            # The receiver accepted: the model must agree it was entitled to.
            assert not recalled
            assert (claimed, delivered) == (actual, addressed), result.decision
            justified = (
                delivered == ORIGINATOR
                or (actual == ORIGINATOR and delivered in releasable)
                or legitimate_chain(chain, actual, delivered, revoked)
                or label_decides(actual, delivered)
            )
            assert justified, (actual, delivered, chain, result.decision)
            if delivered not in holders:
                event("re-share" if actual != ORIGINATOR else "direct")
            holders.add(delivered)
    event(f"holders: {len(holders)}")


# --- (b) tightening never loosens ------------------------------------------------------------

TOPICS = DEFAULT_TOPICS[:6]
PAIR = ("KZ", "TR")
THIRD = "AZ"
bands = st.sampled_from(Band)


def _hierarchical_ceilings(ceilings: dict[str, Band], senior: str | None) -> dict[str, Band]:
    if senior is None:
        return ceilings
    junior = PAIR[1] if senior == PAIR[0] else PAIR[0]
    return {**ceilings, senior: min(ceilings[senior], ceilings[junior])}


@st.composite
def loose_and_tight(draw: st.DrawFn) -> tuple[Agreement, Agreement]:
    trust = draw(st.sampled_from(TrustModel))
    senior = draw(st.sampled_from(PAIR)) if trust is TrustModel.HIERARCHICAL else None
    ceilings = _hierarchical_ceilings({p: draw(bands) for p in PAIR}, senior)
    loose = agreement(
        *PAIR,
        ceilings=ceilings,
        categories=tuple(draw(st.sets(st.sampled_from(Category), min_size=1))),
        topics=tuple(draw(st.sets(st.sampled_from(TOPICS), min_size=1))),
        max_retention_days=draw(st.integers(1, 400)),
        raw_data_allowed=draw(st.booleans()),
        trust_model=trust,
        senior_party=senior,
        reshare_rule=draw(st.sampled_from(ReshareRule)),
        valid_until=NOW + timedelta(days=draw(st.integers(1, 400))),
    )
    if trust is TrustModel.HIGH_TRUST:
        tight_trust = draw(st.sampled_from(TrustModel))
        tight_senior = draw(st.sampled_from(PAIR)) if tight_trust is TrustModel.HIERARCHICAL else None
    elif trust is TrustModel.HIERARCHICAL:
        tight_trust = draw(st.sampled_from((TrustModel.HIERARCHICAL, TrustModel.INSTITUTIONAL_OVERSIGHT)))
        tight_senior = senior if tight_trust is TrustModel.HIERARCHICAL else None
    else:
        tight_trust, tight_senior = trust, None
    tight_ceilings = {p: Band(draw(st.integers(0, loose.ceilings[p]))) for p in PAIR}
    shorter = draw(st.integers(0, (loose.valid_until - NOW).days))
    tight = loose.model_copy(
        update={
            "version": 2,
            "ceilings": _hierarchical_ceilings(tight_ceilings, tight_senior),
            "categories": tuple(sorted(draw(st.sets(st.sampled_from(loose.categories), min_size=1)))),
            "topics": tuple(sorted(draw(st.sets(st.sampled_from(loose.topics), min_size=1)))),
            "max_retention_days": draw(st.integers(1, loose.max_retention_days)),
            "raw_data_allowed": loose.raw_data_allowed and draw(st.booleans()),
            "trust_model": tight_trust,
            "senior_party": tight_senior,
            "reshare_rule": (
                ReshareRule.ORIGINATOR_CONSENT
                if loose.reshare_rule is ReshareRule.ORIGINATOR_CONSENT
                else draw(st.sampled_from(ReshareRule))
            ),
            "valid_until": loose.valid_until - timedelta(days=shorter),
        }
    )
    return loose, Agreement.model_validate(tight.model_dump())  # re-run the validators


@st.composite
def transfers(draw: st.DrawFn) -> Transfer:
    trio = draw(st.permutations((*PAIR, THIRD)))
    sender, recipient = trio[0], trio[1]
    originator = draw(st.sampled_from(trio))
    band = draw(bands)
    raw = draw(st.booleans())
    lab = label(
        originator,
        band=band,
        category=draw(st.sampled_from(Category)),
        topics=tuple(draw(st.sets(st.sampled_from(TOPICS), min_size=1, max_size=3))),
        releasable_to=tuple(draw(st.sets(st.sampled_from((*PAIR, THIRD))))),
        originator_controlled=draw(st.booleans()),
        retain_until=NOW + timedelta(days=draw(st.integers(1, 420))),
    )
    item = RawData(description="d", media_type="text/plain", data=b"x") if raw else report(lab.grading)
    origin, _ = make_origin(lab, item)
    consents: tuple[Signed, ...] = ()
    if draw(st.booleans()) and originator not in (sender, recipient):
        consents = (grant(origin, grantor=originator, holder=sender, grantee=recipient),)
    att = OriginAttestation.from_bytes(origin.payload)
    return Transfer(sender, recipient, att, origin.digest, consents)


@settings(FAST, max_examples=150)
@given(pair=loose_and_tight(), moves=st.lists(transfers(), min_size=1, max_size=6), days=st.integers(0, 30))
def test_tightening_never_allows_what_looser_refused(
    pair: tuple[Agreement, Agreement], moves: list[Transfer], days: int
) -> None:
    loose, tight = pair
    others = (agreement("AZ", "KZ"), agreement("AZ", "TR", reshare_rule=ReshareRule.LABEL_DECIDES))
    loose_book = book(loose, *others)
    tight_book = book(loose, tight, *others)  # v2 replaces v1 as soon as it is accepted
    assert tight_book.get(*PAIR) == tight
    now = NOW + timedelta(days=days)
    loose_ctx, tight_ctx = Ctx().policy(loose_book, now=now), Ctx().policy(tight_book, now=now)
    for move in moves:
        tight_decision = check_egress(move, tight_ctx)
        loose_decision = check_egress(move, loose_ctx)
        event(f"tight {tight_decision.reason.value}")
        if tight_decision.allowed:
            assert loose_decision.allowed, (move, tight_decision, loose_decision)


# --- (c) any single flipped byte is refused --------------------------------------------------


def _base_envelopes() -> dict[tuple[str, Suite], tuple[Envelope, str]]:
    origin, pt = make_origin(label("KZ", releasable_to=("TR",)))
    g = grant(origin, grantor="KZ", holder="TR", grantee="AZ")
    out = {}
    for suite in Suite:
        out["direct", suite] = (make_envelope("KZ", "TR", origin, pt, suite=suite), "TR")
        out["reshare", suite] = (make_envelope("TR", "AZ", origin, pt, consents=(g,), suite=suite), "AZ")
    return out


BASE = _base_envelopes()


def _label_span(origin: Signed) -> tuple[int, int]:
    start = origin.payload.index(b'"label":')
    end = origin.payload.index(b'"content_kind":')
    return start, end


def _flip_signed_payload(signed: Signed, index: int, mask: int) -> Signed:
    return with_payload(signed, flip(signed.payload, index, mask))


def _flip_signature(signed: Signed, index: int, mask: int) -> Signed:
    return with_signature(signed, 0, flip(signed.signatures[0].sig, index, mask))


TAMPER: dict[str, Callable[[Envelope, int, int], Envelope]] = {
    "label": lambda e, i, m: replace(
        e,
        origin=with_payload(
            e.origin,
            flip(
                e.origin.payload,
                _label_span(e.origin)[0] + i % (_label_span(e.origin)[1] - _label_span(e.origin)[0]),
                m,
            ),
        ),
    ),
    "origin payload": lambda e, i, m: replace(e, origin=_flip_signed_payload(e.origin, i, m)),
    "origin signature": lambda e, i, m: replace(e, origin=_flip_signature(e.origin, i, m)),
    "header payload": lambda e, i, m: replace(e, header=_flip_signed_payload(e.header, i, m)),
    "header signature": lambda e, i, m: replace(e, header=_flip_signature(e.header, i, m)),
    "ciphertext": lambda e, i, m: replace(e, ciphertext=flip(e.ciphertext, i, m)),
    "consent payload": lambda e, i, m: replace(
        e, consents=tuple(_flip_signed_payload(c, i, m) for c in e.consents[:1])
    ),
    "consent signature": lambda e, i, m: replace(e, consents=tuple(_flip_signature(c, i, m) for c in e.consents[:1])),
}


def test_base_envelopes_are_accepted() -> None:
    for (_, suite), (env, receiver) in BASE.items():
        assert ingress(env, receiver).decision.allowed, suite
        open_envelope(env, recipient_id=receiver, recipient_keys=hpke_keys(receiver), roster=roster())


@settings(FAST, max_examples=300)
@given(
    base=st.sampled_from(sorted(BASE, key=str)),
    part=st.sampled_from(sorted(TAMPER)),
    index=st.integers(0, 1 << 16),
    mask=st.integers(1, 255),
)
def test_any_flipped_byte_is_refused(base: tuple[str, Suite], part: str, index: int, mask: int) -> None:
    env, receiver = BASE[base]
    if part.startswith("consent") and not env.consents:
        part = "ciphertext"
    tampered = TAMPER[part](env, index, mask)
    assert tampered != env
    result = ingress(tampered, receiver, peer=tls("KZ" if base[0] == "direct" else "TR"))
    assert not result.decision.allowed
    assert result.item is None
    event(f"{part}: {result.decision.reason.value}")
    if part == "consent signature":
        # ``open`` applies no policy (it never judges consents, by its contract); the header
        # binds the consent payloads, and the grantor's signature is the policy engine's job.
        assert result.decision.reason is Reason.CONSENT_INVALID
        return
    try:
        open_envelope(tampered, recipient_id=receiver, recipient_keys=hpke_keys(receiver), roster=roster())
    except OpenError:
        pass
    else:
        raise AssertionError(f"{part} flip at {index} ^ {mask:#x} opened")


# --- (d) seal/open round-trips ---------------------------------------------------------------


@st.composite
def items(draw: st.DrawFn) -> tuple[ReportTemplate | RawData, SourceReliability, InformationCredibility]:
    reliability = draw(st.sampled_from(SourceReliability))
    credibility = draw(st.sampled_from(InformationCredibility))
    if draw(st.booleans()):
        item: ReportTemplate | RawData = RawData(
            description=draw(st.text(min_size=1, max_size=100)),
            media_type="application/octet-stream",
            data=draw(st.binary(max_size=2048)),
        )
    else:
        item = ReportTemplate(
            title=draw(st.text(min_size=1, max_size=100)),
            summary=draw(st.text(min_size=1, max_size=100)),
            body=draw(st.text(min_size=1, max_size=500)),
            assessment=draw(st.text(min_size=1, max_size=100)),
            grading=f"{reliability.value}{credibility.value}",
        )
    return item, reliability, credibility


@settings(FAST, max_examples=60)
@given(suite=st.sampled_from(Suite), content=items())
def test_seal_open_round_trip(
    suite: Suite, content: tuple[ReportTemplate | RawData, SourceReliability, InformationCredibility]
) -> None:
    item, reliability, credibility = content
    recipient = "TR"
    lab = label("KZ", source_reliability=reliability, information_credibility=credibility)
    origin, pt = make_origin(lab, item)
    env = make_envelope("KZ", recipient, origin, pt, suite=suite)
    opened = open_envelope(env, recipient_id=recipient, recipient_keys=hpke_keys(recipient), roster=roster())
    assert opened.item == item
    assert opened.attestation.label == lab
    result = ingress(env, recipient)
    assert result.decision.reason is Reason.ALLOWED
    assert result.item == item
