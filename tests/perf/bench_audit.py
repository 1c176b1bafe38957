"""Benchmark: the auditor's work on a 1,000,000-entry audit log, on SQLite and PostgreSQL (SPEC §11.4, §11.10.8).

    .venv/bin/python tests/perf/bench_audit.py [--entries 1000000] [--repeat 7] [--db PATH] [--rebuild]
                                               [--postgres URL] [--skip-export]

1. **Build (or reuse)** the synthetic log of ``tests/perf/synthetic_log.py`` (the real
   writer; reused while it holds that many entries), then a signed checkpoint of TR's
   log every 10,000 entries with TR's key from a demonstration federation, and ten
   "witnessed" pins among them, as a peer's database would hold them. With
   ``--postgres`` (or ``INTELSHARE_TEST_POSTGRES_URL``), the same rows are copied into a
   schema of that database, kept for the next run.
2. **verify**: ``node.audit.verify`` with the roster, TR's checkpoints and the pins, the
   log opened read-only as ``audit verify`` opens it, in a fresh process each time, so
   its peak resident memory is its own. The baseline beside it is the same process
   importing everything and opening the log without verifying: the difference is what
   verifying costs. Targets: under 3 s and 200 MB resident.
3. **queries**: ``audit list`` by item, by peer, by reason and by event, deep in the log
   (``after`` 900,000): best and median of ``--repeat``. Target: under 50 ms.
4. **export**: the whole log as JSON Lines to ``/dev/null`` (no target; it was 93 s).

Prints every figure and exits 1 if a target was missed. Not a pytest module.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from sqlalchemy import create_engine, func, insert, select, text  # noqa: E402
from synthetic_log import build  # noqa: E402

from node import audit  # noqa: E402
from node.config import load_material, load_node_config  # noqa: E402
from node.federation import init_federation  # noqa: E402
from node.store import (  # noqa: E402
    AuditCheckpoint,
    AuditEntryRow,
    AuditHead,
    AuditSubtree,
    make_engine,
    make_reader,
    make_sessionmaker,
    upgrade,
)
from protocol.checkpoint import sign_checkpoint  # noqa: E402
from protocol.merkle import Frontier  # noqa: E402

VERIFY_SECONDS, VERIFY_MB, QUERY_MS = 3.0, 200.0, 50.0
CHECKPOINT_EVERY = 10_000
COPY_CHUNK = 20_000

# Run in a child process: verify (or only open, for the baseline) and report time and peak RSS.
_CHILD = """
import json, resource, sys, time
sys.path.insert(0, {repo!r})
from node import audit
from node.audit.sources import federation_view
from node.audit.verify import Pin
from node.store import make_reader, make_sessionmaker
from sqlalchemy import text
view = federation_view(__import__("pathlib").Path({federation!r}))
pins = [Pin(size, "witnessed", root=bytes.fromhex(root)) for size, root in {pins!r}]
engine = make_reader({url!r})
started = time.perf_counter()
with make_sessionmaker(engine)() as session:
    if {verify!r}:
        report = audit.verify(session, roster=view.roster, member="TR", pins=pins)
        ok, entries, compared = report.ok, report.entries, report.compared
    else:
        session.execute(text("SELECT seq FROM audit_log LIMIT 1")).all()
        ok, entries, compared = True, 0, 0
elapsed = time.perf_counter() - started
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({{"seconds": elapsed, "rss_mb": usage.ru_maxrss / 1024, "cpu": usage.ru_utime + usage.ru_stime,
                  "ok": ok, "entries": entries, "compared": compared}}))
"""


def federation(work: Path) -> Path:
    root = work / "federation"
    if not (root / "roster.json").exists():
        init_federation(REPO / "examples" / "federation.toml", root, now=datetime.now(UTC))
    return root


def checkpoint(db: Path, root: Path, entries: int) -> list[tuple[int, str]]:
    """TR's signed checkpoints every 10,000 entries (kept if there); ten of their roots as a peer's pins."""
    material = load_material(load_node_config(root / "nodes" / "TR" / "node.toml"))
    engine = make_engine(f"sqlite:///{db}")
    try:
        with make_sessionmaker(engine)() as session, session.begin():
            if session.scalar(select(func.count()).select_from(AuditCheckpoint)) != entries // CHECKPOINT_EVERY:
                session.execute(AuditCheckpoint.__table__.delete())
                frontier, at = Frontier(), datetime.now(UTC)
                query = select(AuditEntryRow.entry_hash).order_by(AuditEntryRow.seq).execution_options(yield_per=10_000)
                for (leaf,) in session.execute(query):
                    frontier.append(bytes.fromhex(leaf))
                    if frontier.size % CHECKPOINT_EVERY == 0:
                        root, size = frontier.root(), frontier.size
                        note = sign_checkpoint(
                            material.signing_key, federation="OTS", member_id="TR", size=size, root=root, now=at
                        )
                        session.add(AuditCheckpoint(size=size, root=root, signed_at=at, note=note))
            rows = session.execute(select(AuditCheckpoint.size, AuditCheckpoint.root).order_by(AuditCheckpoint.size))
            every = [(int(size), bytes(root).hex()) for size, root in rows]
    finally:
        engine.dispose()
    return every[9::10]


def copy_to_postgres(db: Path, base_url: str, entries: int) -> str:
    """The log's tables in schema ``bench_audit_<entries>`` of ``base_url`` (kept between runs)."""
    from sqlalchemy import make_url

    schema = f"bench_audit_{entries}"
    admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    admin.dispose()
    url = make_url(base_url).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(False)
    upgrade(url)
    target = make_engine(url)
    try:
        with target.connect() as conn:
            if conn.scalar(select(func.count()).select_from(AuditEntryRow)) == entries:
                print(f"reusing PostgreSQL schema {schema} ({entries:,} entries)")
                return url
        started = time.perf_counter()
        source = make_reader(f"sqlite:///{db}")
        with source.connect() as src, target.begin() as dst:
            for table in (AuditEntryRow, AuditHead, AuditSubtree, AuditCheckpoint):
                dst.execute(table.__table__.delete())
                rows = src.execution_options(yield_per=COPY_CHUNK).execute(select(table.__table__))
                for chunk in rows.mappings().partitions(COPY_CHUNK):
                    dst.execute(insert(table.__table__), [dict(r) for r in chunk])
            dst.execute(text("ANALYZE audit_log"))
        source.dispose()
        print(f"copied to PostgreSQL schema {schema} in {time.perf_counter() - started:.0f} s")
    finally:
        target.dispose()
    return url


