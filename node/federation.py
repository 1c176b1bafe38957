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
import re
import secrets
import shutil
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from types import MappingProxyType

from cryptography import x509
from pydantic import ValidationError

from node import pki
from node.config import (
    AT_REST_KEY_LEN,
    ConsentMode,
    ConsentPolicy,
    DeliverySettings,
    TomlTable,
    parse_consent,
    parse_delivery,
    parse_window,
    write_node_config,
    write_private_file,
)
from protocol.agreement import Agreement, AgreementBook, ReshareRule, TrustModel, check_markings, pair_key
from protocol.classification import Band, NationalMarkings, parse_band
from protocol.envelope import Suite
from protocol.errors import ConfigurationError, IntelshareError
from protocol.keys import HpkeKeyPair, SigningKey
from protocol.label import DEFAULT_TOPICS, Category
from protocol.policy import TimeWindow
from protocol.roster import Member, MemberStatus, Roster
from protocol.statements import PayloadType, Signed, sign

__all__ = [
    "AgreementSpec",
    "FederationLayout",
    "FederationSpec",
    "MemberSpec",
    "NodeDefaults",
    "OutputExistsError",
    "init_federation",
    "load_federation_spec",
    "open_layout",
]

# The protocol's patterns (protocol._model.MemberId, protocol.label.Topic), checked
# here so the error names the file and field instead of surfacing from pydantic.
_MEMBER_ID = re.compile(r"^[A-Z]{2}(-[A-Z0-9]{1,16})?$")
_TOPIC = re.compile(r"^[a-z][a-z0-9-]{0,63}$")
#: A label carries the originator's marking in at most this many characters (protocol.label).
_MAX_MARKING_LEN = 64
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


# --------------------------------------------------------------------------- the spec


@dataclass(frozen=True)
class MemberSpec:
    """One member as the federation file describes it (no keys yet)."""

    member_id: str
    state: str
    service: str
    status: MemberStatus
    markings: Mapping[Band, str]
    consent: ConsentPolicy


@dataclass(frozen=True)
class AgreementSpec:
    """An agreement from the file, already validated by the protocol's model."""

    agreement: Agreement

    @property
    def agreement_id(self) -> str:
        """The agreement's id (its table name in the file)."""
        return self.agreement.agreement_id


@dataclass(frozen=True)
class NodeDefaults:
    """Settings written into every node's ``node.toml``."""

    suite: Suite
    database_url: str
    window: TimeWindow
    delivery: DeliverySettings


@dataclass(frozen=True)
class FederationSpec:
    """A validated federation file."""

    path: Path
    name: str
    roster_version: int
    topics: tuple[str, ...]
    hybrid_signatures: bool
    ca_valid_days: int
    cert_valid_days: int
    nodes: NodeDefaults
    members: tuple[MemberSpec, ...]
    agreements: tuple[AgreementSpec, ...]
    #: Scenario roles (e.g. ``originator``) to member ids, for demos.
    demo: Mapping[str, str]

    def member_ids(self) -> tuple[str, ...]:
        """Member ids in file order."""
        return tuple(m.member_id for m in self.members)


def _timestamp(table: TomlTable, key: str) -> datetime:
    value = table.raw(key)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            table.fail(key, "needs a UTC offset (e.g. 2022-08-05T00:00:00Z)")
        return value
    if not isinstance(value, date):
        table.fail(key, f"expected a TOML date or offset date-time, got {type(value).__name__} {value!r}")
    # A bare date means the start of that day, UTC.
    return datetime.combine(value, time(0, 0), tzinfo=UTC)


def _markings(table: TomlTable, member_id: str) -> dict[Band, str]:
    out: dict[Band, str] = {}
    for key in table.names():
        try:
            band = parse_band(key)
        except ValueError:
            table.fail(key, f"unknown band (expected one of {', '.join(Band.__members__)})")
        text = table.string(key)
        if len(text.strip()) > _MAX_MARKING_LEN:
            table.fail(key, f"{member_id}'s marking is longer than {_MAX_MARKING_LEN} characters")
        if band in out:
            table.fail(key, f"{member_id} has two markings for {band.title}")
        out[band] = text.strip()
    if not out:
        table.fail(None, f"{member_id} has no national markings")
    try:
        NationalMarkings(member_id, out)
    except ConfigurationError as exc:
        table.fail(None, str(exc))
    return out


