"""Who may look: the console's token, or a node's auditors, checked on every request.

On loopback with neither, every request is served, but only under a loopback ``Host``
name (another site's page that rebinds its name to 127.0.0.1 gets nothing). With a
token or auditors, a request presents one of:

- ``Authorization: Bearer <token>`` (programs);
- ``Authorization: Basic`` with the token as the password (any user name), or an
  auditor's officer name and token (``officers.toml`` of any node of the federation,
  role ``auditor``);
- the session cookie the sign-in form sets: a random value known only to this process,
  never the token itself, ``HttpOnly`` and ``SameSite=Strict``.

Secrets are compared in constant time; the console keeps no credential on disk.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import secrets
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from starlette.requests import HTTPConnection

from node.config.officers import OfficerRole, Officers

__all__ = ["COOKIE", "Access", "is_loopback"]

COOKIE = "intelshare_console"
#: The shortest console token accepted.
MIN_TOKEN = 16


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` serves this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass
class Access:
    """The console's credentials and its signed-in sessions."""

    token: str | None = None
    #: ``officers.toml`` files whose auditors may sign in.
    auditors: Sequence[Path] = ()
    _sessions: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if self.token is not None and len(self.token) < MIN_TOKEN:
            raise ValueError(f"a console token has at least {MIN_TOKEN} characters")
        self._officers = [Officers(path) for path in self.auditors]

    @property
    def required(self) -> bool:
        """Whether requests must present a credential."""
        return self.token is not None or bool(self._officers)

    def check(self, name: str, secret: str) -> str | None:
        """Who ``name`` and ``secret`` sign in as: "token" or "auditor NAME@…"; None if nobody."""
        if self.token is not None and hmac.compare_digest(secret.encode(), self.token.encode()):
            return "token"
        if not name:
            return None
        for officers in self._officers:
            officer = officers.authenticate(name, secret)
            if officer is not None and officer.role is OfficerRole.AUDITOR:
                return f"auditor {officer.name} of {officers.path.parent.name}"
        return None

    def sign_in(self, who: str) -> str:
        """A new session for ``who``; its value goes in the cookie."""
        value = secrets.token_urlsafe(32)
        with self._lock:
            self._sessions[value] = who
        return value

    def who(self, connection: HTTPConnection) -> str | None:
        """Who made the request (``"anyone"`` when no credential is required); None if nobody valid."""
        if not self.required:
            return "anyone"
        session = connection.cookies.get(COOKIE, "")
        with self._lock:
            known = next((who for value, who in self._sessions.items() if hmac.compare_digest(value, session)), None)
        if known is not None:
            return known
        scheme, _, credential = connection.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and self.token is not None:
            return "token" if hmac.compare_digest(credential.strip().encode(), self.token.encode()) else None
        if scheme.lower() == "basic":
            try:
                name, _, secret = base64.b64decode(credential.strip(), validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return None
            return self.check(name, secret)
        return None
