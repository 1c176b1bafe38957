"""Common bands and national markings (SPEC §5.2), and labels (SPEC §7.1)."""

from __future__ import annotations

import pytest
from support import MARKINGS, label

from protocol.classification import Band, NationalMarkings, parse_band
from protocol.errors import ConfigurationError
from protocol.label import Label


@pytest.mark.parametrize(
    ("value", "band"),
    [
        (Band.SECRET, Band.SECRET),
        (4, Band.TOP_SECRET),
        ("TOP_SECRET", Band.TOP_SECRET),
        ("top secret", Band.TOP_SECRET),
        (" Top-Secret ", Band.TOP_SECRET),
        ("UNCLASSIFIED", Band.UNCLASSIFIED),
    ],
)
def test_parse_band(value: object, band: Band) -> None:
    assert parse_band(value) is band


@pytest.mark.parametrize("value", [True, "COSMIC", 9, None, 2.0])
def test_parse_band_refuses(value: object) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - ValueError is the contract for pydantic
        parse_band(value)


def test_bands_are_ordered_and_titled() -> None:
    assert Band.UNCLASSIFIED < Band.RESTRICTED < Band.CONFIDENTIAL < Band.SECRET < Band.TOP_SECRET
    assert Band.TOP_SECRET.title == "TOP SECRET"


def test_national_markings_map_both_ways() -> None:
    tr = NationalMarkings("TR", MARKINGS["TR"])
    assert tr.marking(Band.SECRET) == "GİZLİ"
    assert tr.band(" GİZLİ ") is Band.SECRET
    assert tr.band("SECRET") is None
    assert tr.bands() == frozenset(Band)
    partial = NationalMarkings("HU", {Band.RESTRICTED: "KORLÁTOZOTT"})
    assert partial.marking(Band.SECRET) is None


def test_national_markings_refuse_ambiguous_marking() -> None:
    with pytest.raises(ConfigurationError, match="used for both"):
        NationalMarkings("TR", {Band.SECRET: "GİZLİ", Band.TOP_SECRET: " GİZLİ"})


def test_national_markings_refuse_empty_marking() -> None:
    with pytest.raises(ConfigurationError, match="empty marking"):
        NationalMarkings("TR", {Band.SECRET: "  "})


def test_label_serialises_band_by_name_and_sorts_lists() -> None:
    lab = label("KZ", topics=("terrorism", "cyber"), releasable_to=("TR", "AZ"))
    assert b'"band":"SECRET"' in lab.to_bytes()
    assert lab.topics == ("cyber", "terrorism")
    assert lab.releasable_to == ("AZ", "TR")
    assert Label.from_bytes(lab.to_bytes()) == lab
    assert lab.grading == "B2"


def test_label_refuses_duplicates() -> None:
    with pytest.raises(ValueError, match="duplicates"):
        label("KZ", topics=("cyber", "cyber"))
