"""Signed statements: DSSE-style envelopes over exact payload bytes (SPEC §4).

A ``Signed`` carries ``payload_type``, the exact ``payload`` bytes and signatures over
``pae(payload_type, payload)``. Verification checks the signature first and parses
second; the parsed object is never re-serialised to check a signature.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from enum import StrEnum
from typing import ClassVar, TypeVar

from pydantic import Field, model_validator

from protocol._model import Model
from protocol.encoding import pae, sha256_hex
from protocol.errors import LocalProtocolError, MalformedError, SignatureError
from protocol.keys import (
    PublicSigningKey,
    SignatureAlg,
    SigningKey,
    VerifiedRoots,
    batch_root_message,
    encode_batch_signature,
)
from protocol.merkle import inclusion_proofs, leaf_hash

__all__ = [
    "PayloadType",
    "Signature",
    "Signed",
    "cosign",
    "parse_unverified",
    "sign",
    "sign_many",
    "verify",
    "verify_and_parse",
    "verify_any",
]

_MAX_SIGNATURES = 8
#: The largest payload: a roster of 256 hybrid members is about 1.3 MB (SPEC §4.1).
MAX_PAYLOAD_BYTES = 4 * 1024 * 1024

M = TypeVar("M", bound=Model)


class PayloadType(StrEnum):
    """Every statement type; the string is the signature's domain separator (SPEC §4.2)."""

    ROSTER = "application/vnd.intelshare.roster+json;v=1"
    AGREEMENT = "application/vnd.intelshare.agreement+json;v=1"
    AGREEMENT_PROPOSAL = "application/vnd.intelshare.agreement-proposal+json;v=1"
    AGREEMENT_REJECTION = "application/vnd.intelshare.agreement-rejection+json;v=1"
    ORIGIN = "application/vnd.intelshare.origin+json;v=1"
    HEADER = "application/vnd.intelshare.envelope-header+json;v=1"
    RECEIPT = "application/vnd.intelshare.receipt+json;v=1"
    CONSENT_REQUEST = "application/vnd.intelshare.consent-request+json;v=1"
    CONSENT_GRANT = "application/vnd.intelshare.consent-grant+json;v=1"
    CONSENT_DENIAL = "application/vnd.intelshare.consent-denial+json;v=1"
    CONSENT_REVOCATION = "application/vnd.intelshare.consent-revocation+json;v=1"
    RECALL = "application/vnd.intelshare.recall+json;v=1"
    CORRECTION = "application/vnd.intelshare.correction+json;v=1"
    NOTICE_ACK = "application/vnd.intelshare.notice-ack+json;v=1"
    AUDIT_BUNDLE = "application/vnd.intelshare.audit-bundle+json;v=1"


class Signature(Model):
    """One signature: the signer's key id, the algorithm and the signature bytes."""

    keyid: str = Field(pattern=r"^[0-9a-f]{64}$")
    alg: str = Field(pattern=r"^[a-z0-9-]{1,32}$")
    sig: bytes = Field(max_length=8192)


class Signed(Model):
    """A signed statement (SPEC §4.1)."""

    # The statement's own JSON form (files, other messages) is read strictly but need not be
    # canonical: nothing signs it. Its payload is what must be canonical (SPEC §4.4).
    _canonical: ClassVar[bool] = False

    payload_type: str = Field(max_length=128)
    payload: bytes = Field(max_length=MAX_PAYLOAD_BYTES)
    signatures: tuple[Signature, ...] = Field(max_length=_MAX_SIGNATURES)

    @model_validator(mode="after")
    def _one_signature_per_key_and_alg(self) -> Signed:
        # SPEC §4.1: a verifier looks signatures up by (keyid, alg); two under one pair would
        # leave it to choose, and two implementations might choose differently.
        pairs = [(s.keyid, s.alg) for s in self.signatures]
        if len(set(pairs)) != len(pairs):
            raise ValueError("two signatures with the same keyid and alg")
        return self

    @property
    def digest(self) -> str:
        """Identity of the statement: SHA-256 of its payload bytes (SPEC §4.3)."""
        return sha256_hex(self.payload)

    def _signature_map(self) -> dict[tuple[str, str], bytes]:
        return {(s.keyid, s.alg): s.sig for s in self.signatures}


def _check_signers(signers: Sequence[SigningKey]) -> None:
    if not signers:
        raise LocalProtocolError("at least one signer is required")
    keyids = [signer.keyid for signer in signers]
    if len(set(keyids)) != len(keyids):  # SPEC §4.1: one signature per (keyid, alg)
        raise LocalProtocolError("the same key signs only once")


def sign(payload_type: PayloadType, statement: Model, signers: Sequence[SigningKey]) -> Signed:
    """Serialise ``statement`` once and sign those exact bytes with every signer."""
    _check_signers(signers)
    payload = statement.to_bytes()
    message = pae(payload_type.value, payload)
    signatures = tuple(
        Signature(keyid=keyid, alg=alg, sig=sig) for signer in signers for keyid, alg, sig in signer.sign(message)
    )
    return Signed(payload_type=payload_type.value, payload=payload, signatures=signatures)


