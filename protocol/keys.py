"""Member keys: signing identities and HPKE sealing keys (SPEC §5.4).

The private halves are opaque objects; only the operations the protocol needs are
exposed. Raw primitives from ``cryptography`` never leave this module and
``protocol.envelope``.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import ed25519, mldsa, mlkem
from cryptography.hazmat.primitives.asymmetric import x25519 as x25519_keys
from pydantic import Field

from protocol._model import Model
from protocol.encoding import b64decode, b64encode, pae, sha256_hex
from protocol.errors import ConfigurationError
from protocol.merkle import leaf_hash, root_from_inclusion_proof

__all__ = [
    "HpkeKeyPair",
    "HpkePublicKeys",
    "KemName",
    "PublicSigningKey",
    "SignatureAlg",
    "SigningKey",
    "VerifiedRoots",
    "batch_root_message",
    "keyid_of",
]

_X25519_PUBLIC_LEN = 32
_MLKEM768_PUBLIC_LEN = 1184
_XWING_PUBLIC_LEN = _MLKEM768_PUBLIC_LEN + _X25519_PUBLIC_LEN
_ED25519_PUBLIC_LEN = 32
_MLDSA65_PUBLIC_LEN = 1952
#: An X-Wing private key is a 32-byte seed (SPEC §5.4.2).
XWING_SEED_LEN = 32


class SignatureAlg(StrEnum):
    """Signature algorithms (SPEC §5.4.1); the ``-batch`` forms sign a batch root (SPEC §4.6)."""

    ED25519 = "ed25519"
    ML_DSA_65 = "ml-dsa-65"
    ED25519_BATCH = "ed25519-batch"
    ML_DSA_65_BATCH = "ml-dsa-65-batch"

    @property
    def batch(self) -> SignatureAlg:
        """The batch form of a direct algorithm."""
        return SignatureAlg(f"{self.value}-batch") if not self.value.endswith("-batch") else self


#: Domain separator of the message a batch signature signs (SPEC §4.6).
BATCH_ROOT_TYPE = "application/vnd.intelshare.batch-root;v=1"
#: Batch signature layout: tree size, leaf index, proof length, proof hashes, root signature.
_BATCH_FIXED = 4 + 4 + 1
_HASH_LEN = 32


def batch_root_message(tree_size: int, root: bytes) -> bytes:
    """What the signer signs for a batch: ``PAE(batch-root type, uint32 size || root)`` (SPEC §4.6)."""
    return pae(BATCH_ROOT_TYPE, tree_size.to_bytes(4, "big") + root)


def encode_batch_signature(tree_size: int, index: int, proof: list[bytes], root_signature: bytes) -> bytes:
    """The ``sig`` bytes of a batch signature for leaf ``index`` (SPEC §4.6)."""
    return (
        tree_size.to_bytes(4, "big")
        + index.to_bytes(4, "big")
        + bytes((len(proof),))
        + b"".join(proof)
        + root_signature
    )


class VerifiedRoots:
    """Batch roots whose signature already verified, so each is checked once (SPEC §4.6).

    Owned and passed in by the caller (a node keeps one); the protocol core keeps no
    state of its own. It remembers only successes, keyed by everything the signature
    check depends on, so a hit means the same check would succeed again. Bounded: it
    forgets everything when full.
    """

    def __init__(self, max_entries: int = 4096) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be positive")
        self._max = max_entries
        self._seen: set[tuple[bytes, str, bytes, bytes]] = set()

    def check(self, key: tuple[bytes, str, bytes, bytes], verify: Callable[[], bool]) -> bool:
        """``verify()`` unless ``key`` already verified; remember a success."""
        if key in self._seen:
            return True
        if not verify():
            return False
        if len(self._seen) >= self._max:
            self._seen.clear()
        self._seen.add(key)
        return True

    def __len__(self) -> int:
        return len(self._seen)


def _verify_component(
    public_raw: bytes,
    alg: SignatureAlg,
    keyid: str,
    message: bytes,
    signatures: dict[tuple[str, str], bytes],
    primitive: Callable[[bytes, bytes, bytes], bool],
    roots: VerifiedRoots | None,
) -> bool:
    """One algorithm of an identity: a direct signature, else a batch signature (SPEC §4.6)."""
    direct = signatures.get((keyid, alg.value))
    if direct is not None:
        return primitive(public_raw, direct, message)
    batch = signatures.get((keyid, alg.batch.value))
    if batch is None or len(batch) < _BATCH_FIXED:
        return False
    tree_size = int.from_bytes(batch[0:4], "big")
    index = int.from_bytes(batch[4:8], "big")
    count = batch[8]
    end = _BATCH_FIXED + count * _HASH_LEN
    if len(batch) <= end:
        return False
    proof = [batch[at : at + _HASH_LEN] for at in range(_BATCH_FIXED, end, _HASH_LEN)]
    root = root_from_inclusion_proof(leaf_hash(message), index, tree_size, proof)
    if root is None:
        return False
    root_message = batch_root_message(tree_size, root)
    root_signature = batch[end:]
    if roots is None:
        return primitive(public_raw, root_signature, root_message)
    return roots.check(
        (public_raw, alg.value, root_message, root_signature),
        lambda: primitive(public_raw, root_signature, root_message),
    )


class KemName(StrEnum):
    """HPKE KEMs a member may publish a key for (SPEC §5.4.2)."""

    X25519 = "x25519"
    MLKEM768_X25519 = "mlkem768-x25519"


def keyid_of(public_raw: bytes) -> str:
    """Key id: hex SHA-256 of the raw public key bytes (SPEC §5.4.1)."""
    return sha256_hex(public_raw)


class PublicSigningKey(Model):
    """A member's public signing identity as published in the roster (SPEC §5.4.1).

    When ``ml_dsa_65`` is present the identity is hybrid and every statement from
    the member MUST carry both signatures; either alone does not verify.
    """

    ed25519: bytes = Field(min_length=_ED25519_PUBLIC_LEN, max_length=_ED25519_PUBLIC_LEN)
    ml_dsa_65: bytes | None = Field(default=None, min_length=_MLDSA65_PUBLIC_LEN, max_length=_MLDSA65_PUBLIC_LEN)

    @property
    def keyid(self) -> str:
        """The identity's key id, that of its Ed25519 key."""
        return keyid_of(self.ed25519)

    def verify(
        self, message: bytes, signatures: dict[tuple[str, str], bytes], roots: VerifiedRoots | None = None
    ) -> bool:
        """True iff every algorithm of this identity has a valid signature over ``message``.

        ``signatures`` maps (keyid, alg) to signature bytes. Each algorithm may sign
        directly or through a batch root (SPEC §4.6); ``roots`` remembers batch roots
        already verified.
        """
        if not _verify_component(
            self.ed25519, SignatureAlg.ED25519, self.keyid, message, signatures, _verify_ed25519, roots
        ):
            return False
        if self.ml_dsa_65 is None:
            return True
        return _verify_component(
            self.ml_dsa_65,
            SignatureAlg.ML_DSA_65,
            keyid_of(self.ml_dsa_65),
            message,
            signatures,
            _verify_mldsa65,
            roots,
        )


