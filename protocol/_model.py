"""Shared pydantic base for every protocol message (SPEC §4.4)."""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, StringConstraints

from protocol.errors import MalformedError

__all__ = ["Digest", "MemberId", "Model", "Timestamp"]

#: A member id: ISO 3166 alpha-2 state code, optionally a service suffix (SPEC §5.1).
MemberId = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}(-[A-Z0-9]{1,16})?$")]
#: Lower-case hex SHA-256 (SPEC §4.3).
Digest = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
#: Timestamps are always timezone-aware; naive datetimes are refused.
Timestamp = AwareDatetime


class Model(BaseModel):
    """Frozen, closed-world message: unknown fields are refused, bytes are base64 in JSON."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        ser_json_bytes="base64",
        val_json_bytes="base64",
        use_enum_values=False,
    )

    def to_bytes(self) -> bytes:
        """The JSON bytes that get signed and carried (SPEC §4.4)."""
        return self.model_dump_json().encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Parse carried bytes; any failure is a ``MalformedError`` blaming the sender."""
        try:
            return cls.model_validate_json(data)
        except ValueError as exc:  # pydantic.ValidationError subclasses ValueError
            raise MalformedError(f"{cls.__name__} does not parse: {_first_error(exc)}") from exc


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ())) or "<root>"
        return f"{where}: {first.get('msg', '')}"
    return str(exc)
