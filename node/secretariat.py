"""The secretariat's side of the roster: new versions signed by a threshold of its key holders (SPEC §5.3).

Works on a federation directory ``federation init`` wrote, where the secretariat keeps its
holders' private keys (``secretariat/<holder>.key``), the signed roster (``roster.json``)
and every version it wrote (``rosters/roster-v<N>.json``). Each change — a member added
or removed, a key rotated or revoked — makes the next version: version + 1, issued now,
retired keys whose overlap ended left out (SPEC §5.4.3), signed by ``threshold`` holders,
checked with the same ``accept_roster`` every node runs, then written. Nothing reaches a
node until ``publish`` (``node.secretariat_publish``) sends it.

In this single-directory federation the tool also plays each member's part of a key
ceremony: it generates a rotated member's new keys into the member's node directory as
staged files (``*.next.*``, ``node.config.keyring``), and a new member's whole node
directory, as ``federation init`` did. In a federation spread over several sites a member
generates its keys itself and hands the secretariat only the public halves.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path

import grpc
from cryptography import x509

from node import pki
from node.codec import signed_to_pb
from node.config import ConsentPolicy, load_node_config, write_private_file
from node.config.consent import band_name
from node.config.federation_file import MemberSpec, load_federation_spec
from node.config.keyring import staged_path
from node.config.material import read_secretariat
from node.errors import InvalidRequestError, NotFoundError
from node.federation import FederationLayout, make_member_keys, open_layout, roster_member, write_member_dir
from node.transport import CHANNEL_OPTIONS, channel_credentials
from node.wire import exchange_pb2_grpc
from protocol.ack import AckReason
from protocol.classification import Band
from protocol.errors import ConfigurationError
from protocol.keys import SigningKey
from protocol.roster import Member, MemberStatus, RetiredKey, Roster, SecretariatKeys, accept_roster
from protocol.statements import PayloadType, Signed, sign

__all__ = [
    "Delivered",
    "KeyKind",
    "Secretariat",
    "next_version",
    "parse_markings",
]

#: How long ``publish`` waits for one node's answer.
PUBLISH_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class Delivered:
    """What one node answered to ``publish``: ``outcome`` is applied, held, refused or unreachable."""

    member_id: str
    endpoint: str
    outcome: str
    reason: str
    detail: str
    roster_version: int


class KeyKind(StrEnum):
    """The keys ``rotate-key`` can replace."""

    SIGNING = "signing"
    HPKE = "hpke"
    TLS = "tls"


def parse_markings(pairs: Sequence[str]) -> dict[Band, str]:
    """``BAND=marking`` options as a marking table; ``InvalidRequestError`` naming the bad one."""
    out: dict[Band, str] = {}
    for pair in pairs:
        band_text, sep, marking = pair.partition("=")
        if not sep or not marking.strip():
            raise InvalidRequestError(f"--marking {pair!r}: expected BAND=marking, e.g. SECRET=GİZLİ")
        try:
            band = band_name(band_text.strip())
        except ValueError as exc:
            raise InvalidRequestError(f"--marking {pair!r}: {exc}") from None
        if band in out:
            raise InvalidRequestError(f"--marking: two markings for {band.name}")
        out[band] = marking.strip()
    if not out:
        raise InvalidRequestError("a member needs at least one --marking BAND=marking")
    return out


def next_version(current: Roster, now: datetime, **changes: object) -> Roster:
    """The next roster version with ``changes``: version + 1, issued ``now``, expired retired keys left out."""
    retired = changes.pop("retired_keys", current.retired_keys)
    assert isinstance(retired, tuple)
    fields = current.model_dump() | changes
    fields |= {
        "version": current.version + 1,
        "issued_at": now,
        "retired_keys": tuple(r for r in retired if isinstance(r, RetiredKey) and r.until > now),
    }
    try:
        return Roster.model_validate(fields)
    except ValueError as exc:
        raise InvalidRequestError(f"the new roster would be invalid: {exc}") from exc


@dataclass(frozen=True)
class Secretariat:
    """The secretariat's files in a federation directory."""

    layout: FederationLayout

    @classmethod
    def open(cls, root: Path) -> Secretariat:
        """The secretariat of federation directory ``root``; ``ConfigurationError`` if it is none."""
        if not (root / "roster.json").is_file() or not (root / "secretariat").is_dir():
            raise ConfigurationError(f"{root} is not a federation directory with the secretariat's keys")
        return cls(open_layout(root))

    @property
    def root(self) -> Path:
        """The federation directory."""
        return self.layout.root

    def current(self) -> tuple[Signed, Roster]:
        """The roster version last written, verified as a node verifies it."""
        signed = Signed.from_bytes(self.layout.roster.read_bytes())
        return signed, accept_roster(signed, secretariat=self.anchor(), current=None)

    def anchor(self) -> SecretariatKeys:
        """The secretariat's key set as nodes are configured with it (``secretariat.json``)."""
        return read_secretariat(self.layout.secretariat)

    def holders(self) -> dict[str, SigningKey]:
        """Every holder's private key in this directory, by name."""
        out = {}
        for path in sorted(self.layout.secretariat_dir.glob("*.key")):
            if path.name == "tls.key":
                continue
            out[path.stem] = SigningKey.from_json(path.read_text(encoding="utf-8"))
        return out

    def signers(self, names: Sequence[str], keys: SecretariatKeys) -> list[SigningKey]:
        """The holders who sign: ``names``, or else the first ``threshold`` holders of the set in force."""
        holders = self.holders()
        in_set = {key.keyid for key in keys.keys}
        if names:
            unknown = [n for n in names if n not in holders]
            if unknown:
                raise NotFoundError(f"no secretariat holder {', '.join(unknown)} in {self.layout.secretariat_dir}")
            chosen = [holders[n] for n in names]
        else:
            chosen = [key for key in holders.values() if key.keyid in in_set][: keys.threshold]
        if sum(1 for key in chosen if key.keyid in in_set) < keys.threshold:
            raise InvalidRequestError(f"a roster needs {keys.threshold} signatures of the secretariat's keys")
        return chosen

    def check_signers(self, names: Sequence[str]) -> None:
        """Fail before any change if ``names`` (or the default holders) cannot sign the next version."""
        _, current = self.current()
        self.signers(names, current.secretariat or self.anchor())

    def write(self, roster: Roster, signer_names: Sequence[str]) -> Signed:
        """Sign the next version with a threshold of holders, check it as a node would, and write it."""
        _, current = self.current()
        keys = current.secretariat or self.anchor()
        signed = sign(PayloadType.ROSTER, roster, self.signers(signer_names, keys))
        accept_roster(signed, secretariat=self.anchor(), current=current)  # what every node will check
        self.layout.rosters_dir.mkdir(exist_ok=True)
        self.layout.roster_version(roster.version).write_text(signed.model_dump_json(), encoding="utf-8")
        tmp = self.layout.roster.with_suffix(".tmp")
        tmp.write_text(signed.model_dump_json(), encoding="utf-8")
        os.replace(tmp, self.layout.roster)
        return signed

    def publish(self, signed: Signed, only: Sequence[str] = ()) -> list[Delivered]:
        """Send a roster version to every node (SPEC §11.12), over TLS as the secretariat.

        The nodes are the roster's members and any member directory here the roster no
        longer lists (so a removed member learns it); ``only`` limits them. A node that is
        not reachable gets the version later from the nodes that applied it.
        """
        roster = Roster.from_bytes(signed.payload)
        # A member whose HPKE key this version changes hears first: once others hold the
        # version they seal to its new key, which it must then hold too (SPEC §5.4.4).
        before = self.layout.roster_version(roster.version - 1)
        old = Roster.from_bytes(Signed.from_bytes(before.read_bytes()).payload) if before.is_file() else roster
        rotated = [
            m for m in roster.members if (o := old.member(m.member_id)) is not None and o.hpke_keys != m.hpke_keys
        ]
        targets = {m.member_id: m.endpoint for m in (*rotated, *roster.members)}
        for config in sorted((self.root / "nodes").glob("*/node.toml")):
            member_id = config.parent.name
            if member_id not in targets:
                targets[member_id] = load_node_config(config).listen
        if only:
            unknown = sorted(set(only) - set(targets))
            if unknown:
                raise NotFoundError(f"no node {', '.join(unknown)} in roster v{roster.version} or {self.root}")
            targets = {m: e for m, e in targets.items() if m in only}
        credentials = channel_credentials(
            (self.layout.secretariat_dir / "tls.pem").read_bytes(),
            (self.layout.secretariat_dir / "tls.key").read_bytes(),
            self.layout.ca_cert.read_bytes(),
        )
        message = signed_to_pb(signed)
        out = []
        for member_id, endpoint in targets.items():
            with grpc.secure_channel(endpoint, credentials, options=CHANNEL_OPTIONS) as channel:
                try:
                    ack = exchange_pb2_grpc.ExchangeStub(channel).PublishRoster(
                        message, timeout=PUBLISH_TIMEOUT_SECONDS
                    )
                except grpc.RpcError as exc:
                    code = exc.code().name if isinstance(exc, grpc.Call) else "UNKNOWN"
                    out.append(Delivered(member_id, endpoint, "unreachable", code, "no answer; it catches up later", 0))
                    continue
            outcome = (
                "applied"
                if ack.reason == AckReason.ROSTER_HELD
                else "already held"
                if ack.reason == AckReason.DUPLICATE
                else "refused"
            )
            out.append(Delivered(member_id, endpoint, outcome, ack.reason, ack.detail, ack.roster_version))
        return out

    # --- changes --------------------------------------------------------------------------

    def add_member(
        self,
        *,
        member_id: str,
        state: str,
        service: str,
        status: MemberStatus,
        markings: Mapping[Band, str],
        endpoint: str | None,
        now: datetime,
    ) -> Roster:
        """The next version with a new member, whose node directory (keys, certificate, ``node.toml``) is written."""
        _, current = self.current()
        if current.member(member_id) is not None:
            raise InvalidRequestError(f"{member_id} is already a member (roster v{current.version})")
        node_dir = self.root / "nodes" / member_id
        if node_dir.exists():
            raise InvalidRequestError(f"{node_dir} already exists")
        spec = load_federation_spec(self.layout.config)
        port = _free_port() if endpoint is None else int(endpoint.rsplit(":", 1)[1])
        keys = make_member_keys(
            *self._ca(), member_id, hybrid=_hybrid(current), now=now, valid_days=spec.cert_valid_days
        )
        member = MemberSpec(member_id, state, service, status, markings, ConsentPolicy())
        entry = roster_member(member, keys, endpoint or f"127.0.0.1:{port}", self.layout.config)
        roster = next_version(current, now, members=(*current.members, entry))
        write_member_dir(node_dir, spec, member, port, keys)
        return roster

    def remove_member(self, member_id: str, now: datetime) -> Roster:
        """The next version without ``member_id`` (and its retired keys)."""
        _, current = self.current()
        self._member(current, member_id)
        members = tuple(m for m in current.members if m.member_id != member_id)
        if not members:
            raise InvalidRequestError("a roster keeps at least one member")
        retired = tuple(r for r in current.retired_keys if r.member_id != member_id)
        return next_version(current, now, members=members, retired_keys=retired)

    def revoke_key(self, member_id: str | None, keyid: str | None, now: datetime) -> Roster:
        """The next version revoking a member's signing key, or any key id (SPEC §12.8)."""
        _, current = self.current()
        if (member_id is None) == (keyid is None):
            raise InvalidRequestError("name the key to revoke: --member or --keyid, not both")
        if member_id is not None:
            keyid = self._member(current, member_id).signing_key.keyid
        assert keyid is not None
        if current.is_revoked(keyid):
            raise InvalidRequestError(f"key {keyid[:16]}… is already revoked (roster v{current.version})")
        retired = tuple(r for r in current.retired_keys if r.signing_key.keyid != keyid)
        return next_version(current, now, revoked_keyids=(*current.revoked_keyids, keyid), retired_keys=retired)

    def rotate_key(self, member_id: str, kinds: Sequence[KeyKind], overlap: timedelta, now: datetime) -> Roster:
        """The next version with new keys for a member, staged in its node directory (SPEC §5.4.3, §5.4.4).

        The old signing key stays listed as retired until ``now + overlap`` (unless it was
        revoked); the member's node keeps its old HPKE key to open what was sealed to it.
        """
        _, current = self.current()
        old = self._member(current, member_id)
        if not kinds:
            raise InvalidRequestError("name at least one key to rotate")
        cfg = load_node_config(self.root / "nodes" / member_id / "node.toml")
        spec = load_federation_spec(self.layout.config)
        fresh = make_member_keys(
            *self._ca(), member_id, hybrid=_hybrid(current), now=now, valid_days=spec.cert_valid_days
        )
        changes: dict[str, object] = {}
        retired = current.retired_keys
        staged: list[tuple[Path, bytes]] = []
        if KeyKind.SIGNING in kinds:
            changes["signing_key"] = fresh.signing.public()
            staged.append((staged_path(cfg.keys.signing), fresh.signing.to_json().encode()))
            if not current.is_revoked(old.signing_key.keyid):
                until = now + overlap
                retired = (*retired, RetiredKey(member_id=member_id, signing_key=old.signing_key, until=until))
        if KeyKind.HPKE in kinds:
            changes["hpke_keys"] = fresh.hpke.public()
            staged.append((staged_path(cfg.keys.hpke), fresh.hpke.to_json().encode()))
        if KeyKind.TLS in kinds:
            changes["tls_fingerprint"] = pki.cert_fingerprint(fresh.tls_cert)
            staged.append((staged_path(cfg.keys.tls_key), pki.key_to_pem(fresh.tls_key)))
            staged.append((staged_path(cfg.keys.tls_cert), pki.cert_to_pem(fresh.tls_cert)))
        members = tuple(m.model_copy(update=changes) if m.member_id == member_id else m for m in current.members)
        roster = next_version(current, now, members=members, retired_keys=retired)
        for path, data in staged:
            path.unlink(missing_ok=True)  # a rotation written but never published is replaced
            if path.suffix == ".pem":
                path.write_bytes(data)
            else:
                write_private_file(path, data)
        return roster

    def _member(self, roster: Roster, member_id: str) -> Member:
        member = roster.member(member_id)
        if member is None:
            raise NotFoundError(f"{member_id} is not a member (roster v{roster.version})")
        return member

    def _ca(self) -> tuple[pki.PrivateKey, x509.Certificate]:
        return pki.key_from_pem(self.layout.ca_key.read_bytes()), pki.cert_from_pem(self.layout.ca_cert.read_bytes())


def _hybrid(roster: Roster) -> bool:
    return any(m.signing_key.ml_dsa_65 is not None for m in roster.members)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
