"""Audit bundles: one node's audit data, signed, for an auditor who cannot reach the node (SPEC §11.10.8).

A bundle is a SQLite file with the node's schema (so the auditor's tools read it like a
node's own database) holding the tables an auditor needs: the log and its tree,
checkpoints and cosignatures, the checkpoints it witnessed for others, receipts,
notices and acknowledgements, consents, the roster versions it held (the public roster,
signed by the secretariat), and the metadata of items, never their content:
sealed content is blanked and sealed envelopes are left out. The node signs a
``BundleManifest`` naming its log's size and root and the SHA-256 of every table as
written; ``open_bundle`` checks that signature against the roster and recomputes every
digest and the root, so a bundle edited, cut or extended after export is refused as a
whole before anything reads it.

A bundle proves what the node's database held at export, not that it was honest: an
insider who rewrote the log before exporting signs the rewrite. That is for
``verify`` (checkpoints the peers witnessed, receipts they hold) and ``reconcile``.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any

from sqlalchemy import Column, LargeBinary, MetaData, String, Table, delete, insert, select
from sqlalchemy.engine import Connection

from node.audit.entries import format_time
from node.store import Base, make_engine, make_reader, upgrade
from protocol.bundle import BundleManifest
from protocol.errors import IntelshareError, RemoteProtocolError
from protocol.keys import SigningKey
from protocol.merkle import Frontier
from protocol.roster import Roster
from protocol.statements import PayloadType, Signed, sign, verify_and_parse

__all__ = [
    "BUNDLED_TABLES",
    "BundleError",
    "OpenedBundle",
    "bundled_members",
    "bundled_rosters",
    "open_bundle",
    "write_bundle",
]

#: The tables a bundle holds, and the schema revision table so a reader knows what it reads.
BUNDLED_TABLES = (
    "alembic_version",
    "audit_log",
    "audit_head",
    "audit_subtrees",
    "audit_checkpoints",
    "audit_cosignatures",
    "witnessed_checkpoints",
    "notices",
    "notice_acks",
    "deliveries",
    "outbox",
    "inbox_items",
    "original_items",
    "consent_requests",
    "consent_grants",
    "roster_history",
)
#: Content never leaves the node, not even sealed with its at-rest key.
_BLANKED = {"inbox_items": "sealed_content", "original_items": "sealed_content"}
_CHUNK = 5_000
_EXTRA = MetaData()
#: The signed manifest: a table of the bundle only, not of a node's schema.
_MANIFEST = Table("bundle_manifest", _EXTRA, Column("statement", LargeBinary, nullable=False))
_REVISION = Table("alembic_version", _EXTRA, Column("version_num", String(32), primary_key=True))


class BundleError(IntelshareError):
    """A bundle that is not one: unreadable, of another schema, unsigned, or changed since export."""


@dataclass(frozen=True)
class OpenedBundle:
    """A bundle whose signature, table digests and log root all checked out."""

    path: Path
    manifest: BundleManifest
    #: A read-only database URL of the bundle.
    url: str


def write_bundle(
    source_url: str, out: Path, *, member: str, federation: str, key: SigningKey, now: datetime
) -> BundleManifest:
    """Copy a node's audit data from ``source_url`` into a new bundle at ``out`` and sign it."""
    if out.exists():
        raise BundleError(f"{out} exists; a bundle is written to a new file")
    url = f"sqlite:///{out}"
    upgrade(url)
    reader, writer = make_reader(source_url), make_engine(url)
    try:
        with reader.connect() as src, writer.begin() as dst:
            for name in BUNDLED_TABLES[1:]:
                _copy(src, dst, _table(name))
        with writer.begin() as conn:
            digests = {name: _digest(conn, name) for name in BUNDLED_TABLES}
            size, root = _log_root(conn)
            manifest = BundleManifest(
                member=member, federation=federation, exported_at=now, log_size=size, log_root=root, tables=digests
            )
            statement = sign(PayloadType.AUDIT_BUNDLE, manifest, [key])
            _MANIFEST.create(conn)
            conn.execute(insert(_MANIFEST), {"statement": statement.to_bytes()})
    finally:
        reader.dispose()
        writer.dispose()
    with closing(sqlite3.connect(out)) as conn:  # one file for the auditor, no write-ahead log beside it
        conn.execute("PRAGMA journal_mode=DELETE")
    return manifest


