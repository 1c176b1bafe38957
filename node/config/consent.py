"""A node's consent rules: how it answers re-share consent requests for items it originated (SPEC §9.4.1)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from protocol._model import MemberId
from protocol.classification import Band, parse_band
from protocol.errors import ConfigurationError

__all__ = [
    "AutoGrant",
    "ConsentDecision",
    "ConsentMode",
    "ConsentPolicy",
    "ConsentTable",
    "band_name",
]


class ConsentMode(StrEnum):
    """How a node answers re-share consent requests for items it originated."""

    #: Every request waits for an officer at the desk.
    MANUAL = "manual"
    #: Every request is denied automatically.
    DENY = "deny"
    #: Requests matching an ``auto_grant`` rule are granted; the rest wait for an officer.
    RULES = "rules"


@dataclass(frozen=True)
class AutoGrant:
    """A standing rule: grant re-share consent to ``grantee`` for items up to ``max_band``."""

    grantee: str
    max_band: Band
    valid_days: int
    transferable: bool = False

    @property
    def validity(self) -> timedelta:
        """How long a grant issued under this rule stays valid."""
        return timedelta(days=self.valid_days)


#: ``decide``'s answer: grant on these terms, or leave it to an officer, or deny.
ConsentDecision = AutoGrant | Literal["manual", "deny"]


@dataclass(frozen=True)
class ConsentPolicy:
    """The node's consent automation; demos set rules so they run unattended."""

    mode: ConsentMode = ConsentMode.MANUAL
    auto_grant: tuple[AutoGrant, ...] = ()
    #: Under ``rules``, the answer to a request no rule covers.
    otherwise: Literal["manual", "deny"] = "manual"

    def __post_init__(self) -> None:
        if self.mode is not ConsentMode.RULES and (self.auto_grant or self.otherwise != "manual"):
            raise ConfigurationError(f"consent auto_grant/otherwise need mode 'rules', not {self.mode.value!r}")

    def decide(self, grantee: str, band: Band) -> ConsentDecision:
        """The automatic answer to a request to pass an item of ``band`` to ``grantee``.

        ``AutoGrant``: grant on its terms; ``"deny"``: deny now; ``"manual"``: leave it
        to an officer. Under ``rules`` the first matching rule wins, else ``otherwise``.
        """
        if self.mode is ConsentMode.DENY:
            return "deny"
        if self.mode is ConsentMode.RULES:
            for rule in self.auto_grant:
                if rule.grantee == grantee and band <= rule.max_band:
                    return rule
            return self.otherwise
        return "manual"

    def to_toml(self) -> dict[str, object]:
        """The ``[consent]`` table that reads back as this policy."""
        doc: dict[str, object] = {"mode": self.mode.value}
        if self.mode is ConsentMode.RULES:
            doc["otherwise"] = self.otherwise
            doc["auto_grant"] = [
                {
                    "grantee": rule.grantee,
                    "max_band": rule.max_band.name,
                    "valid_days": rule.valid_days,
                    "transferable": rule.transferable,
                }
                for rule in self.auto_grant
            ]
        return doc


def band_name(text: str) -> Band:
    """A band as a configuration file names it (``SECRET``, ``Top Secret``…)."""
    try:
        return parse_band(text)
    except ValueError:
        raise ValueError(f"unknown band {text!r} (expected one of {', '.join(Band.__members__)})") from None


class _AutoGrantRule(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    grantee: MemberId
    max_band: Annotated[str, AfterValidator(band_name)]
    valid_days: int = Field(ge=1, le=3650)
    transferable: bool = False


class ConsentTable(BaseModel):
    """The ``[consent]`` table of a node, or of a member in the federation file."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    # Not strict: the enum is given by its string value.
    mode: ConsentMode = Field(default=ConsentMode.MANUAL, strict=False)
    auto_grant: list[_AutoGrantRule] | None = None
    otherwise: Literal["manual", "deny"] | None = None

    @model_validator(mode="after")
    def _rules_need_mode(self) -> ConsentTable:
        if self.mode is not ConsentMode.RULES:
            for key in ("auto_grant", "otherwise"):
                if getattr(self, key) is not None:
                    raise ValueError(f"{key} is only used with mode = 'rules', not {self.mode.value!r}")
        elif not self.auto_grant:
            raise ValueError("mode = 'rules' needs at least one [[auto_grant]] rule")
        return self

    def policy(self, member_id: str) -> ConsentPolicy:
        """The policy of ``member_id``'s node; a rule granting to itself is refused."""
        rules = []
        for rule in self.auto_grant or ():
            if rule.grantee == member_id:
                raise ValueError(f"{member_id} cannot grant consent to itself")
            rules.append(AutoGrant(rule.grantee, band_name(rule.max_band), rule.valid_days, rule.transferable))
        return ConsentPolicy(self.mode, tuple(rules), self.otherwise or "manual")
