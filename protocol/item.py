"""Item content: the uniform report template and the raw-data form (SPEC §7.2)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, TypeAdapter, ValidationError

from protocol._model import Model, first_error
from protocol.errors import MalformedError

__all__ = [
    "Attachment",
    "ContentKind",
    "Item",
    "RawData",
    "ReportTemplate",
    "content_kind",
    "item_from_bytes",
    "item_from_plaintext",
    "item_to_bytes",
]


class ContentKind(StrEnum):
    """The two forms of content an agreement can allow or require (SPEC §7.2)."""

    REPORT = "report"
    RAW = "raw"


#: Largest attachment or raw data: 8 MiB, well inside the transport's message limit.
MAX_DATA_BYTES = 8 * 1024 * 1024
#: A media type such as ``text/plain`` (lower case, no parameters).
MediaType = Annotated[str, StringConstraints(pattern=r"^[a-z0-9.+-]{1,127}/[a-z0-9.+-]{1,127}$")]


class Attachment(Model):
    """A file attached to a report."""

    name: str = Field(min_length=1, max_length=255)
    media_type: MediaType
    data: bytes = Field(max_length=MAX_DATA_BYTES)


class ReportTemplate(Model):
    """The uniform report template (SPEC §7.2.1). Every text field is required."""

    kind: Literal["report"] = "report"
    title: str = Field(min_length=1, max_length=512)
    summary: str = Field(min_length=1, max_length=4096)
    body: str = Field(min_length=1, max_length=1024 * 1024)
    assessment: str = Field(min_length=1, max_length=64 * 1024)
    #: Admiralty grading as in the label, e.g. ``B2``; MUST equal the label's.
    grading: str = Field(pattern=r"^[A-F][1-6]$")
    attachments: tuple[Attachment, ...] = Field(default=(), max_length=64)


class RawData(Model):
    """Raw data (SPEC §7.2.2): intercepts, lists, sensor output; agreements may forbid it."""

    kind: Literal["raw"] = "raw"
    description: str = Field(min_length=1, max_length=4096)
    media_type: MediaType
    data: bytes = Field(max_length=MAX_DATA_BYTES)


Item = Annotated[ReportTemplate | RawData, Field(discriminator="kind")]


def item_to_bytes(item: ReportTemplate | RawData) -> bytes:
    """The plaintext that is attested and sealed: its canonical JSON (SPEC §4.4, §7.2)."""
    return item.to_bytes()


_ITEM = TypeAdapter[ReportTemplate | RawData](Item)


def item_from_plaintext(data: bytes) -> ReportTemplate | RawData:
    """Parse a decrypted plaintext as strictly as a signed payload (SPEC §4.4, §8.6 step 9).

    ``MalformedError`` unless the bytes are exactly the canonical encoding of an item.
    """
    try:
        item = _ITEM.validate_json(data, strict=True)
    except ValidationError as exc:
        raise MalformedError(f"item content does not parse: {first_error(exc)}") from exc
    item.require_canonical(data)
    return item


def item_from_bytes(data: bytes) -> ReportTemplate | RawData:
    """Parse item JSON given locally (an officer's draft, a node's own stored copy).

    Not for bytes from a peer: those go through ``item_from_plaintext``. Any JSON form of an
    item is accepted; ``MalformedError`` on anything that is not one.
    """
    try:
        return _ITEM.validate_json(data)
    except ValidationError as exc:
        raise MalformedError(f"item content does not parse: {first_error(exc)}") from exc


def content_kind(item: ReportTemplate | RawData) -> ContentKind:
    """Which form the item is in."""
    return ContentKind(item.kind)