def _verify_ed25519(public_raw: bytes, signature: bytes, message: bytes) -> bool:
    try:
        ed25519.Ed25519PublicKey.from_public_bytes(public_raw).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def _verify_mldsa65(public_raw: bytes, signature: bytes, message: bytes) -> bool:
    try:
        mldsa.MLDSA65PublicKey.from_public_bytes(public_raw).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


@dataclass(frozen=True, eq=False)
class SigningKey:
    """A member's private signing identity: Ed25519, optionally hybrid with ML-DSA-65."""

    _ed25519: ed25519.Ed25519PrivateKey
    _ml_dsa_65: mldsa.MLDSA65PrivateKey | None = None

    @classmethod
    def generate(cls, *, hybrid: bool) -> SigningKey:
        """A fresh identity; ``hybrid`` adds ML-DSA-65 (no default: a security choice)."""
        pq = mldsa.MLDSA65PrivateKey.generate() if hybrid else None
        return cls(ed25519.Ed25519PrivateKey.generate(), pq)

    @classmethod
    def from_seeds(cls, ed25519_seed: bytes, ml_dsa_65_seed: bytes | None) -> SigningKey:
        """Deterministic identity from 32-byte seeds (test vectors, key files)."""
        pq = None if ml_dsa_65_seed is None else mldsa.MLDSA65PrivateKey.from_seed_bytes(ml_dsa_65_seed)
        return cls(ed25519.Ed25519PrivateKey.from_private_bytes(ed25519_seed), pq)

    def public(self) -> PublicSigningKey:
        """The public identity to publish in the roster."""
        pq = None if self._ml_dsa_65 is None else self._ml_dsa_65.public_key().public_bytes_raw()
        return PublicSigningKey(ed25519=self._ed25519.public_key().public_bytes_raw(), ml_dsa_65=pq)

    @property
    def keyid(self) -> str:
        """Key id of the identity (its Ed25519 key)."""
        return self.public().keyid

    def sign(self, message: bytes) -> list[tuple[str, str, bytes]]:
        """(keyid, alg, signature) for every algorithm of the identity."""
        public = self.public()
        out = [(public.keyid, SignatureAlg.ED25519.value, self._ed25519.sign(message))]
        if self._ml_dsa_65 is not None and public.ml_dsa_65 is not None:
            out.append(
                (
                    keyid_of(public.ml_dsa_65),
                    SignatureAlg.ML_DSA_65.value,
                    self._ml_dsa_65.sign(message),
                )
            )
        return out

    def to_json(self) -> str:
        """Private key file content. The caller stores it with owner-only permissions."""
        doc = {"ed25519_seed": b64encode(self._ed25519.private_bytes_raw())}
        if self._ml_dsa_65 is not None:
            doc["ml_dsa_65_seed"] = b64encode(self._ml_dsa_65.private_bytes_raw())
        return json.dumps(doc)

    @classmethod
    def from_json(cls, text: str) -> SigningKey:
        """Inverse of ``to_json``; a bad file is a ``ConfigurationError``."""
        try:
            doc = json.loads(text)
            pq = doc.get("ml_dsa_65_seed")
            return cls.from_seeds(b64decode(doc["ed25519_seed"]), None if pq is None else b64decode(pq))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigurationError(f"signing key file is invalid: {exc}") from exc


