"""A synthetic audit log for the benchmarks: a busy node's mix of entries, written by the real writer.

``build(db, entries)`` writes ``entries`` entries into a SQLite file through
``node.audit.append_many``, in batches of 10,000, ten batches per transaction: transfers
out and in with their confirmations, checkpoints witnessed, officers' reads, a rare
refusal; four peers, an item per eight entries. The file is kept and reused while it
holds that many entries.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from node import audit
from node.store import AuditHead, make_engine, make_reader, make_sessionmaker, upgrade

__all__ = ["PEERS", "build", "entry", "size"]

BATCH = 10_000
BATCHES_PER_COMMIT = 10
PEERS = ("KZ", "AZ", "UZ", "KG")
START = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


def entry(i: int) -> audit.Entry:
    """Entry ``i`` (0-based) of the synthetic log."""
    peer = PEERS[(i // 8) % len(PEERS)]
    item = f"{i // 8:032x}"
    envelope = f"{i // 2:032x}"
    kind = i % 8
    if i % 1000 == 999:
        return audit.Entry(
            audit.AuditEvent.INGRESS, "TR", peer, item, 1, envelope, False, "BAND_ABOVE_CEILING", "§9.3.4"
        )
    if kind in (0, 1):
        event = audit.AuditEvent.EGRESS if kind == 0 else audit.AuditEvent.DELIVERY_CONFIRMED
        return audit.Entry(event, "TR", peer, item, 1, envelope, True, "ALLOWED", "§9.3", {"agreement": f"{peer}-TR:1"})
    if kind in (2, 3):
        return audit.Entry(audit.AuditEvent.INGRESS, "TR", peer, item, 1, envelope, True, "ALLOWED", "§9.3")
    if kind == 4:
        return audit.Entry(audit.AuditEvent.OFFICER_READ, "duty", None, item, 1, detail={"officer": "duty"})
    if kind == 5:
        return audit.Entry(audit.AuditEvent.RESHARE, "TR", peer, item, 1, envelope, True, "ALLOWED", "§9.3")
    return audit.Entry(
        audit.AuditEvent.CHECKPOINT_WITNESSED,
        "TR",
        peer,
        allowed=True,
        reason="CHECKPOINT_WITNESSED",
        detail={"size": i},
    )


def size(url: str) -> int:
    engine = make_reader(url)
    try:
        with make_sessionmaker(engine)() as session:
            seq = session.scalar(select(AuditHead.seq).where(AuditHead.id == 1))  # any schema revision
            return 0 if seq is None else int(seq)
    finally:
        engine.dispose()


def build(db: Path, entries: int, rebuild: bool) -> None:
    """A log of ``entries`` entries at ``db`` (kept from an earlier run if it has exactly that many)."""
    url = f"sqlite:///{db}"
    if db.exists() and not rebuild and size(url) == entries:
        upgrade(url)  # a log kept from a run before the newest migration
        print(f"reusing {db} ({entries:,} entries)")
        return
    for stale in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        stale.unlink(missing_ok=True)
    db.parent.mkdir(parents=True, exist_ok=True)
    upgrade(url)
    engine = make_engine(url)
    started = time.perf_counter()
    try:
        factory = make_sessionmaker(engine)
        done = 0
        while done < entries:
            with factory() as session, session.begin():
                for _ in range(BATCHES_PER_COMMIT):
                    count = min(BATCH, entries - done)
                    if count <= 0:
                        break
                    now = START + timedelta(seconds=done // 100)
                    audit.append_many(session, now=now, entries=[entry(done + j) for j in range(count)])
                    done += count
            print(f"  {done:>9,} entries  {time.perf_counter() - started:6.1f} s", flush=True)
    finally:
        engine.dispose()
    print(f"built {db}: {entries:,} entries in {time.perf_counter() - started:.1f} s")
