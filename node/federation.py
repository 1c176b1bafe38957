"""``intelshare federation init``: a whole federation from one TOML file.

The federation file names the members (state, service, status, national markings,
consent automation), the topic vocabulary and the bilateral agreements. ``init``
validates all of it in memory first — including the protocol's own check that every band
an agreement allows has a marking on both sides — and only then generates keys and
writes the directory, so a bad file leaves nothing half-written behind.
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import MappingProxyType

from cryptography import x509
from pydantic import ValidationError

from node import pki
from node.config import AT_REST_KEY_LEN, write_node_config, write_private_file
from node.config.federation_file import (
    AgreementSpec,
    FederationSpec,
    MemberSpec,
    NodeDefaults,
    load_federation_spec,
    member_database_url,
)
from node.config.officers import OfficerRole, add_officer
from protocol.agreement import AgreementBook, check_markings
from protocol.errors import ConfigurationError, IntelshareError
from protocol.keys import HpkeKeyPair, SigningKey
from protocol.roster import MAX_SECRETARIAT_KEYS, Member, Roster, SecretariatKeys
from protocol.statements import PayloadType, Signed, sign

__all__ = [
    "AUDITOR",
    "DUTY_OFFICER",
    "SECRETARIAT_SAN",
    "AgreementSpec",
    "FederationLayout",
    "FederationSpec",
    "MemberKeys",
    "MemberSpec",
    "NodeDefaults",
    "OutputExistsError",
    "init_federation",
    "load_federation_spec",
    "make_member_keys",
    "open_layout",
    "roster_member",
    "write_member_dir",
]

#: The officers ``init`` gives every node: one who may do everything at the desk, one who audits.
DUTY_OFFICER = "duty"
#: The SAN URI of the secretariat's client certificate, for ``roster publish`` (SPEC §11.12).
SECRETARIAT_SAN = "urn:intelshare:secretariat"
AUDITOR = "auditor"
_CA_CN_MAX = 64
_NODE_FILES = {
    "signing": "signing.key",
    "hpke": "hpke.key",
    "tls_cert": "tls.pem",
    "tls_key": "tls.key",
    "at_rest": "at_rest.key",
}


class OutputExistsError(ConfigurationError):
    """The output directory is not empty; init never overwrites a federation."""


# --------------------------------------------------------------------------- the layout


@dataclass(frozen=True)
class FederationLayout:
    """Where ``init_federation`` put everything."""

    root: Path
    config: Path
    ca_cert: Path
    ca_key: Path
    #: The secretariat's public keys and threshold: every node's trust anchor (SPEC §5.3).
    secretariat: Path
    #: The secretariat's private keys (``<holder>.key``) and its client certificate.
    secretariat_dir: Path
    roster: Path
    #: Every roster version the secretariat wrote, ``roster-v<N>.json``.
    rosters_dir: Path
    agreements_dir: Path
    node_dirs: Mapping[str, Path]
    members: tuple[str, ...]
    demo: Mapping[str, str]

    def node_dir(self, member_id: str) -> Path:
        """``nodes/<ID>``; ``KeyError`` for a member not in the federation."""
        return self.node_dirs[member_id]

    def node_config(self, member_id: str) -> Path:
        """``nodes/<ID>/node.toml``."""
        return self.node_dirs[member_id] / "node.toml"

    def holder_key(self, holder: str) -> Path:
        """``secretariat/<holder>.key``: one secretariat key holder's private key."""
        return self.secretariat_dir / f"{holder}.key"

    def roster_version(self, version: int) -> Path:
        """``rosters/roster-v<N>.json``."""
        return self.rosters_dir / f"roster-v{version}.json"


def _layout(root: Path, members: tuple[str, ...], demo: Mapping[str, str]) -> FederationLayout:
    return FederationLayout(
        root=root,
        config=root / "federation.toml",
        ca_cert=root / "ca.pem",
        ca_key=root / "ca.key",
        secretariat=root / "secretariat.json",
        secretariat_dir=root / "secretariat",
        roster=root / "roster.json",
        rosters_dir=root / "rosters",
        agreements_dir=root / "agreements",
        node_dirs=MappingProxyType({m: root / "nodes" / m for m in members}),
        members=members,
        demo=demo,
    )


