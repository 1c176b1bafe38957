"""A small in-memory federation for protocol tests: keys, roster, agreements, helpers.

Deterministic keys (seeded by member id) so failures reproduce. No I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from protocol.agreement import Agreement, AgreementBook, TrustModel
from protocol.classification import Band
from protocol.consent import ConsentGrant
from protocol.envelope import Envelope, EnvelopeHeader, Suite, attest, seal
from protocol.errors import MalformedError
from protocol.item import RawData, ReportTemplate
from protocol.keys import HpkeKeyPair, SigningKey
from protocol.label import Category, InformationCredibility, Label, SourceReliability
from protocol.policy import IngressResult, PolicyContext, TimeWindow, check_ingress
from protocol.roster import Member, MemberStatus, Roster
from protocol.statements import PayloadType, Signed, sign

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
WINDOW = TimeWindow(max_age=timedelta(days=7), max_future_skew=timedelta(minutes=5))

MARKINGS: dict[str, dict[Band, str]] = {
    "TR": {
        Band.UNCLASSIFIED: "TASNİF DIŞI",
        Band.RESTRICTED: "HİZMETE ÖZEL",
        Band.CONFIDENTIAL: "ÖZEL",
        Band.SECRET: "GİZLİ",
        Band.TOP_SECRET: "ÇOK GİZLİ",
    },
    "KZ": {
        Band.UNCLASSIFIED: "БЕЗ ГРИФА",
        Band.RESTRICTED: "ДЛЯ СЛУЖЕБНОГО ПОЛЬЗОВАНИЯ",
        Band.CONFIDENTIAL: "КОНФИДЕНЦИАЛЬНО",
        Band.SECRET: "СЕКРЕТНО",
        Band.TOP_SECRET: "СОВЕРШЕННО СЕКРЕТНО",
    },
    "AZ": {
        Band.UNCLASSIFIED: "MƏXFİ DEYİL",
        Band.RESTRICTED: "XİDMƏTİ İSTİFADƏ ÜÇÜN",
        Band.CONFIDENTIAL: "MƏXFİ",
        Band.SECRET: "TAM MƏXFİ",
        Band.TOP_SECRET: "XÜSUSİ ƏHƏMİYYƏTLİ",
    },
    "UZ": {
        Band.UNCLASSIFIED: "GRIFSIZ",
        Band.RESTRICTED: "XIZMAT DOIRASIDA FOYDALANISH UCHUN",
        Band.CONFIDENTIAL: "MAXFIY",
        Band.SECRET: "O'TA MAXFIY",
        Band.TOP_SECRET: "ALOHIDA AHAMIYATGA EGA",
    },
}


def _seed(member_id: str, purpose: str, length: int = 32) -> bytes:
    return hashlib.sha256(f"{purpose}:{member_id}".encode()).digest()[:length] * (length // 32 or 1)


def signing_key(member_id: str) -> SigningKey:
    return SigningKey.from_seeds(_seed(member_id, "sign"), None)


def hpke_keys(member_id: str) -> HpkeKeyPair:
    return HpkeKeyPair.from_seeds(_seed(member_id, "x25519"), _seed(member_id, "xwing"))


SECRETARIAT = SigningKey.from_seeds(_seed("SECRETARIAT", "sign"), None)


def member(member_id: str) -> Member:
    return Member(
        member_id=member_id,
        state=member_id,
        service=f"{member_id} service",
        status=MemberStatus.MEMBER,
        signing_key=signing_key(member_id).public(),
        hpke_keys=hpke_keys(member_id).public(),
        tls_identity=f"urn:intelshare:member:{member_id}",
        endpoint="127.0.0.1:0",
        markings=MARKINGS[member_id],
    )


def roster(version: int = 1, revoked: tuple[str, ...] = ()) -> Roster:
    return Roster(
        federation="OTS",
        version=version,
        issued_at=NOW,
        members=tuple(member(m) for m in MARKINGS),
        revoked_keyids=revoked,
    )


def agreement(a: str, b: str, **overrides: object) -> Agreement:
    fields: dict[str, object] = {
        "agreement_id": f"{min(a, b)}-{max(a, b)}",
        "version": 1,
        "parties": (a, b),
        "valid_from": NOW - timedelta(days=365),
        "valid_until": NOW + timedelta(days=365),
        "ceilings": {a: Band.SECRET, b: Band.SECRET},
        "categories": tuple(Category),
        "topics": ("terrorism", "extremism", "drug-trafficking", "cyber"),
        "max_retention_days": 365,
        "raw_data_allowed": True,
        "trust_model": TrustModel.HIGH_TRUST,
    }
    fields.update(overrides)
    return Agreement.model_validate(fields)


def signed_agreement(ag: Agreement, signers: tuple[str, ...] | None = None) -> Signed:
    parties = ag.parties if signers is None else signers
    return sign(PayloadType.AGREEMENT, ag, [signing_key(p) for p in parties])


def book(*agreements: Agreement, ros: Roster | None = None) -> AgreementBook:
    out = AgreementBook()
    for ag in agreements:
        out.accept(signed_agreement(ag), ros or roster())
    return out


def default_book() -> AgreementBook:
    return book(agreement("KZ", "TR"), agreement("AZ", "TR"), agreement("AZ", "KZ"), agreement("AZ", "UZ"))


def label(originator: str = "KZ", **overrides: object) -> Label:
    band = overrides.pop("band", Band.SECRET)
    assert isinstance(band, Band)
    fields: dict[str, object] = {
        "band": band,
        "originator": originator,
        "originator_marking": MARKINGS[originator][band],
        "category": Category.INTELLIGENCE,
        "topics": ("terrorism",),
        "releasable_to": ("TR",),
        "retain_until": NOW + timedelta(days=180),
        "source_reliability": SourceReliability.B,
        "information_credibility": InformationCredibility.PROBABLY_TRUE,
        "item_version": 1,
    }
    fields.update(overrides)
    return Label.model_validate(fields)


def report(grading: str = "B2") -> ReportTemplate:
    return ReportTemplate(
        title="Cell movement on the Caspian coast",
        summary="Three members of a known cell crossed at Aktau.",
        body="Details of the crossing.",
        assessment="Likely preparing logistics.",
        grading=grading,
    )


def raw() -> RawData:
    return RawData(description="intercept log", media_type="text/plain", data=b"line 1\nline 2\n")


@dataclass
class Ctx:
    recalled: set[tuple[str, int]] = field(default_factory=set)
    revoked_grants: set[str] = field(default_factory=set)

    def policy(
        self, agreements: AgreementBook | None = None, now: datetime = NOW, ros: Roster | None = None
    ) -> PolicyContext:
        return PolicyContext(
            roster=ros or roster(),
            agreements=agreements or default_book(),
            now=now,
            is_recalled=lambda item_id, version: (item_id, version) in self.recalled,
            is_grant_revoked=lambda grant_id: grant_id in self.revoked_grants,
        )


def make_origin(
    lab: Label | None = None, item: ReportTemplate | RawData | None = None, item_id: str = "item-1"
) -> tuple[Signed, bytes]:
    lab = lab or label()
    return attest(
        item_id=item_id,
        label=lab,
        item=item or report(lab.grading),
        originator_key=signing_key(lab.originator),
        now=NOW,
    )


def make_envelope(
    sender: str,
    recipient: str,
    origin: Signed,
    plaintext: bytes,
    consents: tuple[Signed, ...] = (),
    suite: Suite = Suite.X25519_AES256GCM,
    agreements: AgreementBook | None = None,
    now: datetime = NOW,
) -> Envelope:
    ag = (agreements or default_book()).get(sender, recipient)
    return seal(
        plaintext=plaintext,
        origin=origin,
        sender=sender,
        sender_key=signing_key(sender),
        recipient=member(recipient),
        agreement_id=ag.agreement_id if ag else "none",
        agreement_version=ag.version if ag else 1,
        consents=consents,
        suite=suite,
        now=now,
    )


def grant(
    origin: Signed,
    *,
    grantor: str,
    holder: str,
    grantee: str,
    transferable: bool = False,
    expires_at: datetime | None = None,
    grant_id: str = "0" * 31 + "1",
    signer: str | None = None,
    conditions: tuple[str, ...] = (),
) -> Signed:
    from protocol.envelope import OriginAttestation

    att = OriginAttestation.from_bytes(origin.payload)
    statement = ConsentGrant(
        grant_id=grant_id,
        item_id=att.item_id,
        item_version=att.item_version,
        origin_digest=origin.digest,
        grantor=grantor,
        holder=holder,
        grantee=grantee,
        expires_at=expires_at or NOW + timedelta(days=30),
        transferable=transferable,
        conditions=conditions,
        issued_at=NOW,
    )
    return sign(PayloadType.CONSENT_GRANT, statement, [signing_key(signer or grantor)])


# --- An attacker-controlled peer (in the spirit of python-tuf's RepositorySimulator) ---------
#
# Helpers that let a test play a dishonest or compromised member: deliver envelopes with any
# TLS identity, re-sign altered headers and origins with any key, flip bytes, replay.


def tls(member_id: str) -> str:
    """The TLS identity ``member()`` gives a member."""
    return f"urn:intelshare:member:{member_id}"


def never_replayed(header: EnvelopeHeader, digest: str) -> bool:
    return False


def ingress(
    env: Envelope,
    receiver: str,
    *,
    peer: str | None = None,
    ctx: PolicyContext | None = None,
    is_replay: Callable[[EnvelopeHeader, str], bool] = never_replayed,
    window: TimeWindow = WINDOW,
    peer_fingerprint: str | None = None,
    held_origin: Callable[[str, int], str | None] | None = None,
) -> IngressResult:
    """Deliver ``env`` to ``receiver`` over a TLS connection from ``peer`` (default: the claimed sender)."""
    if peer is None:
        try:
            peer = tls(EnvelopeHeader.from_bytes(env.header.payload).sender)
        except MalformedError:
            peer = tls("XX")
    return check_ingress(
        env,
        receiver=receiver,
        receiver_keys=hpke_keys(receiver),
        peer_tls_identity=peer,
        peer_fingerprint=peer_fingerprint,
        ctx=ctx or Ctx().policy(),
        window=window,
        is_replay=is_replay,
        held_origin=held_origin,
    )


def header_of(env: Envelope) -> EnvelopeHeader:
    return EnvelopeHeader.from_bytes(env.header.payload)


def resign_header(env: Envelope, signer: str, **changes: object) -> Envelope:
    """The envelope with its header altered by ``changes`` and re-signed by ``signer``."""
    header = header_of(env).model_copy(update=changes)
    return replace(env, header=sign(PayloadType.HEADER, header, [signing_key(signer)]))


def flip(data: bytes, index: int, mask: int = 0x01) -> bytes:
    """``data`` with the byte at ``index`` (modulo its length) XOR-ed with ``mask`` (non-zero)."""
    assert mask & 0xFF
    i = index % len(data)
    return data[:i] + bytes([data[i] ^ (mask & 0xFF)]) + data[i + 1 :]


def with_payload(signed: Signed, payload: bytes) -> Signed:
    """The same signatures over different payload bytes."""
    return signed.model_copy(update={"payload": payload})


def with_signature(signed: Signed, index: int, sig: bytes) -> Signed:
    """``signed`` with the bytes of signature ``index`` replaced."""
    sigs = list(signed.signatures)
    sigs[index] = sigs[index].model_copy(update={"sig": sig})
    return signed.model_copy(update={"signatures": tuple(sigs)})


def full_book(**overrides: object) -> AgreementBook:
    """Agreements between every pair of the four test members."""
    ids = sorted(MARKINGS)
    return book(*(agreement(a, b, **overrides) for i, a in enumerate(ids) for b in ids[i + 1 :]))


class ReplayStore:
    """What a node remembers per sender: nonces and envelope ids with the digest first seen."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], str] = {}

    def is_replay(self, header: EnvelopeHeader, digest: str) -> bool:
        keys = ((header.sender, "n:" + header.nonce), (header.sender, "e:" + header.envelope_id))
        return any(self._seen.get(key, digest) != digest for key in keys)

    def record(self, header: EnvelopeHeader, digest: str) -> None:
        self._seen.setdefault((header.sender, "n:" + header.nonce), digest)
        self._seen.setdefault((header.sender, "e:" + header.envelope_id), digest)


