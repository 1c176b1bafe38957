"""A node's private keys across a rotation: current, staged and previous files (SPEC §5.4.3, §5.4.4).

``node.toml`` names one file per key (``signing.key``, ``hpke.key``, ``tls.pem`` and
``tls.key``). A rotation stages the new key beside it (``signing.next.key``,
``tls.next.pem``, …) before the roster that names it is published; the node picks, from
every file it has, the key whose public half is the roster's (``select_keys``), so it
starts and runs correctly whichever roster it holds and whatever step a rotation
reached. Once a roster naming the staged keys is applied, ``promote_keys`` renames the
files: the old current key becomes ``*.previous.*`` and the staged one current. The
previous HPKE key stays loaded, to open envelopes sealed to it before the rotation.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from node import pki
from node.config.settings import NodeConfig
from protocol.errors import ConfigurationError
from protocol.keys import HpkeKeyPair, SigningKey
from protocol.roster import Member

__all__ = [
    "KeyCandidates",
    "NodeKeys",
    "TlsPair",
    "load_candidates",
    "previous_path",
    "promote_keys",
    "select_keys",
    "staged_path",
]

#: The three names a key file has, in the order a node prefers them when both match.
_SLOTS = ("current", "next", "previous")


def staged_path(path: Path) -> Path:
    """Where a rotation stages the key that replaces ``path`` (``signing.key`` → ``signing.next.key``)."""
    return path.with_name(f"{path.stem}.next{path.suffix}")


def previous_path(path: Path) -> Path:
    """Where the key ``path`` held before the last rotation is kept (``hpke.key`` → ``hpke.previous.key``)."""
    return path.with_name(f"{path.stem}.previous{path.suffix}")


def _slot_path(path: Path, slot: str) -> Path:
    return {"current": path, "next": staged_path(path), "previous": previous_path(path)}[slot]


@dataclass(frozen=True, eq=False)
class TlsPair:
    """A certificate and its private key (PEM)."""

    cert_pem: bytes
    key_pem: bytes

    @property
    def fingerprint(self) -> str:
        """Hex SHA-256 of the certificate (DER), as the roster lists it (SPEC §11.2)."""
        return pki.cert_fingerprint(self.cert_pem)


@dataclass(frozen=True, eq=False)
class KeyCandidates:
    """Every private key a node's directory holds, by file slot (``current``, ``next``, ``previous``)."""

    signing: dict[str, SigningKey]
    hpke: dict[str, HpkeKeyPair]
    tls: dict[str, TlsPair]


@dataclass(frozen=True, eq=False)
class NodeKeys:
    """The keys a node acts with under one roster, and the older HPKE keys it still opens with."""

    signing: SigningKey
    hpke: HpkeKeyPair
    tls: TlsPair
    #: The node's other HPKE key pairs: envelopes sealed to them before a rotation still open.
    previous_hpke: tuple[HpkeKeyPair, ...]
    #: The node's other signing keys: its own log's older checkpoints verify with them (SPEC §11.10.6).
    previous_signing: tuple[SigningKey, ...]
    #: Which file slot each chosen key came from.
    slots: dict[str, str]


