"""Item content: the uniform report template and the raw-data form (SPEC §7.2)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, TypeAdapter, ValidationError

from protocol._model import Model
from protocol.errors import MalformedError

__all__ = [
    "Attachment",
    "ContentKind",
    "Item",
    "RawData",
    "ReportTemplate",
    "item_from_bytes",
    "item_to_bytes",
]


class ContentKind(StrEnum):
    """The two forms of content an agreement can allow or require (SPEC §7.2)."""

    REPORT = "report"
    RAW = "raw"


class Attachment(Model):
    """A file attached to a report."""

    name: str = Field(min_length=1, max_length=255)
    media_type: str = Field(pattern=r"^[a-z0-9.+-]+/[a-z0-9.+-]+$")
    data: bytes


class ReportTemplate(Model):
    """The uniform report template (SPEC §7.2.1). Every text field is required."""

    kind: Literal["report"] = "report"
    title: str = Field(min_length=1, max_length=512)
    summary: str = Field(min_length=1, max_length=4096)
    body: str = Field(min_length=1)
    assessment: str = Field(min_length=1)
    #: Admiralty grading as in the label, e.g. ``B2``; MUST equal the label's.
    grading: str = Field(pattern=r"^[A-F][1-6]$")
    attachments: tuple[Attachment, ...] = Field(default=(), max_length=64)


class RawData(Model):
    """Raw data (SPEC §7.2.2): intercepts, lists, sensor output; agreements may forbid it."""

    kind: Literal["raw"] = "raw"
    description: str = Field(min_length=1, max_length=4096)
    media_type: str = Field(pattern=r"^[a-z0-9.+-]+/[a-z0-9.+-]+$")
    data: bytes


Item = Annotated[ReportTemplate | RawData, Field(discriminator="kind")]
_ITEM = TypeAdapter[ReportTemplate | RawData](Item)


def item_to_bytes(item: ReportTemplate | RawData) -> bytes:
    """The plaintext that is attested and sealed."""
    return item.to_bytes()


def item_from_bytes(data: bytes) -> ReportTemplate | RawData:
    """Parse plaintext; ``MalformedError`` on anything else."""
    try:
        return _ITEM.validate_json(data)
    except ValidationError as exc:
        raise MalformedError("item content does not parse") from exc


def content_kind(item: ReportTemplate | RawData) -> ContentKind:
    """Which form the item is in."""
    return ContentKind(item.kind)


__all__ += ["content_kind"]
