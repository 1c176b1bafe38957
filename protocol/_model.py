"""Shared pydantic base and field types for every protocol message (SPEC §4.4).

Building a message in Python (``Label(...)``, ``model_validate``) is the local side's
business and may be convenient: sets are sorted, timestamps converted to UTC, markings
normalised. Parsing carried bytes (``from_bytes``) is strict: the JSON must have the
declared types exactly (no ``"1"`` for 1, no ``0`` for false), and the bytes must be the
canonical encoding (RFC 8785) of the value they parse to, so every value has exactly one
spelling and anything a convenience would have changed is refused.
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    StringConstraints,
    ValidationError,
)

from protocol.encoding import canonical_json, format_timestamp, parse_json, parse_timestamp
from protocol.errors import MalformedError

__all__ = [
    "MAX_INT",
    "MAX_LOG_SEQ",
    "AgreementId",
    "Digest",
    "Hex32Id",
    "ItemId",
    "LogSeq",
    "Marking",
    "MemberId",
    "Model",
    "SortedUnique",
    "Timestamp",
    "Version",
]

#: The largest integer any message carries: it fits a signed 32-bit column (PostgreSQL
#: INTEGER) and is exact in every JSON implementation (SPEC §4.4).
MAX_INT = 2**31 - 1

#: A member id: ISO 3166 alpha-2 state code, optionally a service suffix (SPEC §5.1).
MemberId = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}(-[A-Z0-9]{1,16})?$")]
#: Lower-case hex SHA-256 (SPEC §4.3).
Digest = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
#: 32 lower-case hex characters: envelope ids, nonces, grant, request, recall ids (SPEC §4.7).
Hex32Id = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]
#: An item id (SPEC §8.1).
ItemId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")]
#: An agreement id (SPEC §6.1).
AgreementId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
#: Versions and every other counter: 1 .. 2^31 - 1.
Version = Annotated[int, Field(ge=1, le=MAX_INT)]
#: The largest position in an audit log a statement names: exact in every JSON (SPEC §4.4).
MAX_LOG_SEQ = 2**53 - 1
#: A position in a node's audit log (its ``seq``, SPEC §11.4).
LogSeq = Annotated[int, Field(ge=1, le=MAX_LOG_SEQ)]


def _timestamp(value: object) -> datetime:
    # SPEC §4.4: one spelling per instant. Local callers may pass any aware datetime.
    if isinstance(value, datetime):
        if value.tzinfo is UTC:
            return value
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("a timestamp needs a time zone")
        return value.astimezone(UTC)
    if isinstance(value, str):
        return parse_timestamp(value)
    raise ValueError("a timestamp is a string YYYY-MM-DDTHH:MM:SS[.ffffff]Z")


#: A UTC instant with microsecond precision, written ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z``.
Timestamp = Annotated[
    datetime,
    PlainValidator(_timestamp),
    PlainSerializer(format_timestamp, return_type=str, when_used="json"),
]


def _marking(value: str) -> str:
    # SPEC §5.2: markings compare as exact code points, so they are kept in NFC and trimmed.
    text = unicodedata.normalize("NFC", value).strip()
    if not 1 <= len(text) <= 64:
        raise ValueError("a marking has 1 to 64 characters")
    return text


#: A national marking (SPEC §5.2): NFC, no surrounding white space, 1..64 code points.
Marking = Annotated[str, StringConstraints(max_length=256), AfterValidator(_marking)]


def _sorted_unique(value: tuple[Any, ...]) -> tuple[Any, ...]:
    # SPEC §4.4: a set is written sorted and without duplicates, so equal sets have equal bytes.
    if len(set(value)) != len(value):
        raise ValueError("duplicates are not allowed")
    return tuple(sorted(value))


#: Marks a tuple of strings as a set: carried sorted, without duplicates (SPEC §4.4).
SortedUnique = AfterValidator(_sorted_unique)


class Model(BaseModel):
    """Frozen, closed-world message: unknown fields are refused, bytes are base64url in JSON."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        ser_json_bytes="base64",
        val_json_bytes="base64",
        use_enum_values=False,
    )

    #: Whether ``from_bytes`` requires the canonical encoding (every signed payload does).
    _canonical: ClassVar[bool] = True

    def to_bytes(self) -> bytes:
        """The canonical JSON bytes that get signed and carried (SPEC §4.4)."""
        return canonical_json(self.model_dump(mode="json"))

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Parse carried bytes strictly (SPEC §4.4); any failure is a ``MalformedError``.

        The sender is at fault for anything that does not parse, and for bytes that are
        not exactly the canonical encoding of what they parse to.
        """
        if not cls._canonical:
            parse_json(data)  # refuses duplicate keys, which the model parser would merge
        try:
            parsed = cls.model_validate_json(data, strict=True)
        except ValidationError as exc:
            raise MalformedError(f"{cls.__name__} does not parse: {first_error(exc)}") from exc
        if cls._canonical:
            parsed.require_canonical(data)
        return parsed

    def require_canonical(self, data: bytes) -> None:
        """``MalformedError`` unless ``data`` is exactly this message's canonical encoding (SPEC §4.4).

        One comparison refuses duplicate and unsorted keys, white space, escapes where none
        is needed, other spellings of numbers, timestamps and byte strings, missing fields
        and unsorted or repeated set members.
        """
        canonical = self.to_bytes()
        if canonical != data:
            raise MalformedError(f"{type(self).__name__} is not in canonical form: {_difference(data, canonical)}")


def first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first.get("loc", ())) or "<root>"
    return f"{where}: {first.get('msg', '')}"


def _difference(data: bytes, canonical: bytes) -> str:
    """Where carried bytes first differ from their canonical form, for the error message."""
    try:
        parse_json(data)
    except MalformedError as exc:
        return str(exc)
    at = next(
        (i for i, (a, b) in enumerate(zip(data, canonical, strict=False)) if a != b), min(len(data), len(canonical))
    )
    return f"byte {at}: {data[at : at + 24]!r}, expected {canonical[at : at + 24]!r}"
