"""The federation file: members, markings, consent rules, agreements and node defaults.

``intelshare federation init`` reads it (``node.federation``). Parsing is strict
(pydantic, ``extra="forbid"``); what a model cannot say alone (a party that is not a
member, a topic outside the vocabulary, two agreements for one pair) is checked after,
and every problem is one ``ConfigurationError`` naming the file, the table and the field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path
from types import MappingProxyType

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import make_url
from sqlalchemy.exc import ArgumentError

from node.config.consent import ConsentPolicy, ConsentTable, band_name
from node.config.settings import DeliverySettings, DeliveryTable, IngressTable, RetentionSettings, RetentionTable
from node.config.toml import config_error, location, read_toml
from protocol._model import MemberId
from protocol.agreement import Agreement, ReshareRule, TrustModel, pair_key
from protocol.classification import Band, NationalMarkings
from protocol.envelope import Suite
from protocol.errors import ConfigurationError
from protocol.label import DEFAULT_TOPICS, Category
from protocol.policy import TimeWindow
from protocol.roster import MAX_SECRETARIAT_KEYS, MemberStatus

__all__ = [
    "MEMBER_PLACEHOLDER",
    "AgreementSpec",
    "FederationSpec",
    "MemberSpec",
    "NodeDefaults",
    "load_agreement_file",
    "load_federation_spec",
    "member_database_url",
]

#: Stands for each member's id, in lower case, in ``[nodes] database_url``.
MEMBER_PLACEHOLDER = "{member}"

_TOPIC = re.compile(r"^[a-z][a-z0-9-]{0,63}$")
_HOLDER = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
#: A label carries the originator's marking in at most this many characters (protocol.label).
_MAX_MARKING_LEN = 64
_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)


@dataclass(frozen=True)
class MemberSpec:
    """One member as the federation file describes it (no keys yet)."""

    member_id: str
    state: str
    service: str
    status: MemberStatus
    markings: Mapping[Band, str]
    consent: ConsentPolicy


@dataclass(frozen=True)
class AgreementSpec:
    """An agreement from the file, already validated by the protocol's model."""

    agreement: Agreement

    @property
    def agreement_id(self) -> str:
        """The agreement's id (its table name in the file)."""
        return self.agreement.agreement_id


@dataclass(frozen=True)
class NodeDefaults:
    """Settings written into every node's ``node.toml``."""

    suite: Suite
    database_url: str
    window: TimeWindow
    delivery: DeliverySettings
    retention: RetentionSettings = field(default_factory=RetentionSettings)


@dataclass(frozen=True)
class FederationSpec:
    """A validated federation file."""

    path: Path
    name: str
    roster_version: int
    topics: tuple[str, ...]
    hybrid_signatures: bool
    ca_valid_days: int
    cert_valid_days: int
    nodes: NodeDefaults
    members: tuple[MemberSpec, ...]
    agreements: tuple[AgreementSpec, ...]
    #: Scenario roles (e.g. ``originator``) to member ids, for demos.
    demo: Mapping[str, str]
    #: Who holds the secretariat's signing keys, one key each (SPEC §5.3).
    secretariat_holders: tuple[str, ...] = ("secretariat",)
    #: How many of them must sign a roster version.
    secretariat_threshold: int = 1

    def member_ids(self) -> tuple[str, ...]:
        """Member ids in file order."""
        return tuple(m.member_id for m in self.members)


# --- the file's tables ----------------------------------------------------------------------


class _FederationTable(BaseModel):
    model_config = _STRICT

    name: str = Field(min_length=1, max_length=128)
    roster_version: int = Field(default=1, ge=1)
    topics: list[str] = []
    hybrid_signatures: bool = False
    ca_valid_days: int = Field(default=3650, ge=1, le=36500)
    cert_valid_days: int = Field(default=825, ge=1, le=36500)


class _NodesTable(BaseModel):
    model_config = _STRICT

    database_url: str = Field(default="sqlite:///node.db", min_length=1)
    suite: Suite = Field(default=Suite.X25519_AES256GCM, strict=False)
    ingress: IngressTable
    delivery: DeliveryTable = DeliveryTable()
    retention: RetentionTable = RetentionTable()


