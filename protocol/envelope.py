"""Origin attestation and the sign-then-seal envelope (SPEC §8).

``attest`` makes the originator's signed statement binding item id, version, label and
plaintext digest. ``seal`` encrypts the plaintext to one recipient with HPKE, binding
the context in HPKE ``info``, and signs the header. ``open`` is the one safe recipe
for the recipient: any failure raises the same opaque ``OpenError``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import NamedTuple

from cryptography.hazmat.primitives import hpke
from pydantic import Field

from protocol._model import Digest, MemberId, Model, Timestamp
from protocol.encoding import hpke_info, sha256_hex, time_ordered_id
from protocol.errors import IntelshareError, LocalProtocolError, OpenError
from protocol.item import (
    ContentKind,
    RawData,
    ReportTemplate,
    content_kind,
    item_from_bytes,
    item_to_bytes,
)
from protocol.keys import HpkeKeyPair, KemName, SigningKey, VerifiedRoots
from protocol.label import Label
from protocol.roster import Member, Roster
from protocol.statements import PayloadType, Signed, sign, sign_many, verify, verify_and_parse

__all__ = [
    "DEFAULT_SUITE",
    "Attested",
    "Envelope",
    "EnvelopeHeader",
    "OriginAttestation",
    "SealRequest",
    "Suite",
    "ToAttest",
    "attest",
    "attest_many",
    "decrypt",
    "decrypt_exact",
    "open",
    "seal",
    "seal_info",
    "seal_many",
]

ItemId = str
_ITEM_ID = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"


class Suite(StrEnum):
    """HPKE suites named in the envelope (SPEC §8.2)."""

    X25519_AES256GCM = "DHKEM(X25519,HKDF-SHA256)/HKDF-SHA256/AES-256-GCM"
    X25519_CHACHA20POLY1305 = "DHKEM(X25519,HKDF-SHA256)/HKDF-SHA256/ChaCha20Poly1305"
    #: Post-quantum hybrid: ML-KEM-768 + X25519 (harvest-now-decrypt-later).
    MLKEM768X25519_AES256GCM = "MLKEM768-X25519/HKDF-SHA256/AES-256-GCM"

    @property
    def kem(self) -> KemName:
        """The KEM whose recipient key this suite needs."""
        return KemName.MLKEM768_X25519 if self is Suite.MLKEM768X25519_AES256GCM else KemName.X25519

    def _primitive(self) -> hpke.Suite:
        aead = hpke.AEAD.CHACHA20_POLY1305 if self is Suite.X25519_CHACHA20POLY1305 else hpke.AEAD.AES_256_GCM
        kem = hpke.KEM.MLKEM768_X25519 if self.kem is KemName.MLKEM768_X25519 else hpke.KEM.X25519
        return hpke.Suite(kem, hpke.KDF.HKDF_SHA256, aead)


#: The default suite of configuration files and the CLI. ``seal`` itself has no default.
DEFAULT_SUITE = Suite.X25519_AES256GCM


class OriginAttestation(Model):
    """The originator's statement of who said what under which label (SPEC §8.1)."""

    item_id: ItemId = Field(pattern=_ITEM_ID)
    item_version: int = Field(ge=1)
    originator: MemberId
    label: Label
    content_kind: ContentKind
    plaintext_digest: Digest
    attested_at: Timestamp


class EnvelopeHeader(Model):
    """What the sender signs for one envelope (SPEC §8.4)."""

    envelope_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    item_id: ItemId = Field(pattern=_ITEM_ID)
    item_version: int = Field(ge=1)
    sender: MemberId
    recipient: MemberId
    agreement_id: str = Field(max_length=64)
    agreement_version: int = Field(ge=1)
    #: SHA-256 of the origin attestation payload: binds the label (SPEC §8.1).
    origin_digest: Digest
    ciphertext_digest: Digest
    suite: Suite
    created_at: Timestamp
    nonce: str = Field(pattern=r"^[0-9a-f]{32}$")
    #: Digests of the consent grants carried, root first (SPEC §9.4).
    consent_refs: tuple[Digest, ...] = Field(default=(), max_length=16)


@dataclass(frozen=True)
class Envelope:
    """One item for one recipient: signed header, origin attestation, consents, ciphertext."""

    header: Signed
    origin: Signed
    consents: tuple[Signed, ...]
    ciphertext: bytes

    @property
    def digest(self) -> str:
        """The envelope's identity: the digest of its signed header, which binds the rest."""
        return self.header.digest


@dataclass(frozen=True)
class ToAttest:
    """One item for ``attest_many``."""

    item_id: str
    label: Label
    item: ReportTemplate | RawData


def _attestation(request: ToAttest, now: datetime) -> tuple[OriginAttestation, bytes]:
    label, item = request.label, request.item
    if isinstance(item, ReportTemplate) and item.grading != label.grading:
        raise LocalProtocolError(f"report grading {item.grading} differs from label grading {label.grading}")
    plaintext = item_to_bytes(item)
    statement = OriginAttestation(
        item_id=request.item_id,
        item_version=label.item_version,
        originator=label.originator,
        label=label,
        content_kind=content_kind(item),
        plaintext_digest=sha256_hex(plaintext),
        attested_at=now,
    )
    return statement, plaintext