class HpkePublicKeys(Model):
    """A member's published HPKE public keys, one per KEM (SPEC §5.4.2)."""

    x25519: bytes = Field(min_length=_X25519_PUBLIC_LEN, max_length=_X25519_PUBLIC_LEN)
    #: The X-Wing encapsulation key: ML-KEM-768 key (1184 bytes) then X25519 key (32 bytes).
    mlkem768_x25519: bytes | None = Field(default=None, min_length=_XWING_PUBLIC_LEN, max_length=_XWING_PUBLIC_LEN)

    def for_kem(self, kem: KemName) -> hpke.MLKEM768X25519PublicKey | x25519_keys.X25519PublicKey:
        """The public key object for ``kem``; ``ConfigurationError`` if not published."""
        try:
            if kem is KemName.X25519:
                return x25519_keys.X25519PublicKey.from_public_bytes(self.x25519)
            raw = self.mlkem768_x25519
            if raw is None:
                raise ConfigurationError(f"recipient has no {kem.value} key")
            return hpke.MLKEM768X25519PublicKey(
                mlkem.MLKEM768PublicKey.from_public_bytes(raw[:_MLKEM768_PUBLIC_LEN]),
                x25519_keys.X25519PublicKey.from_public_bytes(raw[_MLKEM768_PUBLIC_LEN:]),
            )
        except ValueError as exc:
            raise ConfigurationError(f"recipient's {kem.value} key is invalid") from exc


