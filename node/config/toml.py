"""Reading and writing TOML files, and telling the user exactly where a file is wrong.

Reading is ``tomllib``'s; the values are validated by pydantic models with
``extra="forbid"`` and ``strict=True`` (``node.config.settings``,
``node.config.federation_file``). ``config_error`` turns a validation failure into one
``ConfigurationError`` naming the file, the dotted path of the field and the problem:
``node.toml: ingress: unknown key(s): max_agee_seconds``. Writing is ``tomli_w``'s.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import tomli_w
from pydantic import ValidationError

from protocol.errors import ConfigurationError

__all__ = ["config_error", "dump_toml", "location", "read_toml"]


def read_toml(file: Path) -> dict[str, Any]:
    """Parse ``file``; unreadable or invalid TOML is a ``ConfigurationError``."""
    try:
        return tomllib.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(f"{file}: cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigurationError(f"{file}: not UTF-8: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{file}: invalid TOML: {exc}") from exc


def dump_toml(doc: Mapping[str, Any]) -> str:
    """TOML text for a document of tables, arrays, strings, numbers and booleans (UTF-8 kept)."""
    text: str = tomli_w.dumps(dict(doc))
    return text


def location(loc: tuple[int | str, ...]) -> str:
    """``("members", "TR", "consent", "auto_grant", 0)`` as ``members.TR.consent.auto_grant[0]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _message(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    if kind == "missing":
        return "missing"
    message = str(error["msg"]).removeprefix("Value error, ")
    if kind in ("value_error", "assertion_error"):
        return message
    shown = repr(error.get("input"))[:60]
    return f"{message[0].lower()}{message[1:]}, got {shown}"


def config_error(file: Path, exc: ValidationError, *, prefix: tuple[int | str, ...] = ()) -> ConfigurationError:
    """The first problem of a failed validation, as ``file: where: what``.

    Unknown keys of one table are reported together, as a typo usually is one of several.
    """
    errors = exc.errors()
    first = errors[0]
    if first["type"] == "extra_forbidden":
        parent = tuple(first["loc"][:-1])
        unknown = sorted(
            str(e["loc"][-1]) for e in errors if e["type"] == "extra_forbidden" and e["loc"][:-1] == parent
        )
        where = location(prefix + parent) or "<top level>"
        return ConfigurationError(f"{file}: {where}: unknown key(s): {', '.join(unknown)}")
    loc = prefix + tuple(part for part in first["loc"] if not str(part).startswith("function-"))
    return ConfigurationError(f"{file}: {location(loc) or '<top level>'}: {_message(first)}")