def _private(cfg: NodeConfig, path: Path, what: str) -> bytes | None:
    """The file's bytes, None if it does not exist; refused if others may read it (like ssh)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigurationError(f"{cfg.path}: {cfg.member_id}'s {what} {path}: {exc.strerror or exc}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigurationError(
            f"{cfg.path}: {cfg.member_id}'s {what} {path} is accessible by others "
            f"(mode {stat.S_IMODE(mode):04o}); it must be 0600"
        )
    return path.read_bytes()


def load_candidates(cfg: NodeConfig) -> KeyCandidates:
    """Read every key file the node has: the current one ``node.toml`` names, a staged and a previous one.

    The current signing, HPKE and TLS files MUST exist; the others are optional.
    """
    keys = cfg.keys
    signing: dict[str, SigningKey] = {}
    hpke: dict[str, HpkeKeyPair] = {}
    tls: dict[str, TlsPair] = {}
    for slot in _SLOTS:
        try:
            data = _private(cfg, _slot_path(keys.signing, slot), "signing key")
            if data is not None:
                signing[slot] = SigningKey.from_json(data.decode())
            data = _private(cfg, _slot_path(keys.hpke, slot), "HPKE key")
            if data is not None:
                hpke[slot] = HpkeKeyPair.from_json(data.decode())
        except (ConfigurationError, UnicodeDecodeError) as exc:
            raise ConfigurationError(f"{cfg.path}: {cfg.member_id}: {exc}") from exc
        key_pem = _private(cfg, _slot_path(keys.tls_key, slot), "TLS key")
        cert_path = _slot_path(keys.tls_cert, slot)
        if key_pem is not None and cert_path.is_file():
            tls[slot] = TlsPair(cert_path.read_bytes(), key_pem)
    for what, found, path in (
        ("signing key", signing, keys.signing),
        ("HPKE key", hpke, keys.hpke),
        ("TLS key", tls, keys.tls_key),
    ):
        if "current" not in found:
            raise ConfigurationError(f"{cfg.path}: {cfg.member_id}'s {what} {path}: No such file or directory")
    return KeyCandidates(signing, hpke, tls)


def _tls_matches(pair: TlsPair, member: Member) -> bool:
    try:
        cert, key = pki.cert_from_pem(pair.cert_pem), pki.key_from_pem(pair.key_pem)
    except ValueError:
        return False
    der = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*der) != cert.public_key().public_bytes(*der):
        return False
    if member.tls_identity not in pki.cert_san_uris(cert):
        return False
    return member.tls_fingerprint is None or pki.cert_fingerprint(cert) == member.tls_fingerprint


def select_keys(cfg: NodeConfig, candidates: KeyCandidates, member: Member) -> NodeKeys:
    """The node's keys whose public halves are its roster entry's; ``ConfigurationError`` naming what is missing."""
    where = f"{cfg.path}: {cfg.member_id}'s"
    signing = next((s for s, k in candidates.signing.items() if k.public() == member.signing_key), None)
    if signing is None:
        raise ConfigurationError(f"{where} signing key {cfg.keys.signing} is not the roster's (nor a staged one)")
    hpke = next((s for s, k in candidates.hpke.items() if k.public() == member.hpke_keys), None)
    if hpke is None:
        raise ConfigurationError(f"{where} HPKE key {cfg.keys.hpke} is not the roster's (nor a staged one)")
    tls = next((s for s, pair in candidates.tls.items() if _tls_matches(pair, member)), None)
    if tls is None:
        raise ConfigurationError(
            f"{where} TLS certificate {cfg.keys.tls_cert} is not the one the roster names (fingerprint differs)"
        )
    return NodeKeys(
        signing=candidates.signing[signing],
        hpke=candidates.hpke[hpke],
        tls=candidates.tls[tls],
        previous_hpke=tuple(k for s, k in candidates.hpke.items() if s != hpke),
        previous_signing=tuple(k for s, k in candidates.signing.items() if s != signing),
        slots={"signing": signing, "hpke": hpke, "tls": tls},
    )


def _promote(paths: tuple[Path, ...]) -> None:
    """Make the staged files current, keeping the current ones as previous (for one kind of key)."""
    for path in paths:
        if staged_path(path).exists():
            if path.exists():
                os.replace(path, previous_path(path))
            os.replace(staged_path(path), path)


def promote_keys(cfg: NodeConfig, keys: NodeKeys) -> None:
    """Rename the key files so that the ones ``keys`` chose are current (after the roster naming them is held).

    Each step is one rename; a crash between two leaves files ``select_keys`` still finds.
    """
    keys_ = cfg.keys
    if keys.slots["signing"] == "next":
        _promote((keys_.signing,))
    if keys.slots["hpke"] == "next":
        _promote((keys_.hpke,))
    if keys.slots["tls"] == "next":
        _promote((keys_.tls_key, keys_.tls_cert))