def attest(
    *,
    item_id: str,
    label: Label,
    item: ReportTemplate | RawData,
    originator_key: SigningKey,
    now: datetime,
) -> tuple[Signed, bytes]:
    """Sign the origin attestation; returns it and the exact plaintext to seal (SPEC §8.1)."""
    statement, plaintext = _attestation(ToAttest(item_id, label, item), now)
    return sign(PayloadType.ORIGIN, statement, [originator_key]), plaintext


class Attested(NamedTuple):
    """One attested item from ``attest_many``: the signed attestation, the exact plaintext
    it covers, and the attestation as parsed from that statement's payload."""

    origin: Signed
    plaintext: bytes
    attestation: OriginAttestation


def attest_many(requests: Sequence[ToAttest], *, originator_key: SigningKey, now: datetime) -> list[Attested]:
    """``attest`` for many items under one batch signature (SPEC §4.6, §8.1)."""
    made = [_attestation(request, now) for request in requests]
    signed = sign_many([(PayloadType.ORIGIN, statement) for statement, _ in made], [originator_key])
    return [Attested(origin, plaintext, statement) for origin, (statement, plaintext) in zip(signed, made, strict=True)]


def _info(
    *,
    origin_digest: str,
    sender: str,
    recipient: str,
    item_id: str,
    item_version: int,
    agreement_id: str,
    agreement_version: int,
    envelope_id: str,
    suite: Suite,
) -> bytes:
    return hpke_info(
        "intelshare/v1 seal",
        (
            origin_digest.encode(),
            sender.encode(),
            recipient.encode(),
            item_id.encode(),
            str(item_version).encode(),
            agreement_id.encode(),
            str(agreement_version).encode(),
            envelope_id.encode(),
            suite.value.encode(),
        ),
    )


def seal_info(header: EnvelopeHeader) -> bytes:
    """HPKE ``info``: the context an envelope is bound to (SPEC §8.3)."""
    return _info(
        origin_digest=header.origin_digest,
        sender=header.sender,
        recipient=header.recipient,
        item_id=header.item_id,
        item_version=header.item_version,
        agreement_id=header.agreement_id,
        agreement_version=header.agreement_version,
        envelope_id=header.envelope_id,
        suite=header.suite,
    )


@dataclass(frozen=True)
class SealRequest:
    """One envelope for ``seal_many``: what ``seal`` takes besides sender, key, suite and time.

    ``attestation`` is ``origin``'s payload already parsed (``Attested.attestation``), which
    spares a parse; when absent it is parsed here. The plaintext is still checked against
    it, and a receiver refuses an envelope whose header and origin disagree (SPEC §9.2.10).
    """

    plaintext: bytes
    origin: Signed
    recipient: Member
    agreement_id: str
    agreement_version: int
    consents: tuple[Signed, ...] = ()
    attestation: OriginAttestation | None = None


def _seal_unsigned(request: SealRequest, *, sender: str, suite: Suite, now: datetime) -> tuple[EnvelopeHeader, bytes]:
    """Encrypt and build the header, not yet signed (SPEC §8.2–8.4)."""
    origin = request.origin
    attestation = request.attestation or OriginAttestation.from_bytes(origin.payload)
    if attestation.plaintext_digest != sha256_hex(request.plaintext):
        raise LocalProtocolError("plaintext does not match the origin attestation")
    envelope_id = time_ordered_id(now)  # SPEC §4.7
    origin_digest = origin.digest
    recipient = request.recipient.member_id
    # The info is computed from the header fields before the ciphertext exists.
    info = _info(
        origin_digest=origin_digest,
        sender=sender,
        recipient=recipient,
        item_id=attestation.item_id,
        item_version=attestation.item_version,
        agreement_id=request.agreement_id,
        agreement_version=request.agreement_version,
        envelope_id=envelope_id,
        suite=suite,
    )
    public_key = request.recipient.hpke_keys.for_kem(suite.kem)
    ciphertext = suite._primitive().encrypt(request.plaintext, public_key, info=info)
    header = EnvelopeHeader(
        envelope_id=envelope_id,
        item_id=attestation.item_id,
        item_version=attestation.item_version,
        sender=sender,
        recipient=recipient,
        agreement_id=request.agreement_id,
        agreement_version=request.agreement_version,
        origin_digest=origin_digest,
        ciphertext_digest=sha256_hex(ciphertext),
        suite=suite,
        created_at=now,
        nonce=time_ordered_id(now),
        consent_refs=tuple(c.digest for c in request.consents),
    )
    return header, ciphertext