class _MemberTable(BaseModel):
    model_config = _STRICT

    state: str = Field(min_length=1)
    service: str = Field(min_length=1)
    status: MemberStatus = Field(strict=False)
    markings: dict[str, str]
    consent: ConsentTable = ConsentTable()


class _AgreementTable(BaseModel):
    model_config = _STRICT

    parties: list[str]
    ceilings: dict[str, str]
    categories: list[str]
    topics: list[str]
    trust_model: TrustModel = Field(strict=False)
    reshare_rule: ReshareRule = Field(default=ReshareRule.ORIGINATOR_CONSENT, strict=False)
    senior_party: str = ""
    version: int = Field(default=1, ge=1)
    title: str = ""
    valid_from: datetime | date
    valid_until: datetime | date
    max_retention_days: int = Field(ge=1, le=36500)
    raw_data_allowed: bool


class _SecretariatTable(BaseModel):
    model_config = _STRICT

    holders: list[str] = Field(min_length=1, max_length=MAX_SECRETARIAT_KEYS)
    threshold: int = Field(ge=1)


class _FederationFile(BaseModel):
    model_config = _STRICT

    federation: _FederationTable
    secretariat: _SecretariatTable = _SecretariatTable(holders=["secretariat"], threshold=1)
    nodes: _NodesTable
    members: dict[MemberId, _MemberTable]
    agreements: dict[str, _AgreementTable] = {}
    demo: dict[str, str] = {}


# --- what the tables cannot check alone -------------------------------------------------


class _Where:
    """Raises ``ConfigurationError`` at a place in the file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, *where: str | int, message: str) -> ConfigurationError:
        return ConfigurationError(f"{self.path}: {location(where) or '<top level>'}: {message}")


def member_database_url(template: str, member_id: str) -> str:
    """The database URL of one member's node: ``{member}`` replaced by its id in lower case."""
    return template.replace(MEMBER_PLACEHOLDER, member_id.lower())


def _check_database_url(at: _Where, template: str) -> None:
    """Every member gets its own database (SPEC §11.7): a URL naming one for all is refused.

    A relative SQLite path is one file per node directory; any other URL must say where
    each member's database or schema is, with ``{member}`` (e.g. a database
    ``intelshare_{member}``, or a schema ``?options=-csearch_path%3Dintelshare_{member}``).
    """
    try:
        url = make_url(member_database_url(template, "probe"))
    except ArgumentError as exc:
        raise at.fail("nodes", "database_url", message=f"not a database URL: {exc}") from exc
    if MEMBER_PLACEHOLDER in template:
        return
    database = url.database or ""
    if url.get_backend_name() == "sqlite" and database and database != ":memory:" and not Path(database).is_absolute():
        return
    raise at.fail(
        "nodes",
        "database_url",
        message=(
            "every member's node would share this database; name each member's own with {member} "
            "(e.g. postgresql://host/intelshare_{member}, or a relative SQLite file such as sqlite:///node.db)"
        ),
    )


def _timestamp(at: _Where, where: tuple[str, ...], value: datetime | date) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise at.fail(*where, message="needs a UTC offset (e.g. 2022-08-05T00:00:00Z)")
        return value
    return datetime.combine(value, time(0, 0), tzinfo=UTC)  # a bare date: the start of that day, UTC


def _markings(at: _Where, member_id: str, table: Mapping[str, str]) -> dict[Band, str]:
    out: dict[Band, str] = {}
    for key, text in table.items():
        where = ("members", member_id, "markings", key)
        try:
            band = band_name(key)
        except ValueError as exc:
            raise at.fail(*where, message=str(exc)) from None
        if not text.strip():
            raise at.fail(*where, message="must not be empty")
        if len(text.strip()) > _MAX_MARKING_LEN:
            raise at.fail(*where, message=f"{member_id}'s marking is longer than {_MAX_MARKING_LEN} characters")
        if band in out:
            raise at.fail(*where, message=f"{member_id} has two markings for {band.title}")
        out[band] = text.strip()
    if not out:
        raise at.fail("members", member_id, "markings", message=f"{member_id} has no national markings")
    try:
        NationalMarkings(member_id, out)
    except ConfigurationError as exc:
        raise at.fail("members", member_id, "markings", message=str(exc)) from None
    return out


