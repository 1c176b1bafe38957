"""A node's configuration, ``node.toml``: parsed strictly, every path resolved (SPEC §11).

``load_node_config`` reads ``node.toml`` only (no other file) and validates it with
the pydantic models below (``extra="forbid"``, ``strict=True``): an unknown key, a
wrong type or a value out of range is a ``ConfigurationError`` naming the file, the
table and the field. Relative paths resolve against ``node.toml``'s directory.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from sqlalchemy import make_url
from sqlalchemy.exc import ArgumentError

from node.config.consent import ConsentPolicy, ConsentTable
from node.config.toml import config_error, dump_toml, read_toml
from protocol._model import MemberId
from protocol.envelope import Suite
from protocol.errors import ConfigurationError
from protocol.policy import TimeWindow

__all__ = [
    "DeliverySettings",
    "DeliveryTable",
    "FederationPaths",
    "InboundSettings",
    "InboundTable",
    "IngressTable",
    "KeyPaths",
    "NodeConfig",
    "RetentionSettings",
    "RetentionTable",
    "WitnessSettings",
    "WitnessTable",
    "load_node_config",
    "write_node_config",
]

_HOST_PORT = re.compile(r"^(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(?P<port>[0-9]{1,5})$")
_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)


@dataclass(frozen=True)
class KeyPaths:
    """Absolute paths of the node's private keys and certificate."""

    signing: Path
    hpke: Path
    tls_cert: Path
    tls_key: Path
    at_rest: Path


@dataclass(frozen=True)
class FederationPaths:
    """Absolute paths of the federation documents the node trusts."""

    ca: Path
    secretariat: Path
    roster: Path
    agreements: Path


@dataclass(frozen=True)
class DeliverySettings:
    """Outbound delivery tuning."""

    max_in_flight: int = 64
    batch_max: int = 256
    retry_base_seconds: float = 0.2
    retry_max_seconds: float = 10.0
    deadline_seconds: float = 10.0


@dataclass(frozen=True)
class WitnessSettings:
    """When a node asks its peers to witness its audit log (SPEC §11.10.6)."""

    #: At most this long between exchanges with a peer while the log grows.
    interval_seconds: float = 5.0
    #: And at least once per this many new entries.
    every_entries: int = 1000


@dataclass(frozen=True)
class InboundSettings:
    """Bounds on what peers hold open at this node, and how refusals are logged (SPEC §11.3)."""

    #: A ``DeliverBatches`` stream with every batch answered and nothing new for this long is ended.
    stream_idle_seconds: float = 30.0
    #: The most ``DeliverBatches`` streams one peer may hold open at once.
    max_streams_per_peer: int = 4
    #: Refused requests are logged once per peer and this interval, with a count.
    refusal_log_seconds: float = 10.0


@dataclass(frozen=True)
class RetentionSettings:
    """When this node destroys the content of items whose retention ended (SPEC §11.13)."""

    #: How often the retention pump looks for copies whose retention ended.
    interval_seconds: float = 1.0
    #: This node's own originals: ``label`` purges them like every holder's copy, at the
    #: label's ``retain_until`` plus ``originals_extra_days``; ``keep`` keeps them.
    originals: Literal["label", "keep"] = "label"
    originals_extra_days: int = 0

    @property
    def originals_extra(self) -> timedelta:
        """How long after the label's ``retain_until`` the originator keeps its own copy."""
        return timedelta(days=self.originals_extra_days)


@dataclass(frozen=True)
class NodeConfig:
    """A validated ``node.toml``; every path is absolute."""

    path: Path
    member_id: str
    listen: str
    desk_socket: Path
    #: Who may use the desk, in which role (``node.config.officers``).
    officers: Path
    database_url: str
    suite: Suite
    keys: KeyPaths
    federation: FederationPaths
    window: TimeWindow
    delivery: DeliverySettings = field(default_factory=DeliverySettings)
    consent: ConsentPolicy = field(default_factory=ConsentPolicy)
    witness: WitnessSettings = field(default_factory=WitnessSettings)
    inbound: InboundSettings = field(default_factory=InboundSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)

    @property
    def node_dir(self) -> Path:
        """The directory relative paths were resolved against."""
        return self.path.parent

    @property
    def listen_host(self) -> str:
        """Host part of ``listen`` (IPv6 without brackets)."""
        return self.listen.rsplit(":", 1)[0].strip("[]")

    @property
    def listen_port(self) -> int:
        """Port part of ``listen``."""
        return int(self.listen.rsplit(":", 1)[1])


