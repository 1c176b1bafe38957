"""A node's configuration (``node.toml``) and the key material it points at.

``load_node_config`` parses and validates the TOML only (no file other than
``node.toml`` is read). ``load_material`` then reads every key, certificate and
signed federation document it names and verifies them against each other: the roster
against the secretariat key, the agreements against the roster, and this node's own
keys and certificate against its roster entry. Every problem is a typed error whose
message names the file and the field.
"""

from __future__ import annotations

import base64
import binascii
import math
import os
import re
import stat
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from enum import Enum, StrEnum
from pathlib import Path
from typing import Any, Literal, NoReturn

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from pydantic import ValidationError
from sqlalchemy import make_url
from sqlalchemy.exc import ArgumentError

from node import pki
from protocol.agreement import AgreementBook
from protocol.classification import Band, parse_band
from protocol.envelope import Suite
from protocol.errors import ConfigurationError, MalformedError, RollbackError, SignatureError
from protocol.keys import HpkeKeyPair, PublicSigningKey, SigningKey
from protocol.policy import TimeWindow
from protocol.roster import Member, Roster, accept_roster
from protocol.statements import Signed

__all__ = [
    "AT_REST_KEY_LEN",
    "AutoGrant",
    "ConsentDecision",
    "ConsentMode",
    "ConsentPolicy",
    "DeliverySettings",
    "FederationPaths",
    "KeyPaths",
    "NodeConfig",
    "NodeMaterial",
    "TomlTable",
    "dump_toml",
    "load_material",
    "load_node_config",
    "parse_consent",
    "parse_delivery",
    "parse_window",
    "write_node_config",
    "write_private_file",
]

#: The at-rest key is an AES-256 key.
AT_REST_KEY_LEN = 32
_MEMBER_ID = re.compile(r"^[A-Z]{2}(-[A-Z0-9]{1,16})?$")
_HOST_PORT = re.compile(r"^(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(?P<port>[0-9]{1,5})$")


class _Missing(Enum):
    MISSING = "missing"


_MISSING = _Missing.MISSING


# --------------------------------------------------------------------------- TOML reading


