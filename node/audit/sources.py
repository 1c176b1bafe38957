"""Where an auditor finds the federation's logs, and what each holds about the others (SPEC §11.10.6).

An ``AuditView`` is the verified roster and, per member, a ``LogSource``: a node's own
database (a federation directory on this machine) or an audit bundle (``node.audit.bundle``),
both opened read-only. ``pins_for`` collects what the other members hold that commits to
one member's log: checkpoints of it they witnessed, and receipts and notice
acknowledgements in which it named one of its entries. The view needs no private key of any member.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from node.audit.bundle import BundleError, bundled_members, bundled_rosters, open_bundle
from node.audit.verify import Pin
from node.config import load_node_config
from node.config.material import read_secretariat
from node.store import NoticeAckRow, OutboxEntry, WitnessedCheckpoint, make_reader, make_sessionmaker
from protocol.checkpoint import verify_checkpoint
from protocol.errors import ConfigurationError, RemoteProtocolError
from protocol.notices import verify_notice_ack
from protocol.receipt import Receipt
from protocol.roster import Roster, SecretariatKeys, accept_roster
from protocol.statements import PayloadType, Signed

__all__ = [
    "AuditView",
    "LogSource",
    "bundle_view",
    "federation_view",
    "pin_from_checkpoint",
    "pin_from_statement",
    "pins_for",
    "roster_from_bundles",
]


@dataclass(frozen=True)
class LogSource:
    """One member's audit data: a database URL, opened read-only."""

    member: str
    url: str
    #: "node" (a node's own database) or "bundle".
    kind: str

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A read-only session on the source."""
        engine = make_reader(self.url)
        try:
            with make_sessionmaker(engine)() as session:
                yield session
        finally:
            engine.dispose()


@dataclass(frozen=True)
class AuditView:
    """The roster an auditor trusts and the logs it can read."""

    roster: Roster
    sources: Mapping[str, LogSource]


def federation_view(root: Path) -> AuditView:
    """A federation directory (``intelshare federation init``): its roster, verified, and every node's database."""
    try:
        statement = Signed.from_bytes((root / "roster.json").read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"{root}: not a federation directory: {exc}") from exc
    roster = accept_roster(statement, secretariat=read_secretariat(root / "secretariat.json"), current=None)
    sources = {}
    for config in sorted((root / "nodes").glob("*/node.toml")):
        cfg = load_node_config(config)
        sources[cfg.member_id] = LogSource(cfg.member_id, cfg.database_url, "node")
    return AuditView(roster, sources)


def bundle_view(roster: Roster, paths: Sequence[Path]) -> AuditView:
    """Audit bundles (``node.audit.bundle``), each checked against the roster before it is read."""
    opened = bundled_members([open_bundle(path, roster=roster) for path in paths])
    for bundle in opened.values():
        if bundle.manifest.federation != roster.federation:
            raise BundleError(f"{bundle.path}: a bundle of federation {bundle.manifest.federation!r}")
    return AuditView(roster, {m: LogSource(m, b.url, "bundle") for m, b in sorted(opened.items())})


def roster_from_bundles(paths: Sequence[Path], secretariat: SecretariatKeys) -> Roster:
    """The newest roster the bundles carry, reached from the secretariat's keys alone (SPEC §11.10.8).

    Every version any bundle carries is tried in ascending order, each accepted as a node
    accepts a published one (SPEC §11.12): signed by the threshold the previous accepted
    version declares, or the trust anchor's for the first. A version that does not verify
    is passed over, so a bundle cannot hold the auditor to a forged roster; a member that
    left newer versions out cannot either, as long as one bundle carries them.
    """
    versions: dict[bytes, Signed] = {}
    for path in paths:
        for signed in bundled_rosters(path):
            versions.setdefault(signed.to_bytes(), signed)
    roster: Roster | None = None
    for signed in sorted(versions.values(), key=_claimed_version):
        try:
            roster = accept_roster(signed, secretariat=secretariat, current=roster)
        except RemoteProtocolError:
            continue
    if roster is None:
        raise BundleError("no roster signed by the secretariat in the bundles given")
    return roster


def _claimed_version(signed: Signed) -> int:
    try:
        return Roster.from_bytes(signed.payload).version
    except RemoteProtocolError:
        return -1  # refused in turn by accept_roster


def pins_for(view: AuditView, member: str) -> list[Pin]:
    """What the other members hold that commits to ``member``'s log, each checked against the roster."""
    pins: list[Pin] = []
    for holder, source in sorted(view.sources.items()):
        if holder == member:
            continue
        try:
            with source.session() as session:
                pins += _witnessed(session, view.roster, member, holder)
                pins += _statements(session, view.roster, member, holder)
        except FileNotFoundError:
            continue  # a node that never ran holds nothing
    return pins


def pin_from_checkpoint(note: bytes, roster: Roster, member: str, holder: str) -> Pin | None:
    """A checkpoint of ``member``'s log that ``holder`` co-signed, if ``member`` really signed it."""
    try:
        verified = verify_checkpoint(note, roster=roster, member_id=member)
    except RemoteProtocolError:
        return None
    return Pin(verified.checkpoint.size, f"the checkpoint {holder} witnessed", root=verified.checkpoint.root)


def pin_from_statement(signed: Signed, roster: Roster, member: str, holder: str) -> Pin | None:
    """A receipt (SPEC §11.3) or notice acknowledgement (SPEC §10.3) ``member`` signed naming one of its entries."""
    try:
        if signed.payload_type == PayloadType.RECEIPT.value:
            roster.verify_member(signed, PayloadType.RECEIPT, member)  # SPEC §5.4.3: or a retired key
            receipt = Receipt.from_bytes(signed.payload)
            source = f"{member}'s receipt for envelope {receipt.envelope_id} held by {holder}"
            return Pin(receipt.log_seq, source, leaf=receipt.log_leaf)
        ack = verify_notice_ack(signed, roster=roster)
    except (RemoteProtocolError, ValueError):
        return None
    if ack.holder != member:
        return None
    source = f"{member}'s acknowledgement of notice {ack.notice_digest[:12]} held by {holder}"
    return Pin(ack.log_seq, source, leaf=ack.log_leaf)


def _witnessed(session: Session, roster: Roster, member: str, holder: str) -> list[Pin]:
    """Checkpoints of ``member``'s log that ``holder`` co-signed; only those ``member`` really signed."""
    notes = session.scalars(select(WitnessedCheckpoint.note).where(WitnessedCheckpoint.member == member))
    return [pin for note in notes if (pin := pin_from_checkpoint(bytes(note), roster, member, holder))]


def _statements(session: Session, roster: Roster, member: str, holder: str) -> list[Pin]:
    """Receipts and notice acknowledgements ``holder`` holds in which ``member`` named one of its entries."""
    receipts = session.scalars(
        select(OutboxEntry.receipt).where(OutboxEntry.recipient == member, OutboxEntry.receipt.is_not(None))
    )
    acks = session.scalars(select(NoticeAckRow.statement).where(NoticeAckRow.holder == member))
    pins = []
    for blob in [*receipts, *acks]:
        try:
            signed = Signed.model_validate_json(blob or b"")
        except ValueError:
            continue
        if (pin := pin_from_statement(signed, roster, member, holder)) is not None:
            pins.append(pin)
    return pins
