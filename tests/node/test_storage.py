"""Schema, migrations and engine settings of node.storage (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, event, inspect, select, text
from sqlalchemy.exc import IntegrityError, OperationalError, StatementError
from sqlalchemy.orm import Session, sessionmaker

from node.storage import (
    MIGRATIONS_DIR,
    AuditHead,
    Base,
    Delivery,
    OriginalItem,
    OutboxEntry,
    make_engine,
    upgrade,
)

T0 = datetime(2026, 5, 9, 12, 0, 0, 123456, tzinfo=UTC)


def _alembic_config(url: str) -> Config:
    cfg = Config(str(MIGRATIONS_DIR / "alembic.ini"))
    cfg.attributes["url"] = url
    return cfg


def _delivery(envelope_id: str, sender: str, nonce: str) -> Delivery:
    return Delivery(
        envelope_id=envelope_id,
        envelope_digest="ab" * 32,
        sender=sender,
        nonce=nonce,
        accepted=True,
        reason="ALLOWED",
        receipt=b"receipt",
        received_at=T0,
    )


def _outbox(envelope_id: str, state: str) -> OutboxEntry:
    return OutboxEntry(
        envelope_id=envelope_id,
        recipient="member-b",
        item_id="item-1",
        item_version=1,
        kind="item",
        envelope=b"sealed",
        state=state,
        attempts=0,
        next_attempt_at=T0,
        created_at=T0,
        updated_at=T0,
    )


def test_upgrade_creates_schema_and_seeds_head(db_url: str) -> None:
    upgrade(db_url)
    upgrade(db_url)  # idempotent: already at head
    engine = make_engine(db_url)
    try:
        tables = set(inspect(engine).get_table_names())
        assert tables == set(Base.metadata.tables) | {"alembic_version"}
        with Session(engine) as session:
            head = session.get(AuditHead, 1)
            assert head is not None
            assert (head.seq, head.entry_hash) == (0, "0" * 64)
    finally:
        engine.dispose()


def test_migration_matches_models(migrated_url: str) -> None:
    # Same as `alembic -c node/migrations/alembic.ini -x url=... check`.
    command.check(_alembic_config(migrated_url))


def test_downgrade_then_upgrade(migrated_url: str) -> None:
    cfg = _alembic_config(migrated_url)
    command.downgrade(cfg, "base")
    engine = make_engine(migrated_url)
    try:
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    finally:
        engine.dispose()
    command.upgrade(cfg, "head")
    command.check(cfg)


def test_sqlite_pragmas(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
    finally:
        engine.dispose()


def test_sqlite_transactions_begin_immediate(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'lock.db'}"
    upgrade(url)
    statements: list[str] = []
    first = make_engine(url)
    second = make_engine(url, busy_timeout_ms=50)
    event.listen(
        first, "before_cursor_execute", lambda _c, _cur, stmt, *_a: statements.append(stmt)
    )
    try:
        with first.connect() as holder:
            holder.begin()
            # Only a read, yet the write lock is already held: writers serialise up front.
            holder.execute(select(AuditHead.seq)).all()
            assert statements[0] == "BEGIN IMMEDIATE"
            with second.connect() as other, pytest.raises(OperationalError, match="locked"):
                other.begin()
                other.execute(select(AuditHead.seq)).all()
            holder.rollback()
    finally:
        first.dispose()
        second.dispose()


def test_rollback_discards_writes(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as session:
        session.add(_delivery("env-1", "member-a", "n1"))
        session.flush()
        session.rollback()
    with session_factory() as session:
        assert session.get(Delivery, "env-1") is None


def test_utc_datetime_round_trip(session_factory: sessionmaker[Session]) -> None:
    plus_two = datetime(2026, 5, 9, 14, 0, 0, 654321, tzinfo=timezone(timedelta(hours=2)))
    with session_factory.begin() as session:
        session.add(
            OriginalItem(
                item_id="item-1",
                item_version=1,
                origin_statement=b"\x00stmt",
                origin_digest="cd" * 32,
                sealed_content=b"\x01" * 4096,
                band=2,
                created_at=plus_two,
                recalled_at=None,
            )
        )
    with session_factory() as session:
        row = session.execute(select(OriginalItem)).scalar_one()
        assert row.created_at == plus_two
        assert row.created_at.tzinfo is UTC
        assert row.created_at.hour == 12 and row.created_at.microsecond == 654321
        assert row.recalled_at is None
        assert row.sealed_content == b"\x01" * 4096


def test_utc_datetime_rejects_naive(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as session:
        item = _delivery("env-naive", "member-a", "n1")
        item.received_at = datetime(2026, 5, 9, 12, 0)  # noqa: DTZ001 - deliberately naive
        session.add(item)
        with pytest.raises(StatementError, match="timezone-aware"):
            session.flush()


def test_sender_nonce_unique(session_factory: sessionmaker[Session]) -> None:
    with session_factory.begin() as session:
        session.add(_delivery("env-1", "member-a", "nonce-1"))
        # Same nonce from another sender is fine.
        session.add(_delivery("env-2", "member-b", "nonce-1"))
    with session_factory() as session:
        session.add(_delivery("env-3", "member-a", "nonce-1"))
        with pytest.raises(IntegrityError):
            session.commit()


def test_state_check_constraint(session_factory: sessionmaker[Session]) -> None:
    with session_factory.begin() as session:
        session.add(_outbox("env-ok", "pending"))
    with session_factory() as session:
        session.add(_outbox("env-bad", "lost"))
        with pytest.raises(IntegrityError):
            session.commit()


def test_audit_head_is_single_row(engine: Engine) -> None:
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(text("INSERT INTO audit_head (id, seq, entry_hash) VALUES (2, 0, 'x')"))
