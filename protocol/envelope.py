"""Origin attestation and the sign-then-seal envelope (SPEC §8).

``attest`` makes the originator's signed statement binding item id, version, label and
plaintext digest. ``seal`` encrypts the plaintext to one recipient under a batch key
that HPKE seals to that recipient, binding the context in the envelope key's
derivation, and signs the header. The recipient verifies and opens with
``policy.check_ingress`` (or, without policy, ``policy.open_envelope``, SPEC §8.6); the
decryption step here raises the same opaque ``OpenError`` whatever failed.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import NamedTuple

from cryptography.hazmat.primitives import hashes, hpke
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand
from pydantic import Field

from protocol._model import AgreementId, Digest, Hex32Id, ItemId, MemberId, Model, Timestamp, Version
from protocol.encoding import hpke_info, require_aware, sha256_hex, time_ordered_id
from protocol.errors import LocalProtocolError, OpenError
from protocol.item import (
    ContentKind,
    RawData,
    ReportTemplate,
    content_kind,
    item_from_plaintext,
    item_to_bytes,
)
from protocol.keys import HpkeKeyPair, HpkePublicKeys, KemName, SigningKey
from protocol.label import Label
from protocol.roster import Member
from protocol.statements import PayloadType, Signed, sign, sign_many

__all__ = [
    "DEFAULT_SUITE",
    "Attested",
    "BatchKeys",
    "Envelope",
    "EnvelopeHeader",
    "OriginAttestation",
    "SealRequest",
    "Suite",
    "ToAttest",
    "attest",
    "attest_many",
    "batch_key_info",
    "decrypt",
    "decrypt_exact",
    "seal",
    "seal_info",
    "seal_many",
]


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

    def _aead(self, key: bytes) -> AESGCM | ChaCha20Poly1305:
        """The suite's AEAD under an envelope key (SPEC §8.2)."""
        return ChaCha20Poly1305(key) if self is Suite.X25519_CHACHA20POLY1305 else AESGCM(key)

    @property
    def _sealed_key_length(self) -> int:
        """Length of ``enc ‖ sealed batch key``, the prefix of every ciphertext (SPEC §8.2)."""
        enc = 1120 if self.kem is KemName.MLKEM768_X25519 else 32
        return enc + _BATCH_KEY_LEN + _TAG_LEN


#: The default suite of configuration files and the CLI. ``seal`` itself has no default.
DEFAULT_SUITE = Suite.X25519_AES256GCM

_BATCH_KEY_LEN = 32
_TAG_LEN = 16
#: Each envelope key encrypts exactly one plaintext, so the AEAD nonce is fixed (SPEC §8.2).
_ZERO_NONCE = bytes(12)
#: HPKE ``info`` label of a sealed batch key (SPEC §8.3).
_BATCH_KEY_LABEL = "intelshare/v1 batch key"


class OriginAttestation(Model):
    """The originator's statement of who said what under which label (SPEC §8.1)."""

    item_id: ItemId
    item_version: Version
    originator: MemberId
    label: Label
    content_kind: ContentKind
    plaintext_digest: Digest
    attested_at: Timestamp


class EnvelopeHeader(Model):
    """What the sender signs for one envelope (SPEC §8.4)."""

    envelope_id: Hex32Id
    item_id: ItemId
    item_version: Version
    sender: MemberId
    recipient: MemberId
    agreement_id: AgreementId
    agreement_version: Version
    #: SHA-256 of the origin attestation payload: binds the label (SPEC §8.1).
    origin_digest: Digest
    ciphertext_digest: Digest
    suite: Suite
    created_at: Timestamp
    nonce: Hex32Id
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
    require_aware(now)  # SPEC §3.3
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


def batch_key_info(*, sender: str, recipient: str, suite: Suite) -> bytes:
    """HPKE ``info`` under which a batch key is sealed to its recipient (SPEC §8.3)."""
    return hpke_info(_BATCH_KEY_LABEL, (sender.encode(), recipient.encode(), suite.value.encode()))