def child(url: str, root: Path, pins: list[tuple[int, str]], verify: bool) -> dict[str, float]:
    code = _CHILD.format(repo=str(REPO), federation=str(root), pins=pins, url=url, verify=verify)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def measure_verify(name: str, url: str, root: Path, pins: list[tuple[int, str]], repeat: int) -> list[str]:
    base = child(url, root, pins, verify=False)
    runs = [child(url, root, pins, verify=True) for _ in range(repeat)]
    seconds = statistics.median(r["seconds"] for r in runs)
    rss = max(r["rss_mb"] for r in runs)
    best = min(r["seconds"] for r in runs)
    first = runs[0]
    cpu = statistics.median(r["cpu"] - base["cpu"] for r in runs)
    print(
        f"  {name:<10} verify: best {best:5.2f} s, median {seconds:5.2f} s (this process's CPU {cpu:5.2f} s); "
        f"peak RSS {rss:5.0f} MB "
        f"(opening alone: {base['rss_mb']:.0f} MB); ok={first['ok']}, {int(first['entries']):,} entries, "
        f"{int(first['compared'])} comparisons"
    )
    missed = []
    if seconds >= VERIFY_SECONDS:
        missed.append(f"{name} verify {seconds:.2f} s >= {VERIFY_SECONDS} s")
    if rss >= VERIFY_MB:
        missed.append(f"{name} verify {rss:.0f} MB >= {VERIFY_MB} MB")
    if not first["ok"]:
        missed.append(f"{name} log did not verify")
    return missed


def measure_queries(name: str, url: str, entries: int, repeat: int) -> list[str]:
    deep = int(entries * 0.9)
    item = f"{deep // 8:032x}"
    cases = [
        ("by item", audit.EntryFilter(item_id=item), 0),
        ("by peer, deep", audit.EntryFilter(peer="AZ"), deep),
        ("by reason, deep", audit.EntryFilter(reason="BAND_ABOVE_CEILING"), deep),
        ("by event, deep", audit.EntryFilter(event=audit.AuditEvent.OFFICER_READ), deep),
    ]
    missed = []
    engine = make_reader(url)
    try:
        with make_sessionmaker(engine)() as session:
            for label, where, after in cases:
                audit.list_entries(session, after_seq=after, limit=100, where=where)  # warm
                times = []
                for _ in range(repeat):
                    started = time.perf_counter()
                    rows = audit.list_entries(session, after_seq=after, limit=100, where=where)
                    times.append((time.perf_counter() - started) * 1000)
                median = statistics.median(times)
                verdict = "ok" if median < QUERY_MS else "SLOW"
                figures = f"best {min(times):6.1f} ms, median {median:6.1f} ms, {len(rows)} rows"
                print(f"  {name:<10} {label:<16} {figures}  {verdict}")
                if median >= QUERY_MS:
                    missed.append(f"{name} query {label} {median:.1f} ms")
    finally:
        engine.dispose()
    return missed


def measure_export(name: str, url: str) -> None:
    engine = make_reader(url)
    try:
        with make_sessionmaker(engine)() as session, open(os.devnull, "w", encoding="utf-8") as out:
            started = time.perf_counter()
            count = audit.export_jsonl(session, out)
            print(f"  {name:<10} export: {count:,} entries as JSON Lines in {time.perf_counter() - started:.1f} s")
    finally:
        engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--db", type=Path, default=Path(tempfile.gettempdir()) / "intelshare-bench-audit" / "tr.db")
    parser.add_argument("--rebuild", action="store_true", help="build the log again even if one is there")
    parser.add_argument("--postgres", default=os.environ.get("INTELSHARE_TEST_POSTGRES_URL"))
    parser.add_argument("--skip-export", action="store_true")
    args = parser.parse_args()
    build(args.db, args.entries, args.rebuild)
    root = federation(args.db.parent)
    pins = checkpoint(args.db, root, args.entries)
    targets = {"SQLite": f"sqlite:///{args.db}"}
    if args.postgres:
        targets["PostgreSQL"] = copy_to_postgres(args.db, args.postgres, args.entries)
    print(
        f"\n{args.entries:,}-entry log; {len(pins)} pins; targets: verify < {VERIFY_SECONDS} s and < {VERIFY_MB} MB, "
        f"queries < {QUERY_MS} ms"
    )
    missed: list[str] = []
    for name, url in targets.items():
        missed += measure_verify(name, url, root, pins, args.repeat)
        missed += measure_queries(name, url, args.entries, args.repeat)
        if not args.skip_export:
            measure_export(name, url)
    print("\nall targets met" if not missed else "\nmissed: " + "; ".join(missed))
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