class TomlTable:
    """A parsed TOML table read key by key; ``done()`` refuses any key nobody read.

    Every error names the file and the dotted path of the field, so a typo in a
    hand-edited configuration is reported where it is rather than silently ignored.
    """

    def __init__(self, file: Path, where: str, data: Mapping[str, Any]) -> None:
        self.file = file
        self.where = where
        self._data = dict(data)
        self._read: set[str] = set()

    @classmethod
    def load(cls, file: Path) -> TomlTable:
        """Parse ``file``; unreadable or invalid TOML is a ``ConfigurationError``."""
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigurationError(f"{file}: cannot read: {exc.strerror or exc}") from exc
        except UnicodeDecodeError as exc:
            raise ConfigurationError(f"{file}: not UTF-8: {exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigurationError(f"{file}: invalid TOML: {exc}") from exc
        return cls(file, "", data)

    def path(self, key: str) -> str:
        """Dotted path of ``key`` in the file, for messages."""
        return f"{self.where}.{key}" if self.where else key

    def fail(self, key: str | None, message: str) -> NoReturn:
        """Raise a ``ConfigurationError`` naming the file and the field."""
        where = self.where if key is None else self.path(key)
        raise ConfigurationError(f"{self.file}: {where or '<top level>'}: {message}")

    def has(self, key: str) -> bool:
        """Whether ``key`` is present."""
        return key in self._data

    def names(self) -> list[str]:
        """Every key of the table, in file order (all count as read)."""
        self._read.update(self._data)
        return list(self._data)

    def _get(self, key: str, default: object, kind: str) -> Any:
        self._read.add(key)
        if key in self._data:
            return self._data[key]
        if default is _MISSING:
            self.fail(key, f"missing (expected {kind})")
        return default

    def string(self, key: str, default: str | _Missing = _MISSING, *, nonempty: bool = True) -> str:
        """A string value (``default`` if absent and one is given)."""
        if not isinstance(default, _Missing) and key not in self._data:
            self._read.add(key)
            return default
        value = self._get(key, default, "a string")
        if not isinstance(value, str):
            self.fail(key, f"expected a string, got {_kind(value)}")
        if nonempty and not value.strip():
            self.fail(key, "must not be empty")
        return value

    def integer(
        self, key: str, default: int | _Missing = _MISSING, *, minimum: int | None = None, maximum: int | None = None
    ) -> int:
        """An integer value within bounds."""
        if not isinstance(default, _Missing) and key not in self._data:
            self._read.add(key)
            return default
        value = self._get(key, default, "an integer")
        if not isinstance(value, int) or isinstance(value, bool):
            self.fail(key, f"expected an integer, got {_kind(value)}")
        if minimum is not None and value < minimum:
            self.fail(key, f"must be at least {minimum}, got {value}")
        if maximum is not None and value > maximum:
            self.fail(key, f"must be at most {maximum}, got {value}")
        return value

    def number(self, key: str, default: float | _Missing = _MISSING, *, positive: bool = True) -> float:
        """A finite number (integers accepted), positive unless told otherwise."""
        if not isinstance(default, _Missing) and key not in self._data:
            self._read.add(key)
            return default
        value = self._get(key, default, "a number")
        if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
            self.fail(key, f"expected a finite number, got {_kind(value)}")
        if positive and value <= 0:
            self.fail(key, f"must be positive, got {value}")
        return float(value)

    def boolean(self, key: str, default: bool | _Missing = _MISSING) -> bool:
        """A boolean value (TOML ``true``/``false``, never a string)."""
        if not isinstance(default, _Missing) and key not in self._data:
            self._read.add(key)
            return default
        value = self._get(key, default, "true or false")
        if not isinstance(value, bool):
            self.fail(key, f"expected true or false, got {_kind(value)}")
        return value

    def strings(self, key: str, default: list[str] | _Missing = _MISSING) -> list[str]:
        """An array of strings."""
        if not isinstance(default, _Missing) and key not in self._data:
            self._read.add(key)
            return list(default)
        value = self._get(key, default, "an array of strings")
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.fail(key, f"expected an array of strings, got {_kind(value)}")
        return list(value)

    def table(self, key: str, *, optional: bool = False) -> TomlTable:
        """A sub-table; an absent optional one reads as empty."""
        value = self._get(key, {} if optional else _MISSING, "a table")
        if not isinstance(value, dict):
            self.fail(key, f"expected a table, got {_kind(value)}")
        return TomlTable(self.file, self.path(key), value)

    def tables(self, key: str) -> list[TomlTable]:
        """An array of tables (``[[key]]``); absent reads as empty."""
        value = self._get(key, [], "an array of tables")
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            self.fail(key, f"expected an array of tables, got {_kind(value)}")
        return [TomlTable(self.file, f"{self.path(key)}[{i}]", v) for i, v in enumerate(value)]

    def raw(self, key: str) -> Any:
        """The value as parsed (for types this reader has no method for, e.g. datetimes)."""
        return self._get(key, _MISSING, "a value")

    def done(self) -> None:
        """Refuse keys that were never read: they are typos or unsupported settings."""
        unknown = [k for k in self._data if k not in self._read]
        if unknown:
            where = self.where or "<top level>"
            raise ConfigurationError(f"{self.file}: {where}: unknown key(s): {', '.join(sorted(unknown))}")


def _kind(value: object) -> str:
    return f"{type(value).__name__} {value!r}"[:80]


# --------------------------------------------------------------------------- TOML writing


def _toml_string(value: str) -> str:
    out = ['"']
    for ch in value:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _toml_string(key)


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"cannot write non-finite number {value!r}")
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, Sequence):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _is_table_array(value: object) -> bool:
    return isinstance(value, list | tuple) and bool(value) and all(isinstance(v, Mapping) for v in value)


def dump_toml(doc: Mapping[str, object]) -> str:
    """TOML text for a document of tables, arrays of tables, strings, numbers and booleans.

    ``tomllib`` only reads; this writer covers what node configurations need and
    escapes strings properly (UTF-8 is kept as is).
    """
    lines: list[str] = []

    def emit(table: Mapping[str, object], prefix: str) -> None:
        scalars = [(k, v) for k, v in table.items() if not isinstance(v, Mapping) and not _is_table_array(v)]
        for key, value in scalars:
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
        for key, value in table.items():
            name = f"{prefix}.{_toml_key(key)}" if prefix else _toml_key(key)
            if isinstance(value, Mapping):
                lines.extend(["", f"[{name}]"])
                emit(value, name)
            elif _is_table_array(value):
                assert isinstance(value, list | tuple)
                for entry in value:
                    lines.extend(["", f"[[{name}]]"])
                    emit(entry, name)

    emit(doc, "")
    return "\n".join(lines).lstrip("\n") + "\n"