def _member(at: _Where, member_id: str, table: _MemberTable) -> MemberSpec:
    try:
        consent = table.consent.policy(member_id)
    except ValueError as exc:
        raise at.fail("members", member_id, "consent", message=str(exc)) from None
    return MemberSpec(
        member_id=member_id,
        state=table.state,
        service=table.service,
        status=table.status,
        markings=MappingProxyType(_markings(at, member_id, table.markings)),
        consent=consent,
    )


def _agreement(
    at: _Where, agreement_id: str, t: _AgreementTable, members: Mapping[str, MemberSpec], topics: tuple[str, ...]
) -> AgreementSpec:
    here = ("agreements", agreement_id)
    parties = t.parties
    if len(parties) != 2 or parties[0] == parties[1]:
        raise at.fail(
            *here, "parties", message=f"{agreement_id} needs exactly two different parties, got {list(parties)}"
        )
    for party in parties:
        if party not in members:
            raise at.fail(*here, "parties", message=f"{agreement_id}: party {party} is not in [members]")
    ceilings: dict[str, Band] = {}
    for party, text in t.ceilings.items():
        if party not in parties:
            raise at.fail(*here, "ceilings", party, message=f"{agreement_id}: {party} is not a party to this agreement")
        try:
            ceilings[party] = band_name(text)
        except ValueError:
            raise at.fail(*here, "ceilings", party, message=f"{agreement_id}: unknown band {text!r}") from None
    for party in parties:
        if party not in ceilings:
            raise at.fail(*here, "ceilings", party, message=f"{agreement_id}: no ceiling for items sent by {party}")
    for category in t.categories:
        if category not in Category.__members__.values():
            known = ", ".join(Category)
            raise at.fail(*here, "categories", message=f"{agreement_id}: unknown category {category!r} ({known})")
    for topic in t.topics:
        if topic not in topics:
            message = f"{agreement_id}: topic {topic!r} is not in the federation's vocabulary"
            raise at.fail(*here, "topics", message=message)
    return AgreementSpec(_agreement_model(at, here, agreement_id, t, ceilings))


def _agreement_model(
    at: _Where, here: tuple[str, ...], agreement_id: str, t: _AgreementTable, ceilings: Mapping[str, Band]
) -> Agreement:
    fields: dict[str, object] = {
        "agreement_id": agreement_id,
        "version": t.version,
        "parties": tuple(t.parties),
        "title": t.title,
        "valid_from": _timestamp(at, (*here, "valid_from"), t.valid_from),
        "valid_until": _timestamp(at, (*here, "valid_until"), t.valid_until),
        "ceilings": ceilings,
        "categories": tuple(t.categories),
        "topics": tuple(t.topics),
        "max_retention_days": t.max_retention_days,
        "raw_data_allowed": t.raw_data_allowed,
        "trust_model": t.trust_model,
        "senior_party": t.senior_party or None,
        "reshare_rule": t.reshare_rule,
    }
    try:
        return Agreement.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = tuple(str(p) for p in first.get("loc", ()))
        message = str(first.get("msg", exc)).removeprefix("Value error, ")
        raise at.fail(*here, *where, message=f"{agreement_id}: {message}") from None


