"""Where a node keeps its own checkpoints (SPEC §11.10.8, ``node.audit.checkpoints``), on both databases.

The latest rides in the head row with every commit that appends; the history is written
``KEEP_EVERY`` at a time, and at once for a checkpoint shown to a witness.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session, sessionmaker

import node
from node import audit
from node.audit import AuditEvent
from node.audit.checkpoints import (
    KEEP_EVERY,
    checkpoint_at,
    keep_checkpoint,
    keep_rows,
    latest_checkpoint,
    own_checkpoint_roots,
)
from node.audit.tree import CheckpointSigner, LogTree
from node.audit.writer import TREE_KEY
from node.store import AuditCheckpoint
from protocol.checkpoint import verify_own_checkpoint
from protocol.keys import SigningKey

MIGRATIONS = Path(node.__file__).parent / "migrations"
T0 = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
KEY = SigningKey.generate(hybrid=False)


def _commit(factory: sessionmaker[Session], tree: LogTree, n: int) -> None:
    """One commit of ``n`` entries as the runtime's group commit makes it."""
    with factory() as session:
        session.info[TREE_KEY] = tree
        for i in range(n):
            audit.append(session, now=T0 + timedelta(seconds=tree.size + i), event=AuditEvent.NODE_STARTED, actor="TR")
        sealed = audit.seal(session, now=T0 + timedelta(seconds=tree.size + n))
        session.commit()
        assert sealed is not None
        tree.committed(*sealed)


@pytest.fixture
def tree(session_factory: sessionmaker[Session]) -> LogTree:
    with session_factory() as session:
        return LogTree.load(session, CheckpointSigner(KEY, "test", "TR"))


def _history(factory: sessionmaker[Session]) -> int:
    with factory() as session:
        return int(session.scalar(select(func.count()).select_from(AuditCheckpoint)) or 0)


def test_each_commit_leaves_its_checkpoint_in_the_head_and_no_row(
    session_factory: sessionmaker[Session], tree: LogTree
) -> None:
    _commit(session_factory, tree, 3)
    _commit(session_factory, tree, 2)
    with session_factory() as session:
        latest = latest_checkpoint(session)
        assert latest is not None
        assert latest.size == 5
        verified = verify_own_checkpoint(latest.note, federation="test", member_id="TR", keys=[KEY.public()])
        assert verified.checkpoint.size == 5
        assert [size for size, _ in own_checkpoint_roots(session)] == [5]
    assert _history(session_factory) == 0
    assert [row["size"] for row in tree.unkept] == [3, 5]


def test_history_is_written_a_batch_at_a_time(session_factory: sessionmaker[Session], tree: LogTree) -> None:
    for _ in range(KEEP_EVERY):
        _commit(session_factory, tree, 1)
    assert _history(session_factory) == KEEP_EVERY
    assert tree.unkept == ()
    with session_factory() as session:
        assert [size for size, _ in own_checkpoint_roots(session)] == list(range(1, KEEP_EVERY + 1))
        first = checkpoint_at(session, 1)
        assert first is not None
        assert first.size == 1


def test_a_checkpoint_shown_to_a_witness_is_not_written_twice(
    session_factory: sessionmaker[Session], tree: LogTree
) -> None:
    _commit(session_factory, tree, 1)
    with session_factory.begin() as session:
        latest = latest_checkpoint(session)
        assert latest is not None
        keep_checkpoint(session, latest)  # as request_witnessing does
    with session_factory.begin() as session:
        keep_rows(session, tree.unkept)  # as the next batch, or the node's stop, does
    assert _history(session_factory) == 1


def test_a_log_from_before_the_head_carried_one_reads_its_table(
    session_factory: sessionmaker[Session], tree: LogTree
) -> None:
    for _ in range(KEEP_EVERY):
        _commit(session_factory, tree, 1)
    with session_factory.begin() as session:
        session.execute(text("UPDATE audit_head SET checkpoint = NULL, checkpoint_at = NULL"))
    with session_factory() as session:
        latest = latest_checkpoint(session)
        assert latest is not None
        assert latest.size == KEEP_EVERY


def test_downgrade_below_0009_keeps_the_latest_checkpoint_in_the_table(
    session_factory: sessionmaker[Session], tree: LogTree, engine: Engine, migrated_url: str
) -> None:
    # The code before migration 0009 finds its latest checkpoint in the table: put it there.
    _commit(session_factory, tree, 3)
    engine.dispose()
    cfg = Config(str(MIGRATIONS / "alembic.ini"))
    cfg.attributes["url"] = migrated_url
    command.downgrade(cfg, "0008")
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT size, note FROM audit_checkpoints")).all()
    assert [int(size) for size, _ in rows] == [3]
    verified = verify_own_checkpoint(bytes(rows[0][1]), federation="test", member_id="TR", keys=[KEY.public()])
    assert verified.checkpoint.size == 3
    engine.dispose()
    command.upgrade(cfg, "head")
