"""Byte encodings: pre-authentication encoding, digests, JSON payloads (SPEC §4).

Signatures always cover exact bytes that travel with them (the DSSE idea): a verifier
checks the signature over ``pae(payload_type, payload)`` and only then parses
``payload``. Nothing is ever re-serialised before verification.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Iterable
from datetime import datetime

__all__ = [
    "b64decode",
    "b64encode",
    "hpke_info",
    "pae",
    "sha256_hex",
    "time_ordered_id",
]

_PAE_PREFIX = b"DSSEv1"


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding (SPEC §4.2).

    ``"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`` with ASCII decimal lengths.
    The type string is the domain separator: a signature over one kind of statement
    can never be replayed as another.
    """
    type_bytes = payload_type.encode("utf-8")
    return b" ".join(
        (
            _PAE_PREFIX,
            str(len(type_bytes)).encode("ascii"),
            type_bytes,
            str(len(payload)).encode("ascii"),
            payload,
        )
    )


def hpke_info(label: str, fields: Iterable[bytes]) -> bytes:
    """Length-prefixed concatenation used as HPKE ``info`` (SPEC §8.3).

    Each field is preceded by its length as 4 big-endian bytes, so no two different
    field lists encode to the same bytes.
    """
    out = bytearray()
    for field in (label.encode("utf-8"), *fields):
        out += len(field).to_bytes(4, "big")
        out += field
    return bytes(out)


def sha256_hex(data: bytes) -> str:
    """Lower-case hex SHA-256, the digest format used throughout (SPEC §4.3)."""
    return hashlib.sha256(data).hexdigest()


def b64encode(data: bytes) -> str:
    """Standard base64 with padding (RFC 4648 §4)."""
    return base64.b64encode(data).decode("ascii")


def b64decode(text: str) -> bytes:
    """Strict base64 decode: rejects characters outside the alphabet."""
    return base64.b64decode(text.encode("ascii"), validate=True)


def time_ordered_id(now: datetime) -> str:
    """A fresh 128-bit id as 32 lower-case hex: 48 bits of Unix milliseconds, 80 random bits (SPEC §4.7).

    Like a UUIDv7 (RFC 9562 §5.7) without the version bits: ids made later sort later,
    so a database adds them at the end of its indexes instead of at random places.
    """
    milliseconds = int(now.timestamp() * 1000)
    if not 0 <= milliseconds < 1 << 48:
        raise ValueError(f"{now} is outside the range of a time-ordered id")
    return f"{milliseconds:012x}{secrets.token_hex(10)}"