def _member(members: TomlTable, member_id: str) -> MemberSpec:
    if not _MEMBER_ID.fullmatch(member_id):
        members.fail(member_id, "not a member id (ISO 3166 alpha-2, optionally -SUFFIX, e.g. 'TR' or 'TR-MIT')")
    t = members.table(member_id)
    status_text = t.string("status")
    try:
        status = MemberStatus(status_text)
    except ValueError:
        t.fail("status", f"expected one of {', '.join(s.value for s in MemberStatus)}, got {status_text!r}")
    spec = MemberSpec(
        member_id=member_id,
        state=t.string("state"),
        service=t.string("service"),
        status=status,
        markings=MappingProxyType(_markings(t.table("markings"), member_id)),
        consent=parse_consent(t.table("consent", optional=True), member_id),
    )
    t.done()
    return spec


def _agreement(
    agreements: TomlTable, agreement_id: str, members: Mapping[str, MemberSpec], topics: tuple[str, ...]
) -> AgreementSpec:
    t = agreements.table(agreement_id)
    parties = t.strings("parties")
    if len(parties) != 2 or parties[0] == parties[1]:
        t.fail("parties", f"{agreement_id} needs exactly two different parties, got {parties}")
    for party in parties:
        if party not in members:
            t.fail("parties", f"{agreement_id}: party {party} is not in [members]")
    ceilings_table = t.table("ceilings")
    ceilings: dict[str, Band] = {}
    for party in ceilings_table.names():
        if party not in parties:
            ceilings_table.fail(party, f"{agreement_id}: {party} is not a party to this agreement")
        text = ceilings_table.string(party)
        try:
            ceilings[party] = parse_band(text)
        except ValueError:
            ceilings_table.fail(party, f"{agreement_id}: unknown band {text!r}")
    for party in parties:
        if party not in ceilings:
            ceilings_table.fail(party, f"{agreement_id}: no ceiling for items sent by {party}")
    categories = t.strings("categories")
    for category in categories:
        if category not in Category.__members__.values():
            t.fail("categories", f"{agreement_id}: unknown category {category!r} ({', '.join(Category)})")
    agreement_topics = t.strings("topics")
    for topic in agreement_topics:
        if topic not in topics:
            t.fail("topics", f"{agreement_id}: topic {topic!r} is not in the federation's vocabulary")
    trust_text = t.string("trust_model")
    try:
        trust = TrustModel(trust_text)
    except ValueError:
        t.fail("trust_model", f"{agreement_id}: expected one of {', '.join(TrustModel)}, got {trust_text!r}")
    reshare_text = t.string("reshare_rule", ReshareRule.ORIGINATOR_CONSENT.value)
    try:
        reshare = ReshareRule(reshare_text)
    except ValueError:
        t.fail("reshare_rule", f"{agreement_id}: expected one of {', '.join(ReshareRule)}, got {reshare_text!r}")
    senior = t.string("senior_party", "") or None
    fields: dict[str, object] = {
        "agreement_id": agreement_id,
        "version": t.integer("version", 1, minimum=1),
        "parties": tuple(parties),
        "title": t.string("title", "", nonempty=False),
        "valid_from": _timestamp(t, "valid_from"),
        "valid_until": _timestamp(t, "valid_until"),
        "ceilings": ceilings,
        "categories": tuple(categories),
        "topics": tuple(agreement_topics),
        "max_retention_days": t.integer("max_retention_days", minimum=1, maximum=36500),
        "raw_data_allowed": t.boolean("raw_data_allowed"),
        "trust_model": trust,
        "senior_party": senior,
        "reshare_rule": reshare,
    }
    t.done()
    try:
        agreement = Agreement.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or None
        t.fail(where, f"{agreement_id}: {str(first.get('msg', exc)).removeprefix('Value error, ')}")
    return AgreementSpec(agreement)


def _suite(table: TomlTable) -> Suite:
    text = table.string("suite", Suite.X25519_AES256GCM.value)
    try:
        return Suite(text)
    except ValueError:
        table.fail("suite", f"unknown suite {text!r}; expected one of: {'; '.join(s.value for s in Suite)}")