def write_private_file(path: Path, data: bytes) -> None:
    """Create ``path`` readable only by the owner (0600); refuse to replace an existing file."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)  # the umask may have removed bits, never adds; be explicit
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def write_node_config(path: Path, doc: Mapping[str, object]) -> NodeConfig:
    """Write ``doc`` as ``node.toml`` and load it back, so a written config always validates."""
    path.write_text(dump_toml(doc), encoding="utf-8")
    return load_node_config(path)


# --------------------------------------------------------------------------- the config


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
class NodeConfig:
    """A validated ``node.toml``; every path is absolute."""

    path: Path
    member_id: str
    listen: str
    desk_socket: Path
    database_url: str
    suite: Suite
    keys: KeyPaths
    federation: FederationPaths
    window: TimeWindow
    delivery: DeliverySettings = field(default_factory=DeliverySettings)
    consent: ConsentPolicy = field(default_factory=ConsentPolicy)

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


def _resolve(base: Path, table: TomlTable, key: str, default: str | _Missing = _MISSING) -> Path:
    text = table.string(key, default)
    if "\x00" in text:
        table.fail(key, "path contains a NUL byte")
    # Relative paths resolve against node.toml's directory, not the process's cwd.
    return (base / Path(text).expanduser()).resolve()


def _database_url(base: Path, table: TomlTable) -> str:
    text = table.string("database_url")
    try:
        url = make_url(text)
    except ArgumentError as exc:
        table.fail("database_url", f"not a database URL: {exc}")
    database = url.database
    if url.get_backend_name() == "sqlite" and database and database != ":memory:" and not database.startswith("file:"):
        path = Path(database).expanduser()
        if not path.is_absolute():
            url = url.set(database=str((base / path).resolve()))
    return url.render_as_string(hide_password=False)


def _listen(table: TomlTable) -> str:
    text = table.string("listen")
    match = _HOST_PORT.fullmatch(text)
    if match is None or not 1 <= int(match["port"]) <= 65535:
        table.fail("listen", f"expected host:port with a port in 1..65535, got {text!r}")
    return text


def parse_window(table: TomlTable) -> TimeWindow:
    """The ``[ingress]`` table. No defaults: the replay window is a security choice."""
    window = TimeWindow(
        max_age=timedelta(seconds=table.integer("max_age_seconds", minimum=1)),
        max_future_skew=timedelta(seconds=table.integer("max_future_skew_seconds", minimum=0)),
    )
    table.done()
    return window


def parse_delivery(table: TomlTable) -> DeliverySettings:
    """The ``[delivery]`` table; absent keys take ``DeliverySettings``' defaults."""
    dd = DeliverySettings()
    delivery = DeliverySettings(
        max_in_flight=table.integer("max_in_flight", dd.max_in_flight, minimum=1),
        batch_max=table.integer("batch_max", dd.batch_max, minimum=1),
        retry_base_seconds=table.number("retry_base_seconds", dd.retry_base_seconds),
        retry_max_seconds=table.number("retry_max_seconds", dd.retry_max_seconds),
        deadline_seconds=table.number("deadline_seconds", dd.deadline_seconds),
    )
    if delivery.retry_max_seconds < delivery.retry_base_seconds:
        table.fail("retry_max_seconds", "must not be below retry_base_seconds")
    table.done()
    return delivery


def parse_consent(table: TomlTable, member_id: str) -> ConsentPolicy:
    """The ``[consent]`` table of ``member_id``'s node."""
    mode_text = table.string("mode", ConsentMode.MANUAL.value)
    try:
        mode = ConsentMode(mode_text)
    except ValueError:
        table.fail("mode", f"expected one of {', '.join(m.value for m in ConsentMode)}, got {mode_text!r}")
    rules: list[AutoGrant] = []
    for rule in table.tables("auto_grant"):
        grantee = rule.string("grantee")
        if not _MEMBER_ID.fullmatch(grantee):
            rule.fail("grantee", f"not a member id: {grantee!r}")
        if grantee == member_id:
            rule.fail("grantee", f"{member_id} cannot grant consent to itself")
        band_text = rule.string("max_band")
        try:
            band = parse_band(band_text)
        except ValueError:
            rule.fail("max_band", f"unknown band {band_text!r} (expected one of {', '.join(Band.__members__)})")
        rules.append(
            AutoGrant(
                grantee=grantee,
                max_band=band,
                valid_days=rule.integer("valid_days", minimum=1, maximum=3650),
                transferable=rule.boolean("transferable", False),
            )
        )
        rule.done()
    otherwise = table.string("otherwise", "manual")
    if otherwise not in ("manual", "deny"):
        table.fail("otherwise", f"expected 'manual' or 'deny', got {otherwise!r}")
    table.done()
    if mode is not ConsentMode.RULES:
        for key in ("auto_grant", "otherwise"):
            if table.has(key):
                table.fail(key, f"only used with mode = 'rules', not {mode.value!r}")
    if mode is ConsentMode.RULES and not rules:
        table.fail("auto_grant", "mode = 'rules' needs at least one [[auto_grant]] rule")
    return ConsentPolicy(mode=mode, auto_grant=tuple(rules), otherwise="deny" if otherwise == "deny" else "manual")


