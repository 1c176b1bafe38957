"""The key material and signed federation documents a node's configuration names (SPEC §5, §11.5).

``load_material`` reads every key, certificate and signed document ``node.toml`` names
and verifies them against each other: the roster against the secretariat key, the
agreements against the roster, and this node's own keys and certificate against its
roster entry. Every problem is a typed error whose message names the file and the field.
"""

from __future__ import annotations

import base64
import binascii
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from pydantic import ValidationError

from node import pki
from node.config.settings import NodeConfig
from protocol.agreement import AgreementBook
from protocol.errors import ConfigurationError, MalformedError, RollbackError, SignatureError
from protocol.keys import HpkeKeyPair, PublicSigningKey, SigningKey
from protocol.roster import Member, Roster, accept_roster
from protocol.statements import Signed

__all__ = ["AT_REST_KEY_LEN", "NodeMaterial", "load_material", "write_private_file"]

#: The at-rest key is an AES-256 key.
AT_REST_KEY_LEN = 32


def write_private_file(path: Path, data: bytes) -> None:
    """Create ``path`` readable only by the owner (0600); refuse to replace an existing file."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)  # the umask may have removed bits, never adds; be explicit
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


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
