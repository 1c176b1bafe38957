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

    python tests/perf/bench_postgres_fill.py --replay [--sizes 0,10000,30000,100000]

instead times that replay check alone, on a fresh schema filled to each size in turn
(rows of one sender): on a connection as the node makes it (``node.store.make_engine``:
never prepared), with the tables analysed as the node does (at start, then each time they
have doubled), and on a plain psycopg connection, which prepares the query on its fifth
run while the table is empty. Autovacuum is off for the table, as when it has not come
round yet: the point is that the node's plans do not wait for it.
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


def replay(url: str, sizes: list[int], runs: int = 30) -> int:
    """The replay check's time per run as the table fills: as the node runs it, and as it ran before."""
    from alembic import command
    from alembic.config import Config

    from node.services.ingress import _DELIVERIES_BY_NONCE
    from node.store import MIGRATIONS_DIR, analyse, make_engine, upgrade

    def schema_url(schema: str) -> str:
        return f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"

    schemas = {"node": f"bench_{secrets.token_hex(4)}", "before": f"bench_{secrets.token_hex(4)}"}
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schemas["before"]}"'))
    upgrade(schema_url(schemas["node"]))  # the node's: migrated, then analysed
    before = Config(str(MIGRATIONS_DIR / "alembic.ini"))  # as before: migrated only
    before.set_main_option("script_location", str(MIGRATIONS_DIR))
    before.attributes["url"] = schema_url(schemas["before"])
    command.upgrade(before, "head")
    engines = {
        "node": make_engine(schema_url(schemas["node"])),  # never prepares
        "before": create_engine(schema_url(schemas["before"])),  # psycopg prepares on the fifth run
    }
    try:
        with admin.connect() as conn:
            for schema in schemas.values():  # autovacuum has not come round yet
                conn.execute(text(f'ALTER TABLE "{schema}".deliveries SET (autovacuum_enabled = false)'))
        connections = {name: engine.connect() for name, engine in engines.items()}

        def check(name: str) -> float:
            nonces = [secrets.token_hex(16) for _ in range(64)]
            started = time.perf_counter()
            connections[name].execute(_DELIVERIES_BY_NONCE, {"sender": "KZ", "nonces": nonces}).all()
            connections[name].rollback()
            return time.perf_counter() - started

        for name in connections:
            for _ in range(10):  # while the table is empty
                check(name)
        filled = analysed = 0
        print(f"{'rows':>8}  {'node: never prepared, analysed':>32}  {'before: prepared, not analysed':>32}")
        for size in sizes:
            if size > filled:
                with admin.connect() as conn:
                    for schema in schemas.values():
                        conn.execute(
                            text(
                                f'INSERT INTO "{schema}".deliveries SELECT md5(i::text), md5(i::text) || md5(i::text), '
                                "'KZ', md5('n' || i::text), true, 'ALLOWED', '\\x00', now() "
                                f"FROM generate_series({filled + 1}, {size}) AS i"
                            )
                        )
                filled = size
            if filled >= max(1000, 2 * analysed):  # as the node's group commit does (SPEC §11.7)
                analyse(engines["node"])
                analysed = filled
            times = {name: sorted(check(name) for _ in range(runs))[runs // 2] for name in connections}
            print(f"{size:>8}  {1000 * times['node']:>29.2f} ms  {1000 * times['before']:>29.2f} ms", flush=True)
        for connection in connections.values():
            connection.close()
    finally:
        for engine in engines.values():
            engine.dispose()
        with admin.connect() as conn:
            for schema in schemas.values():
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("INTELSHARE_TEST_POSTGRES_URL"))
    parser.add_argument("--slices", type=int, default=10)
    parser.add_argument("--slice", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--window", type=int, default=512)
    parser.add_argument("--replay", action="store_true", help="time the replay check alone as its table fills")
    parser.add_argument("--sizes", default="0,10000,30000,100000", help="table sizes for --replay")
    args = parser.parse_args()
    if not args.url:
        parser.error("give --url or set INTELSHARE_TEST_POSTGRES_URL")
    if args.replay:
        return replay(args.url, [int(n) for n in args.sizes.split(",")])
    return run(args.url, args.slices, args.slice, args.batch, args.window)


if __name__ == "__main__":
    sys.exit(main())
