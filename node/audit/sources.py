"""Where an auditor finds the federation's logs, and what each holds about the others (SPEC §11.10.6).

An ``AuditView`` is the verified roster and, per member, a ``LogSource``: a node's own
database (a federation directory on this machine) or an audit bundle (``node.audit.bundle``),
both opened read-only. ``pins_for`` collects what the other members hold that commits to
one member's log: checkpoints of it they witnessed, and receipts in which it named its
INGRESS entry. The view needs no private key of any member.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from node.audit.verify import Pin
from node.config import load_node_config
from node.config.material import read_secretariat
from node.store import OutboxEntry, WitnessedCheckpoint, make_reader, make_sessionmaker
from protocol.checkpoint import verify_checkpoint
from protocol.errors import ConfigurationError, RemoteProtocolError
from protocol.receipt import Receipt
from protocol.roster import Roster, accept_roster
from protocol.statements import PayloadType, Signed

__all__ = ["AuditView", "LogSource", "federation_view", "pins_for"]


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


def pins_for(view: AuditView, member: str) -> list[Pin]:
    """What the other members hold that commits to ``member``'s log, each checked against the roster."""
    pins: list[Pin] = []
    for holder, source in sorted(view.sources.items()):
        if holder == member:
            continue
        try:
            with source.session() as session:
                pins += _witnessed(session, view.roster, member, holder)
                pins += _receipts(session, view.roster, member, holder)
        except FileNotFoundError:
            continue  # a node that never ran holds nothing
    return pins


def _witnessed(session: Session, roster: Roster, member: str, holder: str) -> list[Pin]:
    """Checkpoints of ``member``'s log that ``holder`` co-signed; only those ``member`` really signed."""
    pins = []
    for row in session.scalars(select(WitnessedCheckpoint).where(WitnessedCheckpoint.member == member)):
        try:
            verified = verify_checkpoint(bytes(row.note), roster=roster, member_id=member)
        except RemoteProtocolError:
            continue
        size, root = verified.checkpoint.size, verified.checkpoint.root
        pins.append(Pin(size, f"the checkpoint {holder} witnessed", root=root))
    return pins


def _receipts(session: Session, roster: Roster, member: str, holder: str) -> list[Pin]:
    """Receipts ``holder`` holds in which ``member`` named the leaf of its INGRESS entry (SPEC §11.3)."""
    signer = roster.member(member)
    if signer is None:
        return []
    pins = []
    rows = session.execute(
        select(OutboxEntry.envelope_id, OutboxEntry.receipt).where(
            OutboxEntry.recipient == member, OutboxEntry.receipt.is_not(None)
        )
    )
    for envelope_id, receipt in rows:
        try:
            signed = Signed.model_validate_json(receipt or b"")
            roster.verify_member(signed, PayloadType.RECEIPT, signer.member_id)  # SPEC §5.4.3: or a retired key
            parsed = Receipt.from_bytes(signed.payload)
        except (RemoteProtocolError, ValueError):
            continue
        source = f"{member}'s receipt for envelope {envelope_id} held by {holder}"
        pins.append(Pin(parsed.log_seq, source, leaf=parsed.log_leaf))
    return pins
