"""Classification labels (SPEC §7.1).

A label binds an item's band, originator, category, topics, release list,
originator control, use limitation, retention and grading. It is signed by the
originator inside the origin attestation (SPEC §8.1).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import Field, StringConstraints

from protocol._model import Digest, Marking, MemberId, Model, SortedUnique, Timestamp, Version
from protocol.classification import BandField

__all__ = [
    "DEFAULT_TOPICS",
    "Category",
    "InformationCredibility",
    "Label",
    "SourceReliability",
    "Topic",
    "UseLimitation",
]


class Category(StrEnum):
    """What kind of information the item is (SPEC §7.1)."""

    INTELLIGENCE = "intelligence"
    MILITARY = "military"
    EXPERT_ASSESSMENT = "expert-assessment"


#: Topics of shared concern from the sources; a federation may add more (SPEC §7.1).
DEFAULT_TOPICS: tuple[str, ...] = (
    "arms-trafficking",
    "corridors-and-energy",
    "cyber",
    "drug-trafficking",
    "extremism",
    "financial-crime",
    "human-trafficking",
    "irregular-migration",
    "organised-crime",
    "separatism",
    "terrorism",
)

#: A topic is a lower-case slug; the roster's vocabulary says which exist.
Topic = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,63}$")]


class UseLimitation(StrEnum):
    """What the recipient may do with the item (SPEC §7.1)."""

    INTELLIGENCE_USE_ONLY = "intelligence-use-only"
    NOT_FOR_LEGAL_PROCEEDINGS = "not-for-legal-proceedings"
    NO_ACTION_WITHOUT_CONSULTATION = "no-action-without-consultation"


class SourceReliability(StrEnum):
    """Admiralty source reliability: A (completely reliable) to F (cannot be judged)."""

    A = "A"
    B = "B"
    C = "C"
    D = "D"
    E = "E"
    F = "F"


class InformationCredibility(StrEnum):
    """Admiralty information credibility: 1 (confirmed) to 6 (cannot be judged)."""

    CONFIRMED = "1"
    PROBABLY_TRUE = "2"
    POSSIBLY_TRUE = "3"
    DOUBTFUL = "4"
    IMPROBABLE = "5"
    CANNOT_BE_JUDGED = "6"


class Label(Model):
    """The classification label of one version of one item (SPEC §7.1)."""

    band: BandField
    originator: MemberId
    #: Compared with the roster's marking as exact code points (SPEC §5.2).
    originator_marking: Marking
    category: Category
    topics: Annotated[tuple[Topic, ...], SortedUnique] = Field(min_length=1, max_length=32)
    releasable_to: Annotated[tuple[MemberId, ...], SortedUnique] = Field(max_length=64)
    #: Any onward transfer needs the originator's consent (the re-sharing ban).
    originator_controlled: bool = True
    use_limitations: Annotated[tuple[UseLimitation, ...], SortedUnique] = Field(default=(), max_length=8)
    retain_until: Timestamp
    source_reliability: SourceReliability
    information_credibility: InformationCredibility
    item_version: Version
    #: Origin digest of the version this one corrects, if any (SPEC §10.2).
    supersedes: Digest | None = None

    @property
    def grading(self) -> str:
        """Admiralty code such as ``B2``."""
        return f"{self.source_reliability.value}{self.information_credibility.value}"
