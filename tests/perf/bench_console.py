"""Benchmark: pages of a 1,000,000-entry audit log served by the console (SPEC §11.4; target < 200 ms each).

    .venv/bin/python tests/perf/bench_console.py [--entries 1000000] [--repeat 7] [--db PATH] [--rebuild]

1. **Build (or reuse)** a SQLite log of ``--entries`` entries through the real writer,
   ``node.audit.append_many``, in batches of 10,000, ten batches per transaction: a mix
   of events as a busy node writes them (transfers out and in with their confirmations,
   checkpoints witnessed, officers' reads, a rare refusal), four peers, an item per eight
   entries. The file is kept (``--db``, by default in the temporary folder) and reused
   while it holds that many entries.
2. **Serve** pages through the real ASGI application (``node.console.create_app``:
   middleware, routing, the page's queries, templates) with Starlette's test client, in
   this process, the log's whole-log verification left to be asked for (as the console
   does above ``AUTO_VERIFY_ENTRIES``): the first page, a page deep in the log (after
   entry 900,000), the last page, a previous page from the middle, and the same filtered
   by peer and event, by a rare reason code and by an item. Each figure is the best and
   the median of ``--repeat`` requests after one warm-up (the machine is shared).

Exits 1 if a median is over the target. Not a pytest module (no ``test_`` prefix).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from starlette.testclient import TestClient  # noqa: E402
from synthetic_log import build  # noqa: E402

from node.audit.sources import AuditView, LogSource, federation_view  # noqa: E402
from node.console import create_app  # noqa: E402
from node.federation import init_federation  # noqa: E402

TARGET_MS = 200.0


def view_of(db: Path, work: Path) -> AuditView:
    """The demonstration federation's roster with TR's log being ``db``."""
    root = work / "federation"
    if not (root / "roster.json").exists():
        init_federation(REPO / "examples" / "federation.toml", root, now=datetime.now(UTC))
    roster = federation_view(root).roster
    return AuditView(roster, {"TR": LogSource("TR", f"sqlite:///{db}", "node")})


def measure(http: TestClient, path: str, repeat: int) -> tuple[float, float, int]:
    """(best, median) milliseconds of ``repeat`` requests after a warm-up, and the number of rows shown."""
    warm = http.get(path)
    if warm.status_code != 200:
        raise SystemExit(f"{path}: HTTP {warm.status_code}")
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = http.get(path)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200
    return min(times), statistics.median(times), response.text.count('<tr id="e')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--db", type=Path, default=Path(tempfile.gettempdir()) / "intelshare-bench-console" / "tr.db")
    parser.add_argument("--rebuild", action="store_true", help="build the log again even if one is there")
    args = parser.parse_args()
    build(args.db, args.entries, args.rebuild)
    deep = int(args.entries * 0.9)
    middle = args.entries // 2
    item = f"{deep // 8:032x}"
    pages = [
        ("first page", "/nodes/TR/log"),
        (f"after {deep:,}", f"/nodes/TR/log?after={deep}"),
        ("last page", f"/nodes/TR/log?before={args.entries + 1}"),
        (f"previous from {middle:,}", f"/nodes/TR/log?before={middle}"),
        ("peer AZ, INGRESS: first", "/nodes/TR/log?peer=AZ&event=INGRESS"),
        (f"peer AZ, INGRESS: after {deep:,}", f"/nodes/TR/log?peer=AZ&event=INGRESS&after={deep}"),
        (f"reason BAND_ABOVE_CEILING: after {deep:,}", f"/nodes/TR/log?reason=BAND_ABOVE_CEILING&after={deep}"),
        ("one item's entries", f"/nodes/TR/log?item={item}"),
    ]
    with tempfile.TemporaryDirectory() as work:
        app = create_app(view_of(args.db, Path(work)))
        with TestClient(app, base_url="http://127.0.0.1") as http:
            print(
                f"\npages of a {args.entries:,}-entry log (target {TARGET_MS:.0f} ms; best / median of {args.repeat})"
            )
            slow = []
            for name, path in pages:
                best, median, shown = measure(http, path, args.repeat)
                verdict = "ok" if median < TARGET_MS else "SLOW"
                print(f"  {name:<40} {best:7.1f} ms {median:7.1f} ms  {shown:3d} rows  {verdict}")
                if median >= TARGET_MS:
                    slow.append(name)
    print("\nall pages under the target" if not slow else f"\nover the target: {', '.join(slow)}")
    return 1 if slow else 0


if __name__ == "__main__":
    raise SystemExit(main())
