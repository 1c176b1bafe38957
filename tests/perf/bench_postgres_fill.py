"""Benchmark: does end-to-end delivery slow down as a PostgreSQL-backed receiver fills? (SPEC §11.7)

    python tests/perf/bench_postgres_fill.py [--url URL] [--slices 10] [--slice 10000]
        [--batch 100] [--window 512]

KZ and TR run as real node processes, each on its own schema of the PostgreSQL database
at ``--url`` (default ``$INTELSHARE_TEST_POSTGRES_URL``; the federation file names the
schemas with ``{member}``, SPEC §11.7). The bench submits KZ→TR items through KZ's desk
in ``SubmitBatch`` calls of ``--batch`` items, keeping at most ``--window`` envelopes
pending, in ``--slices`` slices of ``--slice`` items, and prints each slice's throughput
(items whose receipt KZ committed, per second) and the last slice's over the first. Flat
means the receiver's hot-path queries do not degrade as its tables grow: the node's
PostgreSQL connections never prepare statements (so no generic plan cached while a table
was empty outlives it) and tables are analysed after the migrations at start.

At the end it prints how PostgreSQL now plans TR's replay check (``sender = ? AND nonce
IN (…)``), checks that TR holds every item once, and drops the schemas.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from sqlalchemy import create_engine, text  # noqa: E402

from node.harness import LocalFederation, make_label  # noqa: E402
from node.wire import desk_pb2  # noqa: E402
from protocol.classification import Band  # noqa: E402
from protocol.item import ReportTemplate  # noqa: E402


def federation_file(directory: Path, url: str, prefix: str) -> Path:
    """examples/federation.toml with each member's schema ``<prefix>_<member>`` of ``url``."""
    separator = "&" if "?" in url else "?"
    template = f"{url}{separator}options=-csearch_path%3D{prefix}_{{member}}"
    text_ = (REPO / "examples" / "federation.toml").read_text(encoding="utf-8")
    path = directory / "federation.toml"
    path.write_text(text_.replace('database_url = "sqlite:///node.db"', f"database_url = '{template}'"))
    return path


def run(url: str, slices: int, per_slice: int, batch: int, window: int) -> int:
    prefix = f"bench_{secrets.token_hex(4)}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with tempfile.TemporaryDirectory() as tmp:
        fed = LocalFederation.create(federation_file(Path(tmp), url, prefix), Path(tmp) / "ots")
        try:
            with fed.running(["TR", "KZ"]):
                rates = drive(fed, slices, per_slice, batch, window)
            with admin.connect() as conn:
                held = conn.execute(text(f'SELECT count(*), count(DISTINCT item_id) FROM "{prefix}_tr".inbox_items'))
                items, distinct = held.one()
                plan = explain_replay(conn, f"{prefix}_tr")
        finally:
            fed.stop()
            with admin.connect() as conn:
                for member in ("kz", "tr"):
                    conn.execute(text(f'DROP SCHEMA IF EXISTS "{prefix}_{member}" CASCADE'))
            admin.dispose()
    print(f"TR holds {items} items ({distinct} distinct), expected {slices * per_slice} (plus warm-up)")
    print("TR's replay check is planned as:")
    for line in plan:
        print(f"    {line}")
    print(f"last slice / first slice: {rates[-1] / rates[0]:.2f}")
    return 0 if items == distinct else 1


def drive(fed: LocalFederation, slices: int, per_slice: int, batch: int, window: int) -> list[float]:
    label = make_label(fed.roster, "KZ", band=Band.CONFIDENTIAL, releasable_to=["TR"])
    report = ReportTemplate(title="t", summary="s", body="b" * 2000, assessment="a", grading=label.grading)
    request = desk_pb2.SubmitRequest(
        label_json=label.model_dump_json(), item_json=report.model_dump_json(), recipients=["TR"]
    )
    rates: list[float] = []
    with fed.desk("KZ") as kz:
        send(kz, request, 500, batch, window)  # warm-up: connections, caches, first checkpoints
        for index in range(slices):
            started = time.monotonic()
            send(kz, request, per_slice, batch, window)
            elapsed = time.monotonic() - started
            rates.append(per_slice / elapsed)
            print(
                f"slice {index + 1:>3}: items {index * per_slice + 1:>7}–{(index + 1) * per_slice:<7} "
                f"{rates[-1]:7.0f} items/s",
                flush=True,
            )
    return rates


def send(kz: object, request: desk_pb2.SubmitRequest, count: int, batch: int, window: int) -> None:
    """Submit ``count`` items, at most ``window`` pending; return once every receipt is committed."""
    from node.client import DeskClient

    assert isinstance(kz, DeskClient)
    left = count
    while left:
        if kz.status().outbox_pending + batch > window:
            time.sleep(0.01)
            continue
        take = min(batch, left)
        kz.submit_requests([request] * take)
        left -= take
    while kz.status().outbox_pending:
        time.sleep(0.01)


def explain_replay(conn: object, schema: str) -> list[str]:
    from sqlalchemy.engine import Connection

    assert isinstance(conn, Connection)
    conn.execute(text(f'SET search_path TO "{schema}"'))
    nonces = ", ".join(f"'{secrets.token_hex(16)}'" for _ in range(64))
    rows = conn.execute(text(f"EXPLAIN SELECT * FROM deliveries WHERE sender = 'KZ' AND nonce IN ({nonces})"))
    return [row[0][:110] for row in rows]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("INTELSHARE_TEST_POSTGRES_URL"))
    parser.add_argument("--slices", type=int, default=10)
    parser.add_argument("--slice", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--window", type=int, default=512)
    args = parser.parse_args()
    if not args.url:
        parser.error("give --url or set INTELSHARE_TEST_POSTGRES_URL")
    return run(args.url, args.slices, args.slice, args.batch, args.window)


if __name__ == "__main__":
    sys.exit(main())
