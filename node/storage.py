"""Node persistence: ORM models, engine and session helpers, and schema upgrade.

This module holds only the schema and the plumbing to reach it. Policy, sealing and audit
logic live elsewhere (``node.audit`` appends to ``AuditEntryRow``/``AuditHead``).

The schema is created and changed only by the Alembic migrations packaged in
``node/migrations``; call :func:`upgrade` rather than ``Base.metadata.create_all``.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Engine,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.sql.dml import Insert, Update
from sqlalchemy.types import TypeDecorator

__all__ = [
    "MIGRATIONS_DIR",
    "SQLITE_BUSY_TIMEOUT_MS",
    "SQLITE_PAGE_SIZE",
    "AuditEntryRow",
    "AuditHead",
    "Base",
    "ConsentGrantRow",
    "ConsentRequestRow",
    "ControlMessage",
    "Delivery",
    "HotWrite",
    "InboxItem",
    "NoticeRow",
    "OriginalItem",
    "OutboxEntry",
    "OutboxEnvelope",
    "UTCDateTime",
    "driver_time",
    "make_engine",
    "make_sessionmaker",
    "normalise_url",
    "upgrade",
]

#: Folder holding ``alembic.ini``, ``env.py`` and ``versions/``; shipped as package data.
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

#: How long a SQLite writer waits for another writer's BEGIN IMMEDIATE to finish.
SQLITE_BUSY_TIMEOUT_MS = 30_000
#: Page size of a new SQLite database (an existing one keeps its own).
SQLITE_PAGE_SIZE = 16_384

# Deterministic constraint names: SQLite ALTERs go through Alembic batch mode, which needs
# named constraints, and both dialects then carry identical names.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """The single declarative base for every node table."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every dialect.

    SQLite has no timezone type and stores naive values, so we store naive UTC there and
    re-attach UTC on load; PostgreSQL stores ``timestamptz``. Naive input is rejected so a
    local-time value can never slip in silently.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("UTCDateTime needs a timezone-aware datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        """On SQLite, one step to SQLite's own DATETIME text, remembering the last value.

        Same text as ``process_bind_param`` followed by SQLite's DATETIME processor
        (``YYYY-MM-DD HH:MM:SS.ffffff``). Hot paths bind one ``now`` to many rows and
        columns: the last conversion is kept, so they pay for it once.
        """
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)
        last: list[tuple[datetime | None, str | None]] = [(None, None)]

        def process(value: datetime | None) -> str | None:
            if value is None:
                return None
            seen, text = last[0]  # one tuple read: safe without a lock
            if seen is value:
                return text
            if value.tzinfo is None or value.utcoffset() is None:
                raise ValueError("UTCDateTime needs a timezone-aware datetime")
            text = value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
            last[0] = (value, text)
            return text

        return process

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


_TIME_PROCESSORS: dict[str, Callable[[Any], Any]] = {}


def driver_time(dialect: Dialect, at: datetime) -> Any:
    """``at`` as the driver takes it for a ``UTCDateTime`` column, for ``HotWrite`` rows.

    The same conversion SQLAlchemy applies when it binds the column itself.
    """
    processor = _TIME_PROCESSORS.get(dialect.name)
    if processor is None:
        made = UTCDateTime().bind_processor(dialect)
        assert made is not None  # a TypeDecorator with process_bind_param always has one
        processor = _TIME_PROCESSORS[dialect.name] = made
    return processor(at)


class HotWrite:
    """A Core INSERT or UPDATE that a hot path runs for many rows at once (SPEC §11.7).

    SQLAlchemy compiles the statement once per dialect and set of keys; the rows then go
    to the driver's ``executemany`` as they are, skipping SQLAlchemy's per-row parameter
    building and type processing, which was most of the Python time of a bulk write, on
    the node's one database thread. So values must already be what the driver takes:
    datetimes from ``driver_time``; ``bytes``, ``str``, ``int``, ``bool`` and ``None``
    as they are. Every row has the keys of the first.
    """

    def __init__(self, statement: Insert | Update) -> None:
        self._statement = statement
        self._compiled: dict[tuple[str, tuple[str, ...]], tuple[str, Callable[[Mapping[str, Any]], Any] | None]] = {}

    def execute(self, connection: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Write ``rows`` in the connection's transaction."""
        if not rows:
            return
        keys = tuple(rows[0])
        cached = self._compiled.get((connection.dialect.name, keys))
        if cached is None:
            compiled = self._statement.compile(dialect=connection.dialect, column_keys=list(keys))
            # Positional (sqlite3): each row as a tuple in the statement's order.
            as_tuple = _tuple_getter(compiled.positiontup or ()) if compiled.positional else None
            cached = self._compiled[(connection.dialect.name, keys)] = (compiled.string, as_tuple)
        sql, as_tuple = cached
        if as_tuple is None:  # named parameters (psycopg): the rows as they are
            connection.exec_driver_sql(sql, list(rows))
        else:
            connection.exec_driver_sql(sql, [as_tuple(row) for row in rows])


def _tuple_getter(keys: Sequence[str]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    if len(keys) == 1:  # itemgetter of one key returns the value, not a 1-tuple
        (key,) = keys
        return lambda row: (row[key],)
    return operator.itemgetter(*keys)


def _one_of(column: str, *values: str) -> CheckConstraint:
    listed = ", ".join(f"'{v}'" for v in values)
    return CheckConstraint(f"{column} IN ({listed})", name=column)


class OriginalItem(Base):
    """An item this node originated (one row per version)."""

    __tablename__ = "original_items"

    item_id: Mapped[str] = mapped_column(String, primary_key=True)
    item_version: Mapped[int] = mapped_column(Integer, primary_key=True)
    origin_statement: Mapped[bytes] = mapped_column(LargeBinary)
    origin_digest: Mapped[str] = mapped_column(String(64))
    # Plaintext sealed with the node-local key by the caller; never stored in the clear.
    sealed_content: Mapped[bytes] = mapped_column(LargeBinary)
    band: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    recalled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class InboxItem(Base):
    """An item received from a peer, held under the label it arrived with."""

    __tablename__ = "inbox_items"
    __table_args__ = (
        _one_of("status", "held", "recalled", "superseded"),
        Index("ix_inbox_items_item", "item_id", "item_version"),
    )

    envelope_id: Mapped[str] = mapped_column(String, primary_key=True)
    item_id: Mapped[str] = mapped_column(String)
    item_version: Mapped[int] = mapped_column(Integer)
    originator: Mapped[str] = mapped_column(String)
    sender: Mapped[str] = mapped_column(String)
    origin_digest: Mapped[str] = mapped_column(String(64))
    band: Mapped[int] = mapped_column(Integer)
    category: Mapped[str] = mapped_column(String)
    topics: Mapped[str] = mapped_column(Text)  # JSON list of topic strings
    label_json: Mapped[str] = mapped_column(Text)  # label metadata only, never content
    origin_statement: Mapped[bytes] = mapped_column(LargeBinary)
    consent_chain: Mapped[bytes] = mapped_column(LargeBinary)  # serialised grants; may be empty
    sealed_content: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16))