def load_node_config(path: Path) -> NodeConfig:
    """Parse and validate ``node.toml``. Unknown keys are refused; reads no other file."""
    path = path.resolve()
    base = path.parent
    doc = TomlTable.load(path)

    node = doc.table("node")
    member_id = node.string("member_id")
    if not _MEMBER_ID.fullmatch(member_id):
        node.fail("member_id", f"not a member id (e.g. 'TR' or 'TR-MIT'): {member_id!r}")
    listen = _listen(node)
    desk_socket = _resolve(base, node, "desk_socket", "desk.sock")
    database_url = _database_url(base, node)
    suite_text = node.string("suite")
    try:
        suite = Suite(suite_text)
    except ValueError:
        node.fail("suite", f"unknown suite {suite_text!r}; expected one of: {'; '.join(s.value for s in Suite)}")
    node.done()

    k = doc.table("keys")
    keys = KeyPaths(
        signing=_resolve(base, k, "signing"),
        hpke=_resolve(base, k, "hpke"),
        tls_cert=_resolve(base, k, "tls_cert"),
        tls_key=_resolve(base, k, "tls_key"),
        at_rest=_resolve(base, k, "at_rest"),
    )
    k.done()

    f = doc.table("federation")
    federation = FederationPaths(
        ca=_resolve(base, f, "ca"),
        secretariat=_resolve(base, f, "secretariat"),
        roster=_resolve(base, f, "roster"),
        agreements=_resolve(base, f, "agreements"),
    )
    f.done()

    window = parse_window(doc.table("ingress"))
    delivery = parse_delivery(doc.table("delivery", optional=True))
    consent = parse_consent(doc.table("consent", optional=True), member_id)
    doc.done()
    return NodeConfig(
        path=path,
        member_id=member_id,
        listen=listen,
        desk_socket=desk_socket,
        database_url=database_url,
        suite=suite,
        keys=keys,
        federation=federation,
        window=window,
        delivery=delivery,
        consent=consent,
    )


# --------------------------------------------------------------------------- the material


@dataclass(frozen=True, eq=False)
class NodeMaterial:
    """Everything a node needs to run, read from disk and verified against the roster."""

    config: NodeConfig
    signing_key: SigningKey
    hpke_keys: HpkeKeyPair
    tls_cert_pem: bytes
    tls_key_pem: bytes
    ca_pem: bytes
    at_rest_key: bytes
    secretariat: PublicSigningKey
    roster_statement: Signed
    roster: Roster
    agreements: AgreementBook
    agreement_statements: tuple[Signed, ...]

    @property
    def member(self) -> Member:
        """This node's own roster entry."""
        member = self.roster.member(self.config.member_id)
        assert member is not None  # load_material checked it
        return member


def _read(cfg: NodeConfig, path: Path, what: str, *, private: bool = False) -> bytes:
    try:
        if private:
            mode = path.stat().st_mode
            # Like ssh: a private key others can read is refused, not silently used.
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise ConfigurationError(
                    f"{cfg.path}: {cfg.member_id}'s {what} {path} is accessible by others "
                    f"(mode {stat.S_IMODE(mode):04o}); it must be 0600"
                )
        return path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"{cfg.path}: {cfg.member_id}'s {what} {path}: {exc.strerror or exc}") from exc


def _signed(cfg: NodeConfig, path: Path, what: str) -> Signed:
    data = _read(cfg, path, what)
    try:
        return Signed.from_bytes(data)
    except MalformedError as exc:
        raise MalformedError(f"{path}: {what} is not a signed statement: {exc}") from exc


def _check_tls(cfg: NodeConfig, member: Member, cert_pem: bytes, key_pem: bytes, ca_pem: bytes) -> None:
    where = f"{cfg.path}: {cfg.member_id}'s TLS"
    try:
        cert = pki.cert_from_pem(cert_pem)
        key = pki.key_from_pem(key_pem)
        ca = pki.cert_from_pem(ca_pem)
    except ValueError as exc:
        raise ConfigurationError(f"{where} certificate, key or CA does not load: {exc}") from exc
    der = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*der) != cert.public_key().public_bytes(*der):
        raise ConfigurationError(f"{where} key {cfg.keys.tls_key} does not match certificate {cfg.keys.tls_cert}")
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise ConfigurationError(f"{where} certificate was not issued by the CA {cfg.federation.ca}") from exc
    if member.tls_identity not in pki.cert_san_uris(cert):
        raise ConfigurationError(f"{where} certificate does not carry the roster's identity {member.tls_identity}")
    if member.tls_fingerprint is not None and pki.cert_fingerprint(cert) != member.tls_fingerprint:
        raise ConfigurationError(f"{where} certificate is not the one the roster names (fingerprint differs)")