def _no_nul(path: str) -> str:
    if "\x00" in path:
        raise ValueError("path contains a NUL byte")
    if not path.strip():
        raise ValueError("must not be empty")
    return path


class _NodeTable(BaseModel):
    model_config = _STRICT

    member_id: MemberId
    listen: str
    desk_socket: str = "desk.sock"
    officers: str = "officers.toml"
    database_url: str = Field(min_length=1)
    suite: Suite

    @field_validator("listen")
    @classmethod
    def _host_port(cls, text: str) -> str:
        match = _HOST_PORT.fullmatch(text)
        if match is None or not 1 <= int(match["port"]) <= 65535:
            raise ValueError(f"expected host:port with a port in 1..65535, got {text!r}")
        return text

    @field_validator("desk_socket", "officers")
    @classmethod
    def _path(cls, text: str) -> str:
        return _no_nul(text)

    @field_validator("database_url")
    @classmethod
    def _url(cls, text: str) -> str:
        try:
            make_url(text)
        except ArgumentError as exc:
            raise ValueError(f"not a database URL: {exc}") from exc
        return text

    @field_validator("suite", mode="before")
    @classmethod
    def _suite(cls, text: object) -> object:
        if isinstance(text, str) and text not in Suite._value2member_map_:
            raise ValueError(f"unknown suite {text!r}; expected one of: {'; '.join(s.value for s in Suite)}")
        return Suite(text) if isinstance(text, str) else text