def _envelope_key(batch_key: bytes, info: bytes) -> bytes:
    """HKDF-Expand(batch key, §8.3 info): one key per envelope, bound to its context (SPEC §8.2)."""
    return HKDFExpand(hashes.SHA256(), _BATCH_KEY_LEN, info).derive(batch_key)


@dataclass(frozen=True)
class _BatchKey:
    """A fresh batch key for one recipient and its HPKE-sealed form (``enc ‖ ciphertext``)."""

    key: bytes
    sealed: bytes


def _new_batch_key(sender: str, recipient: Member, suite: Suite) -> _BatchKey:
    """Draw a batch key and seal it to ``recipient`` with HPKE: one KEM per batch (SPEC §8.2)."""
    key = secrets.token_bytes(_BATCH_KEY_LEN)
    info = batch_key_info(sender=sender, recipient=recipient.member_id, suite=suite)
    sealed = suite._primitive().encrypt(key, recipient.hpke_keys.for_kem(suite.kem), info=info)
    return _BatchKey(key, sealed)


class BatchKeys:
    """Batch keys a receiver already opened, so each batch costs one HPKE open (SPEC §8.2).

    Owned and passed in by the caller (a node keeps one), like ``VerifiedRoots``; the
    protocol core keeps no state of its own. It serves only the key pair it was made
    for, remembers only successful opens, keyed by everything the open depends on
    (suite, HPKE info, sealed bytes), so a hit gives the key the same open would give.
    Bounded: it forgets everything when full.
    """

    def __init__(self, owner: HpkeKeyPair, max_entries: int = 4096) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be positive")
        self._owner = owner
        self._max = max_entries
        self._keys: dict[tuple[Suite, bytes, bytes], bytes] = {}

    def open(self, keys: HpkeKeyPair, suite: Suite, info: bytes, sealed: bytes) -> bytes:
        """The batch key sealed in ``sealed``; raises (anything) if it does not open."""
        cacheable = keys is self._owner
        index = (suite, info, sealed)
        if cacheable and (known := self._keys.get(index)) is not None:
            return known
        key = _open_batch_key(keys, suite, info, sealed)
        if cacheable:
            if len(self._keys) >= self._max:
                self._keys.clear()
            self._keys[index] = key
        return key

    def __len__(self) -> int:
        return len(self._keys)

    def forget(self) -> None:
        """Forget every batch key (a holder that destroyed content drops what could open it, SPEC §11.13)."""
        self._keys.clear()


def _open_batch_key(keys: HpkeKeyPair, suite: Suite, info: bytes, sealed: bytes) -> bytes:
    key = suite._primitive().decrypt(sealed, keys._private_for(suite.kem), info=info)
    if len(key) != _BATCH_KEY_LEN:
        raise OpenError
    return key


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


def _seal_unsigned(
    request: SealRequest, *, sender: str, suite: Suite, now: datetime, batch: _BatchKey
) -> tuple[EnvelopeHeader, bytes]:
    """Encrypt under ``batch`` (the recipient's batch key) and build the header, not yet signed (SPEC §8.2–8.4)."""
    origin = request.origin
    attestation = request.attestation or OriginAttestation.from_bytes(origin.payload)
    if attestation.plaintext_digest != sha256_hex(request.plaintext):
        raise LocalProtocolError("plaintext does not match the origin attestation")
    envelope_id = time_ordered_id(now)  # SPEC §4.7
    origin_digest = origin.digest
    recipient = request.recipient.member_id
    # The info is computed from the header fields before the ciphertext exists (SPEC §8.3).
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
    sealed = suite._aead(_envelope_key(batch.key, info)).encrypt(_ZERO_NONCE, request.plaintext, None)
    ciphertext = batch.sealed + sealed
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
    batch = _new_batch_key(sender, recipient, suite)  # a batch of one
    header, ciphertext = _seal_unsigned(request, sender=sender, suite=suite, now=now, batch=batch)
    return Envelope(
        header=sign(PayloadType.HEADER, header, [sender_key]),
        origin=origin,
        consents=request.consents,
        ciphertext=ciphertext,
    )