def open_bundle(path: Path, *, roster: Roster) -> OpenedBundle:
    """Check a bundle before anything reads it: signed by its member, every table as signed (SPEC §11.10.8)."""
    if not path.is_file():
        raise BundleError(f"{path}: no such bundle")
    url = f"sqlite:///{path}"
    try:
        engine = make_reader(url)
    except FileNotFoundError as exc:
        raise BundleError(f"{path}: {exc}") from exc
    try:
        with engine.connect() as conn:
            manifest = _manifest(conn, path, roster)
            revision = conn.execute(select(_REVISION.c.version_num)).scalar()
            for name in BUNDLED_TABLES:
                if _digest(conn, name) != manifest.tables.get(name):
                    raise BundleError(f"{path}: table {name} is not as {manifest.member} signed it")
            if set(manifest.tables) != set(BUNDLED_TABLES):
                raise BundleError(f"{path}: the manifest lists other tables than a bundle of revision {revision}")
            if _log_root(conn) != (manifest.log_size, manifest.log_root):
                raise BundleError(f"{path}: the log is not the one {manifest.member} signed")
    except BundleError:
        raise
    except Exception as exc:  # a file that is no SQLite database, or lacks a table: not a bundle
        raise BundleError(f"{path}: not an audit bundle: {str(exc).splitlines()[0]}") from exc
    finally:
        engine.dispose()
    return OpenedBundle(path, manifest, url)


def bundled_rosters(path: Path) -> list[Signed]:
    """The signed roster versions a bundle carries, unverified: each is checked against the
    secretariat's keys by whoever uses it (SPEC §11.10.8), so they are read before the manifest,
    whose signature needs a roster to check."""
    if not path.is_file():
        raise BundleError(f"{path}: no such bundle")
    engine = make_reader(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            history = _table("roster_history")
            blobs = conn.execute(select(history.c.statement).order_by(history.c.version)).scalars().all()
    except Exception as exc:  # no SQLite database, or no roster table: not a bundle
        raise BundleError(f"{path}: not an audit bundle: {str(exc).splitlines()[0]}") from exc
    finally:
        engine.dispose()
    try:
        return [Signed.from_bytes(bytes(blob)) for blob in blobs]
    except RemoteProtocolError as exc:
        raise BundleError(f"{path}: a roster it carries is no signed statement: {exc}") from exc


def _manifest(conn: Connection, path: Path, roster: Roster) -> BundleManifest:
    """The manifest, verified with its member's roster key."""
    (blob,) = conn.execute(select(_MANIFEST.c.statement)).one()
    signed = Signed.from_bytes(bytes(blob))
    claimed = json.loads(signed.payload).get("member", "")
    signer = roster.trusted_signer(str(claimed))
    if signer is None:
        raise BundleError(f"{path}: signed in the name of {claimed!r}, no member with a valid key")
    try:
        return verify_and_parse(signed, PayloadType.AUDIT_BUNDLE, [signer.signing_key], BundleManifest)
    except RemoteProtocolError as exc:
        raise BundleError(f"{path}: manifest refused: {exc}") from exc


def _table(name: str) -> Table:
    return _REVISION if name == _REVISION.name else Base.metadata.tables[name]


def _copy(src: Connection, dst: Connection, table: Table) -> None:
    blank = _BLANKED.get(table.name)
    dst.execute(delete(table))  # rows the migrations seed (the empty log's head) are the source's to give
    rows = src.execution_options(yield_per=_CHUNK).execute(select(table).order_by(*table.primary_key.columns))
    for chunk in rows.mappings().partitions(_CHUNK):
        values = [dict(row) | ({blank: b""} if blank else {}) for row in chunk]
        dst.execute(insert(table), values)


def _digest(conn: Connection, name: str) -> str:
    """SHA-256 over a table's rows in primary-key order, each a JSON list of its values."""
    sha = hashlib.sha256()
    for line in _lines(conn, name):
        sha.update(line)
    return sha.hexdigest()


def _lines(conn: Connection, name: str) -> Iterator[bytes]:
    table = _table(name)
    result = conn.execution_options(yield_per=_CHUNK).execute(select(table).order_by(*table.primary_key.columns))
    for chunk in result.partitions(_CHUNK):
        for row in chunk:
            yield json.dumps([_plain(value) for value in row], separators=(",", ":")).encode() + b"\n"


def _plain(value: Any) -> Any:
    """A column value as the digest writes it (SPEC §11.10.8)."""
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, Enum):
        return value.value
    return value


def _log_root(conn: Connection) -> tuple[int, str]:
    """The size of the bundled log and the Merkle root of its entry hashes as stored."""
    frontier = Frontier()
    log = _table("audit_log")
    result = conn.execution_options(yield_per=_CHUNK).execute(select(log.c.entry_hash).order_by(log.c.seq))
    for chunk in result.partitions(_CHUNK):
        for (entry_hash,) in chunk:
            frontier.append(bytes.fromhex(entry_hash))
    return frontier.size, frontier.root().hex()


def bundled_members(opened: Sequence[OpenedBundle]) -> dict[str, OpenedBundle]:
    """One bundle per member; two of one member is the caller's mistake."""
    out: dict[str, OpenedBundle] = {}
    for bundle in opened:
        if bundle.manifest.member in out:
            raise BundleError(
                f"{bundle.path} and {out[bundle.manifest.member].path} are both {bundle.manifest.member}'s"
            )
        out[bundle.manifest.member] = bundle
    return out
