"""The key material and signed federation documents a node's configuration names (SPEC §5, §11.5).

``load_material`` reads every key, certificate and signed document ``node.toml`` names
and verifies them against each other: the roster against the secretariat's keys, the
agreements against the roster, and this node's own keys and certificate against its
roster entry. Every problem is a typed error whose message names the file and the field.
A node holds only the agreements it is a party to, and an agreement that the roster
makes unusable (a party left the federation, a signature by a revoked key) is set
aside, not fatal: a revocation never stops a node from starting (SPEC §6.2).
"""

from __future__ import annotations

import base64
import binascii
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from pydantic import ValidationError

from node import pki
from node.config.keyring import NodeKeys, load_candidates, select_keys
from node.config.settings import NodeConfig
from protocol.agreement import Agreement, AgreementBook
from protocol.errors import ConfigurationError, MalformedError, RollbackError, SignatureError
from protocol.keys import HpkeKeyPair, PublicSigningKey, SigningKey
from protocol.roster import Member, Roster, SecretariatKeys, accept_roster
from protocol.statements import PayloadType, Signed, parse_unverified

__all__ = [
    "AT_REST_KEY_LEN",
    "HeldAgreements",
    "NodeMaterial",
    "hold_agreements",
    "load_material",
    "read_secretariat",
    "write_private_file",
]

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
    #: The trust anchor: the keys and threshold that sign a roster this node takes from a file (SPEC §5.3).
    secretariat: SecretariatKeys
    roster_statement: Signed
    roster: Roster
    agreements: AgreementBook
    agreement_statements: tuple[Signed, ...]
    #: The keys chosen for ``roster``, and the older ones the node still opens and verifies with.
    keys: NodeKeys
    #: (agreement id, why) of this node's agreement files the roster left it unable to hold.
    agreements_set_aside: tuple[tuple[str, str], ...] = ()
    #: (file, statement) of every agreement file, to hold again under the roster the node runs under.
    agreement_files: tuple[tuple[str, Signed], ...] = ()

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