class Delivery(Base):
    """Outcome of every ingress attempt: makes re-delivery idempotent and replay visible."""

    __tablename__ = "deliveries"
    # A sender's nonce may be used once; a replayed envelope hits this constraint.
    __table_args__ = (UniqueConstraint("sender", "nonce"),)

    envelope_id: Mapped[str] = mapped_column(String, primary_key=True)
    envelope_digest: Mapped[str] = mapped_column(String(64))
    sender: Mapped[str] = mapped_column(String)
    nonce: Mapped[str] = mapped_column(String)
    accepted: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(String)
    receipt: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)


class OutboxEntry(Base):
    """An envelope (already sealed to its recipient) waiting to be delivered or settled."""

    __tablename__ = "outbox"
    __table_args__ = (
        _one_of("kind", "item", "reshare"),
        _one_of("state", "pending", "delivered", "refused", "failed"),
        # The delivery loop scans "pending and due" in next_attempt_at order.
        Index("ix_outbox_state_due", "state", "next_attempt_at"),
    )

    envelope_id: Mapped[str] = mapped_column(String, primary_key=True)
    recipient: Mapped[str] = mapped_column(String)
    item_id: Mapped[str] = mapped_column(String)
    item_version: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(String)
    receipt: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class OutboxEnvelope(Base):
    """The sealed bytes of an outbox entry, written once and sent as they are on every retry.

    Kept apart from ``OutboxEntry`` so that settling an entry (a small UPDATE) does not
    rewrite the envelope: SQLite rewrites a whole row, overflow pages included.
    """

    __tablename__ = "outbox_envelopes"

    envelope_id: Mapped[str] = mapped_column(String, primary_key=True)
    envelope: Mapped[bytes] = mapped_column(LargeBinary)


