"""The officers of a node: who may use its desk, in which role (SPEC §11.8).

Each officer has a name, a role and a secret token, kept in the node's directory: the
node knows only the token's SHA-256 (``officers.toml``), the officer holds the token
(``officers/<name>.token``, owner-only). A desk call names the officer and carries the
token; the node checks it, so an entry in the log names the officer who acted, not a
name a caller merely claimed. ``officer`` may do everything at the desk; ``auditor``
only reads the log, the outbox and requests (never an item's content).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from node.config.toml import config_error, dump_toml, read_toml
from protocol.errors import ConfigurationError

__all__ = [
    "OFFICER_HEADER",
    "OFFICER_NAME",
    "TOKEN_HEADER",
    "Officer",
    "OfficerRole",
    "Officers",
    "add_officer",
    "token_path",
]

#: The desk call's metadata naming the officer and carrying their token.
OFFICER_HEADER = "x-intelshare-officer"
TOKEN_HEADER = "x-intelshare-token"  # noqa: S105 (a header name, not a secret)

#: An officer's name: lower-case letters, digits, dots and hyphens.
OFFICER_NAME = re.compile(r"^[a-z][a-z0-9.-]{0,31}$")
_TOKEN_BYTES = 32


class OfficerRole(StrEnum):
    """What an officer may do at the desk."""

    OFFICER = "officer"
    AUDITOR = "auditor"


@dataclass(frozen=True)
class Officer:
    """An authenticated desk caller."""

    name: str
    role: OfficerRole


class _OfficerTable(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    role: OfficerRole = Field(strict=False)
    token_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class _OfficersFile(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    officers: dict[str, _OfficerTable] = {}


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_path(node_dir: Path, name: str) -> Path:
    """Where an officer's token is kept in the node's directory."""
    return node_dir / "officers" / f"{name}.token"


class Officers:
    """The node's officers, read from ``officers.toml`` (again whenever the file changes)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen: int | None = None
        self._officers: dict[str, _OfficerTable] = {}

    def _current(self) -> dict[str, _OfficerTable]:
        try:
            mtime = self.path.stat().st_mtime_ns
        except OSError:
            return {}
        if mtime != self._seen:
            try:
                self._officers = dict(_OfficersFile.model_validate(read_toml(self.path)).officers)
            except ValidationError as exc:
                raise config_error(self.path, exc) from exc
            self._seen = mtime
        return self._officers

    def authenticate(self, name: str, token: str) -> Officer | None:
        """The officer if ``token`` is theirs; None otherwise (compared in constant time)."""
        entry = self._current().get(name)
        if entry is None or not hmac.compare_digest(entry.token_sha256, _digest(token)):
            return None
        return Officer(name, entry.role)


def add_officer(node_dir: Path, officers_file: Path, name: str, role: OfficerRole) -> Path:
    """A new officer with a fresh token; returns the token file (owner-only). Refuses an existing name."""
    from node.config.material import write_private_file

    if not OFFICER_NAME.fullmatch(name):
        raise ConfigurationError(f"{name!r} is not an officer name (lower-case letters, digits, dots, hyphens)")
    doc = read_toml(officers_file) if officers_file.is_file() else {}
    officers = dict(doc.get("officers", {}))
    if name in officers:
        raise ConfigurationError(f"{officers_file}: officer {name!r} exists already")
    token = secrets.token_urlsafe(_TOKEN_BYTES)
    path = token_path(node_dir, name)
    path.parent.mkdir(mode=0o700, exist_ok=True)
    write_private_file(path, token.encode() + b"\n")
    officers[name] = {"role": role.value, "token_sha256": _digest(token)}
    officers_file.write_text(dump_toml({"officers": officers}), encoding="utf-8")
    return path