def xwing_components(seed: bytes) -> tuple[mlkem.MLKEM768PrivateKey, x25519_keys.X25519PrivateKey]:
    """The ML-KEM-768 and X25519 private keys an X-Wing seed expands to (SPEC §5.4.2).

    ``SHAKE256(seed, 96)``: the first 64 bytes are the ML-KEM-768 seed ``d || z`` (FIPS 203
    ``KeyGen_internal(d, z)``), the last 32 the X25519 private key, as X-Wing specifies.
    """
    if len(seed) != XWING_SEED_LEN:
        raise ConfigurationError(f"an X-Wing seed is {XWING_SEED_LEN} bytes")
    expanded = hashlib.shake_256(seed).digest(96)
    return (
        mlkem.MLKEM768PrivateKey.from_seed_bytes(expanded[:64]),
        x25519_keys.X25519PrivateKey.from_private_bytes(expanded[64:]),
    )


@dataclass(frozen=True, eq=False)
class HpkeKeyPair:
    """A member's private HPKE keys: X25519, and an X-Wing (ML-KEM-768 + X25519) seed (SPEC §5.4.2)."""

    _x25519: x25519_keys.X25519PrivateKey
    _xwing_seed: bytes
    # The seed's expansion, kept so that opening does not repeat the ML-KEM key generation.
    _mlkem768: mlkem.MLKEM768PrivateKey
    _xwing_x25519: x25519_keys.X25519PrivateKey

    @classmethod
    def generate(cls) -> HpkeKeyPair:
        """Fresh keys for every supported KEM."""
        return cls.from_seeds(x25519_keys.X25519PrivateKey.generate().private_bytes_raw(), secrets.token_bytes(32))

    @classmethod
    def from_seeds(cls, x25519_raw: bytes, xwing_seed: bytes) -> HpkeKeyPair:
        """Deterministic keys (test vectors, key files): a raw X25519 key and a 32-byte X-Wing seed."""
        return cls(
            x25519_keys.X25519PrivateKey.from_private_bytes(x25519_raw),
            bytes(xwing_seed),
            *xwing_components(xwing_seed),
        )

    def public(self) -> HpkePublicKeys:
        """The public keys to publish in the roster."""
        hybrid = self._mlkem768.public_key().public_bytes_raw() + self._xwing_x25519.public_key().public_bytes_raw()
        return HpkePublicKeys(x25519=self._x25519.public_key().public_bytes_raw(), mlkem768_x25519=hybrid)

    def _private_for(self, kem: KemName) -> hpke.MLKEM768X25519PrivateKey | x25519_keys.X25519PrivateKey:
        # Private to the protocol core: only protocol.envelope opens envelopes.
        if kem is KemName.X25519:
            return self._x25519
        return hpke.MLKEM768X25519PrivateKey(self._mlkem768, self._xwing_x25519)

    def to_json(self) -> str:
        """Private key file content. The caller stores it with owner-only permissions.

        ``xwing_seed`` is the X-Wing private key exactly as X-Wing libraries store it.
        """
        return json.dumps(
            {"x25519": b64encode(self._x25519.private_bytes_raw()), "xwing_seed": b64encode(self._xwing_seed)}
        )

    @classmethod
    def from_json(cls, text: str) -> HpkeKeyPair:
        """Inverse of ``to_json``; a bad file is a ``ConfigurationError``."""
        try:
            doc = json.loads(text)
            return cls.from_seeds(b64decode(doc["x25519"]), b64decode(doc["xwing_seed"]))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigurationError(f"HPKE key file is invalid: {exc}") from exc