def read_secretariat(path: Path) -> SecretariatKeys:
    """The trust anchor file: ``{"threshold": k, "keys": [...]}`` (a single public key is read as 1 of 1)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"{path}: secretariat keys: {exc.strerror or exc}") from exc
    try:
        return SecretariatKeys.model_validate_json(data)
    except ValidationError as exc:
        try:  # the format of a federation written before thresholds: one key, which must sign
            return SecretariatKeys(threshold=1, keys=(PublicSigningKey.model_validate_json(data),))
        except ValidationError:
            raise ConfigurationError(f"{path}: not a secretariat key set: {exc.errors()[0]['msg']}") from exc


@dataclass(frozen=True)
class HeldAgreements:
    """The agreements a node holds under one roster, and those it set aside with why."""

    book: AgreementBook
    statements: tuple[Signed, ...]
    set_aside: tuple[tuple[str, str], ...]


def hold_agreements(statements: Sequence[tuple[str, Signed]], roster: Roster, me: str) -> HeldAgreements:
    """Accept, in order, the agreements ``me`` is a party to (SPEC §6.2); others are not even verified.

    ``statements`` are (where, statement) pairs. An agreement the roster does not let
    the node hold is set aside with the reason, and the pair has no agreement in force:
    a party is not in the roster, or no party's signature verifies with a key the roster
    lists (a signature by a revoked key, or by a key whose overlap ended, §5.4.3). Anything
    else wrong is an error naming ``where``: a file that does not parse, breaks the
    marking rule or is older than another is the distributor's mistake.
    """
    book = AgreementBook()
    held: list[Signed] = []
    set_aside: list[tuple[str, str]] = []
    for where, statement in statements:
        try:
            agreement = parse_unverified(statement, PayloadType.AGREEMENT, Agreement)
        except MalformedError as exc:
            raise MalformedError(f"{where}: agreement refused: {exc}") from exc
        if me not in agreement.parties:
            continue  # SPEC §6.2: a node holds only its own pairs' agreements
        absent = [p for p in agreement.parties if roster.member(p) is None]
        if absent:
            set_aside.append((agreement.agreement_id, f"party {', '.join(absent)} is not in roster v{roster.version}"))
            continue
        try:
            book.accept(statement, roster)
        except SignatureError as exc:
            set_aside.append((agreement.agreement_id, f"{exc} (roster v{roster.version})"))
            continue
        except ConfigurationError as exc:
            raise ConfigurationError(f"{where}: {exc}") from exc
        except (MalformedError, RollbackError) as exc:
            raise type(exc)(f"{where}: agreement refused: {exc}") from exc
        held.append(statement)
    return HeldAgreements(book, tuple(held), tuple(set_aside))


def load_material(cfg: NodeConfig) -> NodeMaterial:
    """Read every file ``cfg`` names and verify it; the first problem raises.

    Bad or inconsistent local files raise ``ConfigurationError``; a roster or agreement
    whose signature fails raises the protocol's ``SignatureError``/``MalformedError``
    with the file named, since those documents come from other parties.
    """
    fed = cfg.federation
    candidates = load_candidates(cfg)
    at_rest = _at_rest(cfg, _read(cfg, cfg.keys.at_rest, "at-rest key", private=True))
    ca_pem = _read(cfg, fed.ca, "federation CA")
    secretariat = read_secretariat(fed.secretariat)

    roster_statement = _signed(cfg, fed.roster, "roster")
    try:
        roster = accept_roster(roster_statement, secretariat=secretariat, current=None)
    except (SignatureError, MalformedError, RollbackError) as exc:
        raise type(exc)(f"{fed.roster}: roster refused: {exc}") from exc

    member = roster.member(cfg.member_id)
    if member is None:
        raise ConfigurationError(f"{cfg.path}: member {cfg.member_id} is not in the roster {fed.roster}")
    keys = select_keys(cfg, candidates, member)
    _check_ca(cfg, keys.tls.cert_pem, ca_pem)
    for rule in cfg.consent.auto_grant:
        if roster.member(rule.grantee) is None:
            raise ConfigurationError(f"{cfg.path}: consent.auto_grant grantee {rule.grantee} is not in the roster")

    try:
        files = sorted(fed.agreements.glob("*.json"))
    except OSError as exc:
        raise ConfigurationError(f"{cfg.path}: agreements directory {fed.agreements}: {exc}") from exc
    if not fed.agreements.is_dir():
        raise ConfigurationError(f"{cfg.path}: agreements directory {fed.agreements} does not exist")
    agreement_files = tuple((str(file), _signed(cfg, file, "agreement")) for file in files)
    held = hold_agreements(agreement_files, roster, cfg.member_id)

    return NodeMaterial(
        config=cfg,
        signing_key=keys.signing,
        hpke_keys=keys.hpke,
        tls_cert_pem=keys.tls.cert_pem,
        tls_key_pem=keys.tls.key_pem,
        ca_pem=ca_pem,
        at_rest_key=at_rest,
        secretariat=secretariat,
        roster_statement=roster_statement,
        roster=roster,
        agreements=held.book,
        agreement_statements=held.statements,
        keys=keys,
        agreements_set_aside=held.set_aside,
        agreement_files=agreement_files,
    )


def _check_ca(cfg: NodeConfig, cert_pem: bytes, ca_pem: bytes) -> None:
    where = f"{cfg.path}: {cfg.member_id}'s TLS"
    try:
        cert, ca = pki.cert_from_pem(cert_pem), pki.cert_from_pem(ca_pem)
    except ValueError as exc:
        raise ConfigurationError(f"{where} certificate or CA does not load: {exc}") from exc
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise ConfigurationError(f"{where} certificate was not issued by the CA {cfg.federation.ca}") from exc