def cosign(signed: Signed, payload_type: PayloadType, signers: Sequence[SigningKey]) -> Signed:
    """The same statement with ``signers``' signatures added over its exact bytes (SPEC §4.1, §6.4).

    The payload is not re-serialised: the new signatures cover the carried bytes, so a
    statement one party signed becomes the statement both signed. A key that already
    signed it is refused (``LocalProtocolError``: one signature per key and algorithm).
    """
    _check_signers(signers)
    if signed.payload_type != payload_type.value:
        raise LocalProtocolError(f"expected a {payload_type.name} statement, got {signed.payload_type!r}")
    present = {s.keyid for s in signed.signatures}
    if any(signer.keyid in present for signer in signers):
        raise LocalProtocolError("the statement already carries a signature by that key")
    message = pae(signed.payload_type, signed.payload)
    added = tuple(
        Signature(keyid=keyid, alg=alg, sig=sig) for signer in signers for keyid, alg, sig in signer.sign(message)
    )
    return Signed(payload_type=signed.payload_type, payload=signed.payload, signatures=signed.signatures + added)


def sign_many(statements: Sequence[tuple[PayloadType, Model]], signers: Sequence[SigningKey]) -> list[Signed]:
    """Sign many statements with one signature per algorithm: a batch signature (SPEC §4.6).

    Each statement's PAE bytes are a leaf of an RFC 9162 Merkle tree; every signer signs
    the root once, and each returned statement carries its own inclusion proof with that
    root signature, so it verifies alone, wherever it travels.
    """
    _check_signers(signers)
    if not statements:
        return []
    payloads = [(payload_type.value, statement.to_bytes()) for payload_type, statement in statements]
    root, proofs = inclusion_proofs([leaf_hash(pae(t, p)) for t, p in payloads])
    size = len(payloads)
    root_signatures = [
        (keyid, SignatureAlg(alg).batch.value, sig)
        for signer in signers
        for keyid, alg, sig in signer.sign(batch_root_message(size, root))
    ]
    return [
        Signed(
            payload_type=payload_type,
            payload=payload,
            signatures=tuple(
                Signature(keyid=keyid, alg=alg, sig=encode_batch_signature(size, index, proof, sig))
                for keyid, alg, sig in root_signatures
            ),
        )
        for index, ((payload_type, payload), proof) in enumerate(zip(payloads, proofs, strict=True))
    ]


def verify(
    signed: Signed,
    payload_type: PayloadType,
    signers: Iterable[PublicSigningKey],
    roots: VerifiedRoots | None = None,
) -> None:
    """Raise ``SignatureError`` unless every one of ``signers`` signed ``signed``.

    A signature may be direct or a batch signature (SPEC §4.6); ``roots`` lets a caller
    verify each batch root once.
    """
    if signed.payload_type != payload_type.value:
        raise SignatureError(f"expected a {payload_type.name} statement, got {signed.payload_type!r}")
    message = pae(signed.payload_type, signed.payload)
    signature_map = signed._signature_map()
    for signer in signers:
        if not signer.verify(message, signature_map, roots):
            raise SignatureError(f"no valid signature by key {signer.keyid[:16]}…")


def verify_any(
    signed: Signed,
    payload_type: PayloadType,
    identities: Sequence[PublicSigningKey],
    roots: VerifiedRoots | None = None,
) -> PublicSigningKey:
    """The first of ``identities`` that signed ``signed``; ``SignatureError`` if none did.

    For one member's keys during a rotation overlap (SPEC §5.4.3): its current key and
    its retired ones, each a whole identity (both algorithms of a hybrid one, §5.4.1).
    """
    if signed.payload_type != payload_type.value:
        raise SignatureError(f"expected a {payload_type.name} statement, got {signed.payload_type!r}")
    message = pae(signed.payload_type, signed.payload)
    signature_map = signed._signature_map()
    for identity in identities:
        if identity.verify(message, signature_map, roots):
            return identity
    raise SignatureError(f"no valid signature by key {identities[0].keyid[:16]}…" if identities else "no signer")


def verify_and_parse(
    signed: Signed,
    payload_type: PayloadType,
    signers: Iterable[PublicSigningKey],
    model: type[M],
    roots: VerifiedRoots | None = None,
) -> M:
    """Verify, then parse the verified bytes into ``model`` (never the other way round)."""
    verify(signed, payload_type, signers, roots)
    return model.from_bytes(signed.payload)


def parse_unverified(signed: Signed, payload_type: PayloadType, model: type[M]) -> M:
    """Parse without verifying: only to learn who claims to have signed (SPEC §4.5).

    The result MUST NOT be acted on until ``verify`` has succeeded with the key that the
    roster gives for the claimed signer.
    """
    if signed.payload_type != payload_type.value:
        raise MalformedError(f"expected a {payload_type.name} statement, got {signed.payload_type!r}")
    return model.from_bytes(signed.payload)