def load_federation_spec(path: Path) -> FederationSpec:
    """Parse and validate a federation file. Unknown keys are refused.

    Marking coverage of each agreement is checked by ``init_federation`` with the
    protocol's ``check_markings`` once the roster exists.
    """
    path = path.resolve()
    doc = TomlTable.load(path)

    fed = doc.table("federation")
    name = fed.string("name")
    if len(name) > 128:
        fed.fail("name", "longer than 128 characters")
    roster_version = fed.integer("roster_version", 1, minimum=1)
    extra = fed.strings("topics", [])
    topics = tuple(dict.fromkeys([*DEFAULT_TOPICS, *extra]))
    for topic in extra:
        if not _TOPIC.fullmatch(topic):
            fed.fail("topics", f"topic {topic!r} is not a lower-case slug (e.g. 'border-clashes')")
    hybrid = fed.boolean("hybrid_signatures", False)
    ca_days = fed.integer("ca_valid_days", 3650, minimum=1, maximum=36500)
    cert_days = fed.integer("cert_valid_days", 825, minimum=1, maximum=36500)
    fed.done()

    n = doc.table("nodes", optional=True)
    db_url = n.string("database_url", "sqlite:///node.db")
    nodes = NodeDefaults(
        suite=_suite(n),
        database_url=db_url,
        window=parse_window(n.table("ingress")),
        delivery=parse_delivery(n.table("delivery", optional=True)),
    )
    n.done()

    members_table = doc.table("members")
    members = {mid: _member(members_table, mid) for mid in members_table.names()}
    if not members:
        members_table.fail(None, "no members")
    for spec in members.values():
        for rule in spec.consent.auto_grant:
            if rule.grantee not in members:
                members_table.fail(
                    f"{spec.member_id}.consent.auto_grant", f"grantee {rule.grantee} is not in [members]"
                )

    agreements_table = doc.table("agreements", optional=True)
    agreements = [_agreement(agreements_table, aid, members, topics) for aid in agreements_table.names()]
    seen: dict[tuple[str, str], str] = {}
    for spec_ in agreements:
        pair = pair_key(*spec_.agreement.parties)
        if pair in seen:
            agreements_table.fail(
                spec_.agreement_id, f"{pair[0]}–{pair[1]} already has agreement {seen[pair]} (one per pair)"
            )
        seen[pair] = spec_.agreement_id

    demo_table = doc.table("demo", optional=True)
    demo: dict[str, str] = {}
    for role in demo_table.names():
        member_id = demo_table.string(role)
        if member_id not in members:
            demo_table.fail(role, f"{member_id} is not in [members]")
        demo[role] = member_id
    doc.done()

    return FederationSpec(
        path=path,
        name=name,
        roster_version=roster_version,
        topics=topics,
        hybrid_signatures=hybrid,
        ca_valid_days=ca_days,
        cert_valid_days=cert_days,
        nodes=nodes,
        members=tuple(members.values()),
        agreements=tuple(agreements),
        demo=MappingProxyType(demo),
    )


# --------------------------------------------------------------------------- the layout


@dataclass(frozen=True)
class FederationLayout:
    """Where ``init_federation`` put everything."""

    root: Path
    config: Path
    ca_cert: Path
    ca_key: Path
    secretariat: Path
    secretariat_key: Path
    roster: Path
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