def load_agreement_file(path: Path) -> Agreement:
    """An agreement's terms, to propose as a new version (SPEC §6.4): JSON or TOML.

    JSON is the agreement's own JSON object (as ``intelshare agreement show --json``
    prints it); TOML is one ``[agreements.<ID>]`` table as in the federation file. The
    terms are checked as a model here; the node checks them against the roster.
    """
    at = _Where(path)
    if path.suffix.lower() != ".toml":
        try:
            return Agreement.model_validate_json(path.read_bytes())
        except OSError as exc:
            raise ConfigurationError(f"{path}: {exc.strerror or exc}") from exc
        except ValidationError as exc:
            first = exc.errors()[0]
            where = tuple(str(p) for p in first.get("loc", ()))
            message = str(first.get("msg", exc)).removeprefix("Value error, ")
            raise at.fail(*where, message=message) from None
    doc = read_toml(path)
    tables = doc.get("agreements")
    if set(doc) != {"agreements"} or not isinstance(tables, dict) or len(tables) != 1:
        raise at.fail(message="expected exactly one table agreements.<ID>")
    ((agreement_id, raw),) = tables.items()
    here = ("agreements", agreement_id)
    try:
        table = _AgreementTable.model_validate(raw)
    except ValidationError as exc:
        raise config_error(path, exc) from exc
    ceilings: dict[str, Band] = {}
    for party, text in table.ceilings.items():
        try:
            ceilings[party] = band_name(text)
        except ValueError:
            raise at.fail(*here, "ceilings", party, message=f"unknown band {text!r}") from None
    return _agreement_model(at, here, agreement_id, table, ceilings)


def load_federation_spec(path: Path) -> FederationSpec:
    """Parse and validate a federation file. Unknown keys are refused.

    Marking coverage of each agreement is checked by ``init_federation`` with the
    protocol's ``check_markings`` once the roster exists.
    """
    path = path.resolve()
    try:
        doc = _FederationFile.model_validate(read_toml(path))
    except ValidationError as exc:
        raise config_error(path, exc) from exc
    at = _Where(path)
    for topic in doc.federation.topics:
        if not _TOPIC.fullmatch(topic):
            raise at.fail(
                "federation", "topics", message=f"topic {topic!r} is not a lower-case slug (e.g. 'border-clashes')"
            )
    topics = tuple(dict.fromkeys([*DEFAULT_TOPICS, *doc.federation.topics]))
    if not doc.members:
        raise at.fail("members", message="no members")
    members = {member_id: _member(at, member_id, table) for member_id, table in doc.members.items()}
    for spec in members.values():
        for rule in spec.consent.auto_grant:
            if rule.grantee not in members:
                where = ("members", spec.member_id, "consent", "auto_grant")
                raise at.fail(*where, message=f"grantee {rule.grantee} is not in [members]")
    agreements = [_agreement(at, aid, t, members, topics) for aid, t in doc.agreements.items()]
    seen: dict[tuple[str, str], str] = {}
    for spec_ in agreements:
        pair = pair_key(*spec_.agreement.parties)
        if pair in seen:
            message = f"{pair[0]}–{pair[1]} already has agreement {seen[pair]} (one per pair)"
            raise at.fail("agreements", spec_.agreement_id, message=message)
        seen[pair] = spec_.agreement_id
    for role, member_id in doc.demo.items():
        if member_id not in members:
            raise at.fail("demo", role, message=f"{member_id} is not in [members]")
    holders = doc.secretariat.holders
    for holder in holders:
        if not _HOLDER.fullmatch(holder):
            raise at.fail("secretariat", "holders", message=f"holder {holder!r} is not a lower-case name, e.g. 'chair'")
    if len(set(holders)) != len(holders):
        raise at.fail("secretariat", "holders", message="a holder is named twice")
    if doc.secretariat.threshold > len(holders):
        message = f"threshold {doc.secretariat.threshold} is more than the {len(holders)} holders"
        raise at.fail("secretariat", "threshold", message=message)
    fed, nodes = doc.federation, doc.nodes
    _check_database_url(at, nodes.database_url)
    return FederationSpec(
        path=path,
        name=fed.name,
        roster_version=fed.roster_version,
        topics=topics,
        hybrid_signatures=fed.hybrid_signatures,
        ca_valid_days=fed.ca_valid_days,
        cert_valid_days=fed.cert_valid_days,
        nodes=NodeDefaults(
            nodes.suite,
            nodes.database_url,
            nodes.ingress.window(),
            nodes.delivery.settings(),
            nodes.retention.settings(),
        ),
        members=tuple(members.values()),
        agreements=tuple(agreements),
        demo=MappingProxyType(dict(doc.demo)),
        secretariat_holders=tuple(holders),
        secretariat_threshold=doc.secretariat.threshold,
    )