def open_layout(root: Path) -> FederationLayout:
    """The layout of a directory ``init_federation`` wrote (reads its federation.toml copy)."""
    root = root.resolve()
    spec = load_federation_spec(root / "federation.toml")
    return _layout(root, spec.member_ids(), spec.demo)


# --------------------------------------------------------------------------- init


def _free_ports(count: int) -> list[int]:
    # Hold every socket until all are bound so the kernel cannot hand out one port twice.
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(s)
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _check_out_dir(out_dir: Path) -> None:
    if out_dir.exists():
        if not out_dir.is_dir():
            raise OutputExistsError(f"{out_dir}: exists and is not a directory")
        if any(out_dir.iterdir()):
            raise OutputExistsError(f"{out_dir}: is not empty; refusing to overwrite a federation")


@dataclass(frozen=True, eq=False)
class MemberKeys:
    """A member's private keys and certificate, fresh from ``make_member_keys``."""

    signing: SigningKey
    hpke: HpkeKeyPair
    tls_key: pki.PrivateKey
    tls_cert: x509.Certificate
    at_rest: bytes


def make_member_keys(
    ca_key: pki.PrivateKey, ca_cert: x509.Certificate, member_id: str, *, hybrid: bool, now: datetime, valid_days: int
) -> MemberKeys:
    """New signing, HPKE, TLS and at-rest keys for a member; the certificate from the federation CA."""
    tls_key, tls_cert = pki.issue_member_cert(
        ca_key,
        ca_cert,
        member_id,
        pki.member_san_uri(member_id),
        ("localhost",),
        ("127.0.0.1",),
        now=now,
        valid_days=valid_days,
    )
    return MemberKeys(
        signing=SigningKey.generate(hybrid=hybrid),
        hpke=HpkeKeyPair.generate(),
        tls_key=tls_key,
        tls_cert=tls_cert,
        at_rest=secrets.token_bytes(AT_REST_KEY_LEN),
    )


def roster_member(member: MemberSpec, keys: MemberKeys, endpoint: str, where: Path) -> Member:
    """The roster entry of a member with these keys; ``ConfigurationError`` naming ``where`` if invalid."""
    try:
        return Member(
            member_id=member.member_id,
            state=member.state,
            service=member.service,
            status=member.status,
            signing_key=keys.signing.public(),
            hpke_keys=keys.hpke.public(),
            tls_identity=pki.member_san_uri(member.member_id),
            tls_fingerprint=pki.cert_fingerprint(keys.tls_cert),
            endpoint=endpoint,
            markings=dict(member.markings),
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first.get("loc", ()))
        raise ConfigurationError(f"{where}: members.{member.member_id}.{field}: {first.get('msg', exc)}") from exc


def _node_doc(spec: FederationSpec, member: MemberSpec, port: int) -> dict[str, object]:
    defaults = spec.nodes
    return {
        "node": {
            "member_id": member.member_id,
            "listen": f"127.0.0.1:{port}",
            "desk_socket": "desk.sock",
            "officers": "officers.toml",
            "database_url": member_database_url(defaults.database_url, member.member_id),  # one per member
            "suite": defaults.suite.value,
        },
        "keys": dict(_NODE_FILES),
        "federation": {
            "ca": "../../ca.pem",
            "secretariat": "../../secretariat.json",
            "roster": "../../roster.json",
            "agreements": "../../agreements",
        },
        "ingress": {
            "max_age_seconds": int(defaults.window.max_age.total_seconds()),
            "max_future_skew_seconds": int(defaults.window.max_future_skew.total_seconds()),
        },
        "delivery": {
            "max_in_flight": defaults.delivery.max_in_flight,
            "batch_max": defaults.delivery.batch_max,
            "retry_base_seconds": defaults.delivery.retry_base_seconds,
            "retry_max_seconds": defaults.delivery.retry_max_seconds,
            "deadline_seconds": defaults.delivery.deadline_seconds,
        },
        "retention": {
            "interval_seconds": defaults.retention.interval_seconds,
            "originals": defaults.retention.originals,
            "originals_extra_days": defaults.retention.originals_extra_days,
        },
        "consent": member.consent.to_toml(),
    }