class _PathsTable(BaseModel):
    model_config = _STRICT

    @model_validator(mode="before")
    @classmethod
    def _paths(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            for value in data.values():
                if isinstance(value, str):
                    _no_nul(value)
        return data


class _KeysTable(_PathsTable):
    signing: str
    hpke: str
    tls_cert: str
    tls_key: str
    at_rest: str


class _FederationTable(_PathsTable):
    ca: str
    secretariat: str
    roster: str
    agreements: str


class IngressTable(BaseModel):
    """``[ingress]``. No defaults: the replay window is a security choice (SPEC §9.2.7)."""

    model_config = _STRICT

    max_age_seconds: int = Field(ge=1)
    max_future_skew_seconds: int = Field(ge=0)

    def window(self) -> TimeWindow:
        """The time window envelopes must fall in."""
        return TimeWindow(timedelta(seconds=self.max_age_seconds), timedelta(seconds=self.max_future_skew_seconds))


_DEFAULT_DELIVERY = DeliverySettings()


class DeliveryTable(BaseModel):
    """``[delivery]``; absent keys take ``DeliverySettings``' defaults."""

    model_config = _STRICT

    max_in_flight: int = Field(default=_DEFAULT_DELIVERY.max_in_flight, ge=1)
    batch_max: int = Field(default=_DEFAULT_DELIVERY.batch_max, ge=1)
    retry_base_seconds: float = Field(default=_DEFAULT_DELIVERY.retry_base_seconds, gt=0, allow_inf_nan=False)
    retry_max_seconds: float = Field(default=_DEFAULT_DELIVERY.retry_max_seconds, gt=0, allow_inf_nan=False)
    deadline_seconds: float = Field(default=_DEFAULT_DELIVERY.deadline_seconds, gt=0, allow_inf_nan=False)

    @field_validator("retry_max_seconds")
    @classmethod
    def _not_below_base(cls, value: float, info: Any) -> float:
        if value < info.data.get("retry_base_seconds", 0):
            raise ValueError("must not be below retry_base_seconds")
        return value

    def settings(self) -> DeliverySettings:
        """As the runtime takes them."""
        return DeliverySettings(**self.model_dump())


_DEFAULT_WITNESS = WitnessSettings()


class WitnessTable(BaseModel):
    """``[witness]``; absent keys take ``WitnessSettings``' defaults."""

    model_config = _STRICT

    interval_seconds: float = Field(default=_DEFAULT_WITNESS.interval_seconds, gt=0, allow_inf_nan=False)
    every_entries: int = Field(default=_DEFAULT_WITNESS.every_entries, ge=1)

    def settings(self) -> WitnessSettings:
        """As the runtime takes them."""
        return WitnessSettings(**self.model_dump())


_DEFAULT_INBOUND = InboundSettings()


class InboundTable(BaseModel):
    """``[inbound]``; absent keys take ``InboundSettings``' defaults."""

    model_config = _STRICT

    stream_idle_seconds: float = Field(default=_DEFAULT_INBOUND.stream_idle_seconds, gt=0, allow_inf_nan=False)
    max_streams_per_peer: int = Field(default=_DEFAULT_INBOUND.max_streams_per_peer, ge=1)
    refusal_log_seconds: float = Field(default=_DEFAULT_INBOUND.refusal_log_seconds, gt=0, allow_inf_nan=False)

    def settings(self) -> InboundSettings:
        """As the runtime takes them."""
        return InboundSettings(**self.model_dump())


_DEFAULT_RETENTION = RetentionSettings()


class RetentionTable(BaseModel):
    """``[retention]``; absent keys take ``RetentionSettings``' defaults (SPEC §11.13)."""

    model_config = _STRICT

    interval_seconds: float = Field(default=_DEFAULT_RETENTION.interval_seconds, gt=0, allow_inf_nan=False)
    originals: Literal["label", "keep"] = _DEFAULT_RETENTION.originals
    originals_extra_days: int = Field(default=_DEFAULT_RETENTION.originals_extra_days, ge=0, le=36500)

    @model_validator(mode="after")
    def _extra_only_with_label(self) -> RetentionTable:
        if self.originals == "keep" and self.originals_extra_days:
            raise ValueError("originals_extra_days applies only with originals = 'label'")
        return self

    def settings(self) -> RetentionSettings:
        """As the runtime takes them."""
        return RetentionSettings(**self.model_dump())


class _NodeFile(BaseModel):
    model_config = _STRICT

    node: _NodeTable
    keys: _KeysTable
    federation: _FederationTable
    ingress: IngressTable
    delivery: DeliveryTable = DeliveryTable()
    consent: ConsentTable = ConsentTable()
    witness: WitnessTable = WitnessTable()
    inbound: InboundTable = InboundTable()
    retention: RetentionTable = RetentionTable()


def _database_url(base: Path, text: str) -> str:
    url = make_url(text)
    database = url.database
    if url.get_backend_name() == "sqlite" and database and database != ":memory:" and not database.startswith("file:"):
        path = Path(database).expanduser()
        if not path.is_absolute():
            url = url.set(database=str((base / path).resolve()))
    return url.render_as_string(hide_password=False)


def load_node_config(path: Path) -> NodeConfig:
    """Parse and validate ``node.toml``. Unknown keys are refused; reads no other file."""
    path = path.resolve()
    base = path.parent
    try:
        doc = _NodeFile.model_validate(read_toml(path))
    except ValidationError as exc:
        raise config_error(path, exc) from exc
    try:
        consent = doc.consent.policy(doc.node.member_id)
    except (ValueError, ConfigurationError) as exc:
        raise ConfigurationError(f"{path}: consent: {exc}") from exc

    def resolve(text: str) -> Path:
        # Relative paths resolve against node.toml's directory, not the process's cwd.
        return (base / Path(text).expanduser()).resolve()

    keys, fed = doc.keys, doc.federation
    return NodeConfig(
        path=path,
        member_id=doc.node.member_id,
        listen=doc.node.listen,
        desk_socket=resolve(doc.node.desk_socket),
        officers=resolve(doc.node.officers),
        database_url=_database_url(base, doc.node.database_url),
        suite=doc.node.suite,
        keys=KeyPaths(*(resolve(p) for p in (keys.signing, keys.hpke, keys.tls_cert, keys.tls_key, keys.at_rest))),
        federation=FederationPaths(*(resolve(p) for p in (fed.ca, fed.secretariat, fed.roster, fed.agreements))),
        window=doc.ingress.window(),
        delivery=doc.delivery.settings(),
        consent=consent,
        witness=doc.witness.settings(),
        inbound=doc.inbound.settings(),
        retention=doc.retention.settings(),
    )


def write_node_config(path: Path, doc: Mapping[str, object]) -> NodeConfig:
    """Write ``doc`` as ``node.toml`` and load it back, so a written config always validates."""
    path.write_text(dump_toml(doc), encoding="utf-8")
    return load_node_config(path)
