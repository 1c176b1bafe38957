"""Common classification bands and national markings (SPEC §5.2).

Each state keeps its own markings; the federation maps them onto common, ordered
bands with stable ids. A label is shown in the originator's marking beside the
reader's equivalent (like STANAG 4774's originator and alternative labels).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import IntEnum
from typing import Annotated, Any

from pydantic import PlainSerializer, PlainValidator

from protocol.errors import ConfigurationError

__all__ = [
    "Band",
    "BandField",
    "NationalMarkings",
    "parse_band",
]


class Band(IntEnum):
    """Common bands. The integer is the stable id and the order (SPEC §5.2)."""

    UNCLASSIFIED = 0
    RESTRICTED = 1
    CONFIDENTIAL = 2
    SECRET = 3
    TOP_SECRET = 4

    @property
    def title(self) -> str:
        """Human form: ``TOP SECRET``."""
        return self.name.replace("_", " ")


def parse_band(value: Any) -> Band:
    """Accept a ``Band``, its stable id, its name (``TOP_SECRET``) or title (``TOP SECRET``).

    For what people type (configuration files, the command line). Messages carry the name
    only (``BandField``).
    """
    if isinstance(value, Band):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return Band(value)
    if isinstance(value, str):
        key = value.strip().upper().replace(" ", "_").replace("-", "_")
        if key in Band.__members__:
            return Band[key]
    raise ValueError(f"unknown classification band {value!r}")


def _band_field(value: object) -> Band:
    # SPEC §4.4: in a message a band has one spelling, its name; no ids, titles or other cases.
    if isinstance(value, Band):
        return value
    if isinstance(value, str) and value in Band.__members__:
        return Band[value]
    raise ValueError(f"a band is one of {', '.join(Band.__members__)}")


#: A band in messages: written by its name, which is stable and readable (SPEC §4.4).
BandField = Annotated[Band, PlainValidator(_band_field), PlainSerializer(lambda b: b.name, return_type=str)]


class NationalMarkings:
    """One member's national markings mapped onto the common bands.

    Built from configuration; refuses two bands with the same marking, since the
    reverse mapping (marking to band) must be unambiguous.
    """

    def __init__(self, member_id: str, markings: Mapping[Band, str]) -> None:
        seen: dict[str, Band] = {}
        for band, marking in markings.items():
            text = marking.strip()
            if not text:
                raise ConfigurationError(f"{member_id}: empty marking for {band.title}")
            if text in seen:
                raise ConfigurationError(
                    f"{member_id}: marking {text!r} is used for both {seen[text].title} and {band.title}"
                )
            seen[text] = band
        self.member_id = member_id
        self._by_band = {band: marking.strip() for band, marking in markings.items()}
        self._by_marking = seen

    def marking(self, band: Band) -> str | None:
        """The national marking for ``band``, or None if this state has none."""
        return self._by_band.get(band)

    def band(self, marking: str) -> Band | None:
        """The common band for a national marking, or None if unknown."""
        return self._by_marking.get(marking.strip())

    def bands(self) -> frozenset[Band]:
        """Bands this state has a marking for."""
        return frozenset(self._by_band)
