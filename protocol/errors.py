"""Typed errors of the protocol core.

Every error says who is at fault (SPEC §3.4): ``LocalProtocolError`` means this side
asked for something the protocol forbids (a caller bug or a user mistake);
``RemoteProtocolError`` means bytes that came from someone else (a peer, a file,
a signer) failed verification. Envelope opening has one opaque error on purpose.
"""

from __future__ import annotations

__all__ = [
    "ConfigurationError",
    "IntelshareError",
    "LocalProtocolError",
    "MalformedError",
    "NoticeMismatchError",
    "OpenError",
    "ProofError",
    "RemoteProtocolError",
    "RollbackError",
    "SignatureError",
]


class IntelshareError(Exception):
    """Base class of every error the protocol core raises."""


class LocalProtocolError(IntelshareError):
    """This side asked for something the protocol forbids."""


class ConfigurationError(LocalProtocolError):
    """Configuration (roster, markings, agreement terms) is inconsistent; says why."""


class RemoteProtocolError(IntelshareError):
    """Bytes from another party failed verification."""


class MalformedError(RemoteProtocolError):
    """Bytes do not parse as the expected message."""


class SignatureError(RemoteProtocolError):
    """A signature is missing, from the wrong key, or does not verify."""


class NoticeMismatchError(RemoteProtocolError):
    """A recall or correction is bound to another item, version or digest than the one held (SPEC §10)."""


class RollbackError(RemoteProtocolError):
    """A signed document is older than, or conflicts with, the one already held (SPEC §5.3)."""


class OpenError(RemoteProtocolError):
    """The envelope could not be opened. Deliberately says nothing more (SPEC §8.6)."""

    def __init__(self) -> None:
        super().__init__("envelope could not be opened")


class ProofError(RemoteProtocolError):
    """A Merkle inclusion or consistency proof does not verify; says which and why (SPEC §11.10.1)."""