def signed_roster(ros: Roster, signer: SigningKey = SECRETARIAT) -> Signed:
    return sign(PayloadType.ROSTER, ros, [signer])


def recall(origin: Signed, *, originator: str = "KZ", signer: str | None = None, recall_id: str = "c" * 32) -> Signed:
    from protocol.envelope import OriginAttestation
    from protocol.notices import Recall

    att = OriginAttestation.from_bytes(origin.payload)
    statement = Recall(
        recall_id=recall_id,
        item_id=att.item_id,
        item_version=att.item_version,
        origin_digest=origin.digest,
        originator=originator,
        reason="source withdrawn",
        issued_at=NOW,
    )
    return sign(PayloadType.RECALL, statement, [signing_key(signer or originator)])


def correction(
    corrected: Signed, new: Signed, *, originator: str = "KZ", signer: str | None = None, new_version: int | None = None
) -> Signed:
    from protocol.envelope import OriginAttestation
    from protocol.notices import Correction

    old_att = OriginAttestation.from_bytes(corrected.payload)
    new_att = OriginAttestation.from_bytes(new.payload)
    statement = Correction(
        correction_id="d" * 32,
        item_id=old_att.item_id,
        corrected_version=old_att.item_version,
        corrected_digest=corrected.digest,
        new_version=new_version or new_att.item_version,
        new_origin_digest=new.digest,
        originator=originator,
        reason="numbers were wrong",
        issued_at=NOW,
    )
    return sign(PayloadType.CORRECTION, statement, [signing_key(signer or originator)])