def init_federation(
    config_path: Path,
    out_dir: Path,
    *,
    now: datetime,
    base_port: int | None = None,
    hybrid_signatures: bool | None = None,
) -> FederationLayout:
    """Validate ``config_path`` and write a complete federation into ``out_dir``.

    ``base_port`` gives member *i* (file order) port ``base_port + i``; without it free
    ports are picked. ``hybrid_signatures`` overrides the file's setting. Refuses a
    non-empty ``out_dir`` (``OutputExistsError``); every configuration problem is a
    ``ConfigurationError`` naming the file, the member or agreement, and the field.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    spec = load_federation_spec(config_path)
    for agreement_spec in spec.agreements:  # a federation that would start with it out of force
        until = agreement_spec.agreement.valid_until
        if until <= now:
            raise ConfigurationError(
                f"{spec.path}: agreements.{agreement_spec.agreement_id}: valid_until {until.isoformat()} has "
                "already passed; the pair could exchange nothing under it (SPEC §6.2)"
            )
    out_dir = out_dir.resolve()
    _check_out_dir(out_dir)
    hybrid = spec.hybrid_signatures if hybrid_signatures is None else hybrid_signatures
    ids = spec.member_ids()
    if base_port is not None and not 1 <= base_port <= 65535 - len(ids) + 1:
        raise ConfigurationError(f"base_port {base_port} leaves no room for {len(ids)} members below 65536")
    ports = [base_port + i for i in range(len(ids))] if base_port is not None else _free_ports(len(ids))

    # Everything is generated and checked in memory before the first file is written.
    ca_key, ca_cert = pki.make_ca(f"{spec.name} federation CA"[:_CA_CN_MAX], now, spec.ca_valid_days)
    algorithms = 2 if hybrid else 1
    if spec.secretariat_threshold * algorithms > MAX_SECRETARIAT_KEYS:
        raise ConfigurationError(
            f"{spec.path}: secretariat.threshold: {spec.secretariat_threshold} hybrid signatures do not fit "
            f"the {MAX_SECRETARIAT_KEYS} a statement carries"
        )
    holders = {name: SigningKey.generate(hybrid=hybrid) for name in spec.secretariat_holders}
    secretariat = SecretariatKeys(
        threshold=spec.secretariat_threshold, keys=tuple(key.public() for key in holders.values())
    )
    keys: dict[str, MemberKeys] = {}
    members: list[Member] = []
    for member, port in zip(spec.members, ports, strict=True):
        mk = make_member_keys(
            ca_key, ca_cert, member.member_id, hybrid=hybrid, now=now, valid_days=spec.cert_valid_days
        )
        keys[member.member_id] = mk
        members.append(roster_member(member, mk, f"127.0.0.1:{port}", spec.path))
    roster = Roster(
        federation=spec.name,
        version=spec.roster_version,
        issued_at=now,
        members=tuple(members),
        topics=spec.topics,
        secretariat=secretariat,
    )
    # The first `threshold` holders sign, as every later version needs (SPEC §5.3).
    signers = list(holders.values())[: spec.secretariat_threshold]
    signed_roster = sign(PayloadType.ROSTER, roster, signers)

    signed_agreements: dict[str, Signed] = {}
    book = AgreementBook()
    for agreement_spec in spec.agreements:
        agreement = agreement_spec.agreement
        try:
            check_markings(agreement, roster)
        except ConfigurationError as exc:
            raise ConfigurationError(f"{spec.path}: agreements.{agreement.agreement_id}: {exc}") from exc
        signed = sign(PayloadType.AGREEMENT, agreement, [keys[p].signing for p in agreement.parties])
        book.accept(signed, roster)  # the same verification every node will make
        signed_agreements[agreement.agreement_id] = signed

    layout = _layout(out_dir, ids, spec.demo)
    # The secretariat's own client certificate: ``roster publish`` calls the nodes with it.
    secretariat_tls = pki.issue_member_cert(
        ca_key, ca_cert, "secretariat", SECRETARIAT_SAN, now=now, valid_days=spec.cert_valid_days
    )
    _write(
        layout,
        spec,
        ca_key,
        ca_cert,
        _SecretariatFiles(secretariat, holders, *secretariat_tls),
        signed_roster,
        signed_agreements,
        keys,
        ports,
    )
    return layout


@dataclass(frozen=True, eq=False)
class _SecretariatFiles:
    public: SecretariatKeys
    holders: Mapping[str, SigningKey]
    tls_key: pki.PrivateKey
    tls_cert: x509.Certificate


def _write(
    layout: FederationLayout,
    spec: FederationSpec,
    ca_key: pki.PrivateKey,
    ca_cert: x509.Certificate,
    secretariat: _SecretariatFiles,
    signed_roster: Signed,
    signed_agreements: Mapping[str, Signed],
    keys: Mapping[str, MemberKeys],
    ports: list[int],
) -> None:
    layout.root.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(spec.path, layout.config)
    layout.ca_cert.write_bytes(pki.cert_to_pem(ca_cert))
    write_private_file(layout.ca_key, pki.key_to_pem(ca_key))
    layout.secretariat.write_text(secretariat.public.model_dump_json(), encoding="utf-8")
    layout.secretariat_dir.mkdir(mode=0o700)
    for name, key in secretariat.holders.items():
        write_private_file(layout.holder_key(name), key.to_json().encode())
    (layout.secretariat_dir / "tls.pem").write_bytes(pki.cert_to_pem(secretariat.tls_cert))
    write_private_file(layout.secretariat_dir / "tls.key", pki.key_to_pem(secretariat.tls_key))
    layout.roster.write_text(signed_roster.model_dump_json(), encoding="utf-8")
    layout.rosters_dir.mkdir()
    layout.roster_version(Roster.from_bytes(signed_roster.payload).version).write_bytes(layout.roster.read_bytes())
    layout.agreements_dir.mkdir()
    for agreement_id, signed in signed_agreements.items():
        (layout.agreements_dir / f"{agreement_id}.json").write_text(signed.model_dump_json(), encoding="utf-8")
    for member, port in zip(spec.members, ports, strict=True):
        write_member_dir(layout.node_dir(member.member_id), spec, member, port, keys[member.member_id])


def write_member_dir(node_dir: Path, spec: FederationSpec, member: MemberSpec, port: int, mk: MemberKeys) -> None:
    """``nodes/<ID>``: the member's keys (owner-only), officers and ``node.toml``."""
    node_dir.mkdir(parents=True, mode=0o700)
    os.chmod(node_dir, 0o700)  # mkdir's mode is filtered by the umask
    write_private_file(node_dir / _NODE_FILES["signing"], mk.signing.to_json().encode())
    write_private_file(node_dir / _NODE_FILES["hpke"], mk.hpke.to_json().encode())
    (node_dir / _NODE_FILES["tls_cert"]).write_bytes(pki.cert_to_pem(mk.tls_cert))
    write_private_file(node_dir / _NODE_FILES["tls_key"], pki.key_to_pem(mk.tls_key))
    write_private_file(node_dir / _NODE_FILES["at_rest"], base64.b64encode(mk.at_rest) + b"\n")
    add_officer(node_dir, node_dir / "officers.toml", DUTY_OFFICER, OfficerRole.OFFICER)
    add_officer(node_dir, node_dir / "officers.toml", AUDITOR, OfficerRole.AUDITOR)
    try:
        write_node_config(node_dir / "node.toml", _node_doc(spec, member, port))
    except IntelshareError as exc:  # a bug here, not the user's file: say so plainly
        raise ConfigurationError(f"generated node.toml for {member.member_id} does not load: {exc}") from exc
