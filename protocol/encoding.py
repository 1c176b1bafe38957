"""Byte encodings: pre-authentication encoding, digests, JSON payloads (SPEC §4).

Signatures always cover exact bytes that travel with them (the DSSE idea): a verifier
checks the signature over ``pae(payload_type, payload)`` and only then parses
``payload``. Nothing is ever re-serialised before verification.

Every signed payload is the RFC 8785 (JCS) encoding of a JSON value (``canonical_json``,
SPEC §4.4); a parser accepts a payload only if it is exactly that encoding of what it
parsed, so each value has one spelling and two implementations agree on every input.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import rfc8785

from protocol.errors import LocalProtocolError, MalformedError

__all__ = [
    "b64decode",
    "b64encode",
    "canonical_json",
    "format_timestamp",
    "hpke_info",
    "pae",
    "parse_json",
    "parse_timestamp",
    "require_aware",
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


def require_aware(now: datetime) -> datetime:
    """``now`` itself, if it is timezone-aware; a naive time is the caller's mistake (SPEC §3.3)."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise LocalProtocolError("now must be a timezone-aware datetime")
    return now


def time_ordered_id(now: datetime) -> str:
    """A fresh 128-bit id as 32 lower-case hex: 48 bits of Unix milliseconds, 80 random bits (SPEC §4.7).

    Like a UUIDv7 (RFC 9562 §5.7) without the version bits: ids made later sort later,
    so a database adds them at the end of its indexes instead of at random places.
    """
    milliseconds = int(require_aware(now).timestamp() * 1000)
    if not 0 <= milliseconds < 1 << 48:
        raise ValueError(f"{now} is outside the range of a time-ordered id")
    return f"{milliseconds:012x}{secrets.token_hex(10)}"


def canonical_json(value: Any) -> bytes:
    """The RFC 8785 (JCS) encoding of a JSON value: the bytes of every signed payload (SPEC §4.4).

    Objects with members sorted by key (UTF-16 code units), no whitespace, strings as
    UTF-8 with only ``"``, ``\\`` and U+0000..U+001F escaped, integers in plain decimal.
    The one function every producer of signed bytes uses. A value with no JCS form (a
    lone surrogate, an integer beyond 2^53 - 1, NaN) is this side's mistake.

    The ``rfc8785`` package defines the result. Messages are values whose every key is
    ASCII and which hold no fraction: for those the standard library's C encoder, sorting
    keys and escaping exactly as JCS does, writes the same bytes in a third of the time, so
    it is used for them (``tests/protocol/test_encoding.py`` checks the two agree).
    """
    if _plain(value):
        try:
            return _PLAIN_JSON(value).encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: let rfc8785 refuse it
            pass
    try:
        return rfc8785.dumps(value)
    except rfc8785.CanonicalizationError as exc:
        raise LocalProtocolError(f"value has no canonical JSON form: {exc}") from exc


#: JSON as JCS writes it, for values ``_plain`` accepts: keys sorted by code point (which for
#: ASCII keys is UTF-16 order), no white space, and json's escapes, which are JCS's.
_PLAIN_JSON = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False, check_circular=False
).encode
_MAX_EXACT = 2**53 - 1


def _plain(value: Any) -> bool:
    """Whether ``value`` has only ASCII keys, exact integers, strings, booleans and nulls."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return bool(-_MAX_EXACT <= value <= _MAX_EXACT)
    if kind is dict:
        return all(type(k) is str and k.isascii() and _plain(v) for k, v in value.items())
    if kind is list or kind is tuple:
        return all(_plain(v) for v in value)
    return False


def _refuse_constant(name: str) -> Any:
    raise MalformedError(f"{name} is not JSON")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise MalformedError(f"duplicate key {key!r}")
        out[key] = value
    return out


def parse_json(data: bytes) -> Any:
    """Read JSON strictly (SPEC §4.4): UTF-8 only, no duplicate keys, no NaN or Infinity.

    For JSON that is not a signed payload (a ``Signed`` statement in a file), where the
    bytes need not be canonical but must still mean one thing.
    """
    try:
        text = data.decode("utf-8")
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_refuse_constant)
    except MalformedError:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise MalformedError(f"not JSON: {exc}") from exc


#: The one timestamp form (SPEC §4.4): UTC, upper-case T and Z, six fraction digits or none.
_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.([0-9]{6}))?Z")


def format_timestamp(at: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS[.ffffff]Z`` in UTC; the fraction only when non-zero (SPEC §4.4)."""
    utc = at if at.tzinfo is UTC else at.astimezone(UTC)
    # isoformat pads the year to four digits and writes six fraction digits only when non-zero.
    return utc.isoformat().replace("+00:00", "Z")


def parse_timestamp(text: str) -> datetime:
    """Inverse of ``format_timestamp``; ``ValueError`` for any other spelling (SPEC §4.4)."""
    match = _TIMESTAMP.fullmatch(text)
    if match is None:
        raise ValueError("a timestamp is written YYYY-MM-DDTHH:MM:SS[.ffffff]Z")
    if match.group(1) == "000000":
        raise ValueError("a whole second is written without a fraction")
    return datetime.fromisoformat(text)  # the form is checked above; this checks the date