def _at_rest(cfg: NodeConfig, data: bytes) -> bytes:
    try:
        key = base64.b64decode(data.strip(), validate=True)
    except binascii.Error as exc:
        raise ConfigurationError(f"{cfg.path}: at-rest key {cfg.keys.at_rest} is not base64") from exc
    if len(key) != AT_REST_KEY_LEN:
        raise ConfigurationError(
            f"{cfg.path}: at-rest key {cfg.keys.at_rest} has {len(key)} bytes, expected {AT_REST_KEY_LEN}"
        )
    return key


def load_material(cfg: NodeConfig) -> NodeMaterial:
    """Read every file ``cfg`` names and verify it; the first problem raises.

    Bad or inconsistent local files raise ``ConfigurationError``; a roster or agreement
    whose signature fails raises the protocol's ``SignatureError``/``MalformedError``
    with the file named, since those documents come from other parties.
    """
    keys, fed = cfg.keys, cfg.federation
    try:
        signing = SigningKey.from_json(_read(cfg, keys.signing, "signing key", private=True).decode())
        hpke = HpkeKeyPair.from_json(_read(cfg, keys.hpke, "HPKE key", private=True).decode())
    except (ConfigurationError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"{cfg.path}: {cfg.member_id}: {exc}") from exc
    tls_cert = _read(cfg, keys.tls_cert, "TLS certificate")
    tls_key = _read(cfg, keys.tls_key, "TLS key", private=True)
    at_rest = _at_rest(cfg, _read(cfg, keys.at_rest, "at-rest key", private=True))
    ca_pem = _read(cfg, fed.ca, "federation CA")
    try:
        secretariat = PublicSigningKey.model_validate_json(_read(cfg, fed.secretariat, "secretariat key"))
    except ValidationError as exc:
        raise ConfigurationError(f"{fed.secretariat}: not a public signing key: {exc.errors()[0]['msg']}") from exc

    roster_statement = _signed(cfg, fed.roster, "roster")
    try:
        roster = accept_roster(roster_statement, secretariat=[secretariat], current=None)
    except (SignatureError, MalformedError, RollbackError) as exc:
        raise type(exc)(f"{fed.roster}: roster refused: {exc}") from exc

    member = roster.member(cfg.member_id)
    if member is None:
        raise ConfigurationError(f"{cfg.path}: member {cfg.member_id} is not in the roster {fed.roster}")
    if signing.public() != member.signing_key:
        raise ConfigurationError(f"{cfg.path}: {cfg.member_id}'s signing key {keys.signing} is not the roster's")
    if hpke.public() != member.hpke_keys:
        raise ConfigurationError(f"{cfg.path}: {cfg.member_id}'s HPKE key {keys.hpke} is not the roster's")
    _check_tls(cfg, member, tls_cert, tls_key, ca_pem)
    for rule in cfg.consent.auto_grant:
        if roster.member(rule.grantee) is None:
            raise ConfigurationError(f"{cfg.path}: consent.auto_grant grantee {rule.grantee} is not in the roster")

    book = AgreementBook()
    statements: list[Signed] = []
    try:
        files = sorted(fed.agreements.glob("*.json"))
    except OSError as exc:
        raise ConfigurationError(f"{cfg.path}: agreements directory {fed.agreements}: {exc}") from exc
    if not fed.agreements.is_dir():
        raise ConfigurationError(f"{cfg.path}: agreements directory {fed.agreements} does not exist")
    for file in files:
        statement = _signed(cfg, file, "agreement")
        try:
            book.accept(statement, roster)
        except ConfigurationError as exc:
            raise ConfigurationError(f"{file}: {exc}") from exc
        except (SignatureError, MalformedError, RollbackError) as exc:
            raise type(exc)(f"{file}: agreement refused: {exc}") from exc
        statements.append(statement)

    return NodeMaterial(
        config=cfg,
        signing_key=signing,
        hpke_keys=hpke,
        tls_cert_pem=tls_cert,
        tls_key_pem=tls_key,
        ca_pem=ca_pem,
        at_rest_key=at_rest,
        secretariat=secretariat,
        roster_statement=roster_statement,
        roster=roster,
        agreements=book,
        agreement_statements=tuple(statements),
    )