def seal(
    *,
    plaintext: bytes,
    origin: Signed,
    sender: str,
    sender_key: SigningKey,
    recipient: Member,
    agreement_id: str,
    agreement_version: int,
    consents: Sequence[Signed],
    suite: Suite,
    now: datetime,
) -> Envelope:
    """Encrypt ``plaintext`` to ``recipient`` and sign the header (SPEC §8.2–8.4).

    ``origin`` is the originator's attestation of this plaintext (the sender may be a
    later holder re-sharing it). There is deliberately no default ``suite``.
    """
    request = SealRequest(plaintext, origin, recipient, agreement_id, agreement_version, tuple(consents))
    header, ciphertext = _seal_unsigned(request, sender=sender, suite=suite, now=now)
    return Envelope(
        header=sign(PayloadType.HEADER, header, [sender_key]),
        origin=origin,
        consents=request.consents,
        ciphertext=ciphertext,
    )


def seal_many(
    requests: Sequence[SealRequest], *, sender: str, sender_key: SigningKey, suite: Suite, now: datetime
) -> list[Envelope]:
    """``seal`` for many envelopes, their headers under one batch signature (SPEC §4.6, §8.4)."""
    made = [_seal_unsigned(request, sender=sender, suite=suite, now=now) for request in requests]
    headers = sign_many([(PayloadType.HEADER, header) for header, _ in made], [sender_key])
    return [
        Envelope(header=header, origin=request.origin, consents=request.consents, ciphertext=ciphertext)
        for header, request, (_, ciphertext) in zip(headers, requests, made, strict=True)
    ]


def decrypt(
    envelope: Envelope,
    header: EnvelopeHeader,
    attestation: OriginAttestation,
    recipient_keys: HpkeKeyPair,
) -> ReportTemplate | RawData:
    """Decrypt an envelope whose header and origin were already verified (SPEC §8.6).

    For the ingress path, after ``policy.check_ingress`` verified the signatures: it
    does not verify them again. Every failure raises the same ``OpenError``.
    """
    return decrypt_exact(envelope, header, attestation, recipient_keys)[0]


def decrypt_exact(
    envelope: Envelope,
    header: EnvelopeHeader,
    attestation: OriginAttestation,
    recipient_keys: HpkeKeyPair,
) -> tuple[ReportTemplate | RawData, bytes]:
    """``decrypt``, also returning the exact plaintext bytes the originator attested.

    A holder keeps those bytes rather than a re-serialisation of the item, so what it
    stores still matches the attestation's ``plaintext_digest``.
    """
    try:
        if sha256_hex(envelope.ciphertext) != header.ciphertext_digest:
            raise OpenError
        private = recipient_keys._private_for(header.suite.kem)
        plaintext = header.suite._primitive().decrypt(envelope.ciphertext, private, info=seal_info(header))
        if sha256_hex(plaintext) != attestation.plaintext_digest:
            raise OpenError
        item = item_from_bytes(plaintext)
        if content_kind(item) is not attestation.content_kind:
            raise OpenError
        if isinstance(item, ReportTemplate) and item.grading != attestation.label.grading:
            raise OpenError
    except OpenError:
        raise
    except Exception as exc:  # one opaque error, whatever failed inside (SPEC §8.6)
        raise OpenError from exc
    return item, plaintext


@dataclass(frozen=True)
class Opened:
    """What ``open`` returns: the verified statements and the content."""

    header: EnvelopeHeader
    attestation: OriginAttestation
    item: ReportTemplate | RawData


def open(
    envelope: Envelope,
    *,
    recipient_id: str,
    recipient_keys: HpkeKeyPair,
    roster: Roster,
    roots: VerifiedRoots | None = None,
) -> Opened:
    """Verify and open an envelope addressed to ``recipient_id`` (SPEC §8.6).

    Checks the sender's header signature, the originator's attestation, the bindings
    between them and the ciphertext, then decrypts. It does not apply policy: a node
    MUST run ``policy.check_ingress`` (which also calls ``decrypt``) instead.
    Every failure raises the same ``OpenError``.
    """
    try:
        claimed = EnvelopeHeader.from_bytes(envelope.header.payload)
        sender = roster.member(claimed.sender)
        if sender is None or roster.is_revoked(sender.signing_key.keyid):
            raise OpenError
        header = verify_and_parse(envelope.header, PayloadType.HEADER, [sender.signing_key], EnvelopeHeader, roots)
        if header.recipient != recipient_id or header.origin_digest != envelope.origin.digest:
            raise OpenError
        if header.consent_refs != tuple(c.digest for c in envelope.consents):
            raise OpenError
        claimed_origin = OriginAttestation.from_bytes(envelope.origin.payload)
        originator = roster.member(claimed_origin.originator)
        if originator is None or roster.is_revoked(originator.signing_key.keyid):
            raise OpenError
        verify(envelope.origin, PayloadType.ORIGIN, [originator.signing_key], roots)
        if (claimed_origin.item_id, claimed_origin.item_version) != (
            header.item_id,
            header.item_version,
        ):
            raise OpenError
        item = decrypt(envelope, header, claimed_origin, recipient_keys)
    except OpenError:
        raise
    except IntelshareError as exc:
        raise OpenError from exc
    return Opened(header=header, attestation=claimed_origin, item=item)


__all__ += ["Opened"]