def seal_many(
    requests: Sequence[SealRequest], *, sender: str, sender_key: SigningKey, suite: Suite, now: datetime
) -> list[Envelope]:
    """``seal`` for many envelopes, their headers under one batch signature (SPEC §4.6, §8.4).

    The envelopes to one recipient share one batch key, so the batch costs one HPKE
    seal per recipient, not one per envelope (SPEC §8.2).
    """
    # Keyed by the recipient's published keys too: a batch key is sealed to exactly those.
    batches: dict[tuple[str, HpkePublicKeys], _BatchKey] = {}

    def batch_for(recipient: Member) -> _BatchKey:
        index = (recipient.member_id, recipient.hpke_keys)
        if index not in batches:
            batches[index] = _new_batch_key(sender, recipient, suite)
        return batches[index]

    made = [
        _seal_unsigned(request, sender=sender, suite=suite, now=now, batch=batch_for(request.recipient))
        for request in requests
    ]
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
    batch_keys: BatchKeys | None = None,
    previous_keys: Sequence[HpkeKeyPair] = (),
) -> ReportTemplate | RawData:
    """Decrypt an envelope whose header and origin were already verified (SPEC §8.6).

    For the ingress path, after ``policy.check_ingress`` verified the signatures: it
    does not verify them again. Every failure raises the same ``OpenError``.
    """
    return decrypt_exact(envelope, header, attestation, recipient_keys, batch_keys, previous_keys)[0]


def _open_with_any(
    keys: Sequence[HpkeKeyPair], suite: Suite, info: bytes, sealed: bytes, batch_keys: BatchKeys | None
) -> bytes:
    """The batch key, opened with the first of ``keys`` it was sealed to (SPEC §5.4.4)."""
    for pair in keys[:-1]:
        with contextlib.suppress(Exception):  # sealed to another key, or to none: try the next
            return (
                _open_batch_key(pair, suite, info, sealed)
                if batch_keys is None
                else batch_keys.open(pair, suite, info, sealed)
            )
    last = keys[-1]
    return (
        _open_batch_key(last, suite, info, sealed) if batch_keys is None else batch_keys.open(last, suite, info, sealed)
    )


def decrypt_exact(
    envelope: Envelope,
    header: EnvelopeHeader,
    attestation: OriginAttestation,
    recipient_keys: HpkeKeyPair,
    batch_keys: BatchKeys | None = None,
    previous_keys: Sequence[HpkeKeyPair] = (),
) -> tuple[ReportTemplate | RawData, bytes]:
    """``decrypt``, also returning the exact plaintext bytes the originator attested.

    A holder keeps those bytes rather than a re-serialisation of the item, so what it
    stores still matches the attestation's ``plaintext_digest``. ``batch_keys``
    remembers batch keys already opened (SPEC §8.2). ``previous_keys`` are the
    recipient's other HPKE key pairs during a rotation (SPEC §5.4.4), tried after
    ``recipient_keys``.
    """
    try:
        ciphertext = envelope.ciphertext
        if sha256_hex(ciphertext) != header.ciphertext_digest:  # §8.6 step 7
            raise OpenError
        suite = header.suite
        split = suite._sealed_key_length
        sealed_key, sealed = ciphertext[:split], ciphertext[split:]
        # §8.6 step 8: the batch key (HPKE), then the envelope key bound to the §8.3 info.
        key_info = batch_key_info(sender=header.sender, recipient=header.recipient, suite=suite)
        batch_key = _open_with_any((recipient_keys, *previous_keys), suite, key_info, sealed_key, batch_keys)
        plaintext = suite._aead(_envelope_key(batch_key, seal_info(header))).decrypt(_ZERO_NONCE, sealed, None)
        if sha256_hex(plaintext) != attestation.plaintext_digest:
            raise OpenError
        item = item_from_plaintext(plaintext)
        if content_kind(item) is not attestation.content_kind:
            raise OpenError
        if isinstance(item, ReportTemplate) and item.grading != attestation.label.grading:
            raise OpenError
    except OpenError:
        raise
    except Exception as exc:  # one opaque error, whatever failed inside (SPEC §8.6)
        raise OpenError from exc
    return item, plaintext