class ControlMessage(Base):
    """A signed control message (consent request or decision, notice) waiting for its ack.

    Committed with the change it announces; re-sent until the peer acknowledges it.
    Receivers treat a repeat as a duplicate, so a re-send is harmless.
    """

    __tablename__ = "control_outbox"
    __table_args__ = (
        _one_of("rpc", "RequestConsent", "SendConsentDecision", "Notify"),
        _one_of("state", "pending", "acknowledged"),
        Index("ix_control_outbox_state_due", "state", "next_attempt_at"),
    )

    #: The statement digest and the recipient: one message per statement per peer.
    message_id: Mapped[str] = mapped_column(String, primary_key=True)
    recipient: Mapped[str] = mapped_column(String)
    rpc: Mapped[str] = mapped_column(String(32))
    statement: Mapped[bytes] = mapped_column(LargeBinary)
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    ack: Mapped[str | None] = mapped_column(String)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ConsentRequestRow(Base):
    """A third-party consent request, sent (outgoing) or received (incoming)."""

    __tablename__ = "consent_requests"
    __table_args__ = (
        _one_of("direction", "incoming", "outgoing"),
        _one_of("state", "pending", "granted", "denied"),
    )

    request_id: Mapped[str] = mapped_column(String, primary_key=True)
    direction: Mapped[str] = mapped_column(String(16))
    item_id: Mapped[str] = mapped_column(String)
    item_version: Mapped[int] = mapped_column(Integer)
    requester: Mapped[str] = mapped_column(String)
    third_party: Mapped[str] = mapped_column(String)
    purpose: Mapped[str] = mapped_column(Text)
    statement: Mapped[bytes] = mapped_column(LargeBinary)
    state: Mapped[str] = mapped_column(String(16))
    decision: Mapped[bytes | None] = mapped_column(LargeBinary)
    reason: Mapped[str | None] = mapped_column(String)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ConsentGrantRow(Base):
    """A signed consent grant held by this node (issued by it or to it)."""

    __tablename__ = "consent_grants"

    grant_id: Mapped[str] = mapped_column(String, primary_key=True)
    item_id: Mapped[str] = mapped_column(String)
    item_version: Mapped[int] = mapped_column(Integer)
    holder: Mapped[str] = mapped_column(String)
    grantee: Mapped[str] = mapped_column(String)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    transferable: Mapped[bool] = mapped_column(Boolean)
    statement: Mapped[bytes] = mapped_column(LargeBinary)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class NoticeRow(Base):
    """A signed recall, correction or revocation notice received."""

    __tablename__ = "notices"
    __table_args__ = (_one_of("kind", "recall", "correction", "revocation"),)

    notice_id: Mapped[str] = mapped_column(String, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    item_id: Mapped[str] = mapped_column(String)
    item_version: Mapped[int] = mapped_column(Integer)
    issuer: Mapped[str] = mapped_column(String)
    statement: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AuditEntryRow(Base):
    """One hash-linked audit entry: metadata and digests only, never content.

    See ``node.audit`` for the entry encoding and hash chain.
    """

    __tablename__ = "audit_log"
    # No index on entry_hash: a random key dirties an index page per append (migration 0004).
    __table_args__ = (Index("ix_audit_log_event_seq", "event", "seq"),)

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    event: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String)
    peer: Mapped[str | None] = mapped_column(String)
    item_id: Mapped[str | None] = mapped_column(String)
    item_version: Mapped[int | None] = mapped_column(Integer)
    envelope_id: Mapped[str | None] = mapped_column(String)
    allowed: Mapped[bool | None] = mapped_column(Boolean)
    reason: Mapped[str | None] = mapped_column(String)
    rule: Mapped[str | None] = mapped_column(String)
    detail: Mapped[str] = mapped_column(Text)  # canonical JSON object text
    prev_hash: Mapped[str] = mapped_column(String(64))
    entry_hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """Single row (id=1) naming the last audit entry; seeded by the initial migration.

    Appenders lock this row, so concurrent writers cannot fork the chain, and verify()
    uses it to detect truncation.
    """

    __tablename__ = "audit_head"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    entry_hash: Mapped[str] = mapped_column(String(64))


def normalise_url(url: str) -> str:
    """Pin PostgreSQL URLs to psycopg 3 (the only PostgreSQL driver we install)."""
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


def _sqlite_on_connect(busy_timeout_ms: int) -> Callable[[Any, ConnectionPoolEntry], None]:
    def on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Take transaction control away from the sqlite3 module so the "begin" hook can
        # emit BEGIN IMMEDIATE (documented SQLAlchemy pysqlite recipe).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            # Before WAL: a page size only applies to a database with no tables yet, and is
            # ignored (harmlessly) for one that exists. Sealed items and envelopes are 4-11
            # KiB rows: on 16 KiB pages they fit one page instead of an overflow chain, so a
            # commit writes fewer WAL frames (SPEC §11.7).
            cursor.execute(f"PRAGMA page_size={SQLITE_PAGE_SIZE}")
            cursor.execute("PRAGMA journal_mode=WAL")
            # FULL: the inbox and the audit log must survive power loss, not just a crash.
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        finally:
            cursor.close()

    return on_connect


def _sqlite_on_begin(conn: Connection) -> None:
    # Take the write lock up front: writers serialise instead of failing with
    # SQLITE_BUSY when a read transaction later tries to upgrade to a write.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str, *, busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS, **kwargs: Any) -> Engine:
    """Create an engine with the node's durability and locking settings.

    SQLite: WAL, ``synchronous=FULL``, foreign keys, ``busy_timeout_ms`` and BEGIN
    IMMEDIATE transactions. PostgreSQL: ``postgresql+psycopg://`` with pre-ping.
    ``kwargs`` go to ``create_engine``.
    """
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_on_connect(busy_timeout_ms))
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Session factory; rows stay readable after commit (no reload round trip)."""
    return sessionmaker(bind=engine, expire_on_commit=False)


def upgrade(url: str, revision: str = "head") -> None:
    """Run ``alembic upgrade <revision>`` on ``url`` with the packaged migrations."""
    # Imported here so importing the models does not pull in Alembic.
    from alembic import command
    from alembic.config import Config

    cfg = Config(str(MIGRATIONS_DIR / "alembic.ini"))
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Passed as an attribute, not an ini option: ini values treat "%" as interpolation.
    cfg.attributes["url"] = url
    command.upgrade(cfg, revision)