def _layout(root: Path, members: tuple[str, ...], demo: Mapping[str, str]) -> FederationLayout:
    return FederationLayout(
        root=root,
        config=root / "federation.toml",
        ca_cert=root / "ca.pem",
        ca_key=root / "ca.key",
        secretariat=root / "secretariat.json",
        secretariat_key=root / "secretariat.key",
        roster=root / "roster.json",
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
class _MemberKeys:
    signing: SigningKey
    hpke: HpkeKeyPair
    tls_key: pki.PrivateKey
    tls_cert: x509.Certificate
    at_rest: bytes


def _consent_doc(policy: ConsentPolicy) -> dict[str, object]:
    doc: dict[str, object] = {"mode": policy.mode.value}
    if policy.mode is ConsentMode.RULES:
        doc["otherwise"] = policy.otherwise
        doc["auto_grant"] = [
            {
                "grantee": rule.grantee,
                "max_band": rule.max_band.name,
                "valid_days": rule.valid_days,
                "transferable": rule.transferable,
            }
            for rule in policy.auto_grant
        ]
    return doc


def _node_doc(spec: FederationSpec, member: MemberSpec, port: int) -> dict[str, object]:
    defaults = spec.nodes
    return {
        "node": {
            "member_id": member.member_id,
            "listen": f"127.0.0.1:{port}",
            "desk_socket": "desk.sock",
            "database_url": defaults.database_url,
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
        "consent": _consent_doc(member.consent),
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
    out_dir = out_dir.resolve()
    _check_out_dir(out_dir)
    hybrid = spec.hybrid_signatures if hybrid_signatures is None else hybrid_signatures
    ids = spec.member_ids()
    if base_port is not None and not 1 <= base_port <= 65535 - len(ids) + 1:
        raise ConfigurationError(f"base_port {base_port} leaves no room for {len(ids)} members below 65536")
    ports = [base_port + i for i in range(len(ids))] if base_port is not None else _free_ports(len(ids))

    # Everything is generated and checked in memory before the first file is written.
    ca_key, ca_cert = pki.make_ca(f"{spec.name} federation CA"[:_CA_CN_MAX], now, spec.ca_valid_days)
    secretariat = SigningKey.generate(hybrid=hybrid)
    keys: dict[str, _MemberKeys] = {}
    members: list[Member] = []
    for member, port in zip(spec.members, ports, strict=True):
        tls_key, tls_cert = pki.issue_member_cert(
            ca_key,
            ca_cert,
            member.member_id,
            pki.member_san_uri(member.member_id),
            ("localhost",),
            ("127.0.0.1",),
            now=now,
            valid_days=spec.cert_valid_days,
        )
        mk = _MemberKeys(
            signing=SigningKey.generate(hybrid=hybrid),
            hpke=HpkeKeyPair.generate(),
            tls_key=tls_key,
            tls_cert=tls_cert,
            at_rest=secrets.token_bytes(AT_REST_KEY_LEN),
        )
        keys[member.member_id] = mk
        try:
            members.append(
                Member(
                    member_id=member.member_id,
                    state=member.state,
                    service=member.service,
                    status=member.status,
                    signing_key=mk.signing.public(),
                    hpke_keys=mk.hpke.public(),
                    tls_identity=pki.member_san_uri(member.member_id),
                    tls_fingerprint=pki.cert_fingerprint(tls_cert),
                    endpoint=f"127.0.0.1:{port}",
                    markings=dict(member.markings),
                )
            )
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            raise ConfigurationError(
                f"{spec.path}: members.{member.member_id}.{where}: {first.get('msg', exc)}"
            ) from exc
    roster = Roster(
        federation=spec.name,
        version=spec.roster_version,
        issued_at=now,
        members=tuple(members),
        topics=spec.topics,
    )
    signed_roster = sign(PayloadType.ROSTER, roster, [secretariat])

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
    _write(layout, spec, ca_key, ca_cert, secretariat, signed_roster, signed_agreements, keys, ports)
    return layout


def _write(
    layout: FederationLayout,
    spec: FederationSpec,
    ca_key: pki.PrivateKey,
    ca_cert: x509.Certificate,
    secretariat: SigningKey,
    signed_roster: Signed,
    signed_agreements: Mapping[str, Signed],
    keys: Mapping[str, _MemberKeys],
    ports: list[int],
) -> None:
    layout.root.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(spec.path, layout.config)
    layout.ca_cert.write_bytes(pki.cert_to_pem(ca_cert))
    write_private_file(layout.ca_key, pki.key_to_pem(ca_key))
    layout.secretariat.write_text(secretariat.public().model_dump_json(), encoding="utf-8")
    write_private_file(layout.secretariat_key, secretariat.to_json().encode())
    layout.roster.write_text(signed_roster.model_dump_json(), encoding="utf-8")
    layout.agreements_dir.mkdir()
    for agreement_id, signed in signed_agreements.items():
        (layout.agreements_dir / f"{agreement_id}.json").write_text(signed.model_dump_json(), encoding="utf-8")
    for member, port in zip(spec.members, ports, strict=True):
        node_dir = layout.node_dir(member.member_id)
        node_dir.mkdir(parents=True, mode=0o700)
        os.chmod(node_dir, 0o700)  # mkdir's mode is filtered by the umask
        mk = keys[member.member_id]
        write_private_file(node_dir / _NODE_FILES["signing"], mk.signing.to_json().encode())
        write_private_file(node_dir / _NODE_FILES["hpke"], mk.hpke.to_json().encode())
        (node_dir / _NODE_FILES["tls_cert"]).write_bytes(pki.cert_to_pem(mk.tls_cert))
        write_private_file(node_dir / _NODE_FILES["tls_key"], pki.key_to_pem(mk.tls_key))
        write_private_file(node_dir / _NODE_FILES["at_rest"], base64.b64encode(mk.at_rest) + b"\n")
        try:
            write_node_config(node_dir / "node.toml", _node_doc(spec, member, port))
        except IntelshareError as exc:  # a bug here, not the user's file: say so plainly
            raise ConfigurationError(f"generated node.toml for {member.member_id} does not load: {exc}") from exc
