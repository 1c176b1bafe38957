"""Benchmark: bare gRPC unary echo over mTLS vs full end-to-end delivery, in one run.

    /tmp/venv/bin/python tests/perf/bench_exchange.py [--n-e2e 3000] [--n-bare 5000]
        [--rounds 3] [--concurrency C] [--payload 4096] [--window W] [--submitters T]

Bare: an echo server in a child process (this file with ``--echo-server``) on loopback,
TR's certificate, client with KZ's; a generic unary handler (bytes in, bytes out) with the
serialized size of a real KZ→TR envelope; ``C`` calls in flight from one grpc.aio channel.
Latency = one call. Bare runs alternate with ``R`` end-to-end rounds (bare, e2e, bare, …,
bare); each round's ratio uses the mean of the bare runs either side of it, so drift on a
shared machine does not favour either side, and the verdict is the median round's ratio.

End-to-end: a fresh federation (examples/federation.toml) in a temp directory, KZ and TR
as real node processes; the bench submits items KZ→TR through KZ's desk (each submit:
attest, seal, sign, egress policy, audit, group commit) and KZ's outbox pump delivers them
(mTLS, TR verifies, opens, checks policy, stores item, delivery record and audit in one
group commit, signs the receipt; KZ verifies the receipt and commits it with its audit
entry). At most ``W`` items are outstanding (submitted, receipt not yet committed), so
latency does not grow with N. Latency = submit call start (bench clock) → KZ's outbox
row ``updated_at`` (the receipt commit), read from KZ's SQLite after the run; also shown
is the in-node part (outbox ``created_at`` → ``updated_at``) and TR's commit time.
Throughput = N / (first submit start → last receipt commit).

Checks at the end: TR holds every item, every outbox row is delivered, both audit chains
verify and hold the expected entries. The file is not a pytest module (no ``test_``
prefix); run it directly.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import grpc  # noqa: E402

from node.transport import (  # noqa: E402
    CHANNEL_OPTIONS,
    SERVER_OPTIONS,
    bind_secure,
    channel_credentials,
    server_credentials,
)

#: Checkpoints and witnessing may cost at most this share of end-to-end throughput.
CHECKPOINT_OVERHEAD = 0.05
TARGET_RATIO = 0.40
ECHO_METHOD = "/bench.Echo/Echo"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- helpers


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (from /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def self_cpu() -> float:
    t = os.times()
    return t.user + t.system


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def parse_db_time(text: str) -> float:
    """SQLite DATETIME text written by node.store.UTCDateTime (naive UTC) → epoch seconds."""
    at = datetime.fromisoformat(text)
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.timestamp()


def sqlite_path(url: str) -> Path:
    assert url.startswith("sqlite:///"), f"the benchmark reads SQLite node databases, not {url}"
    return Path(url.removeprefix("sqlite:///"))


def ro_connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30, check_same_thread=False)


# --------------------------------------------------------------------------- echo server (child)


async def _echo_serve(cert: Path, key: Path, ca: Path, listen: str) -> None:
    server = grpc.aio.server(options=SERVER_OPTIONS)

    async def echo(request: bytes, context: Any) -> bytes:
        return request

    handler = grpc.method_handlers_generic_handler("bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(echo)})
    server.add_generic_rpc_handlers((handler,))
    port = bind_secure(server, listen, server_credentials(cert.read_bytes(), key.read_bytes(), ca.read_bytes()))
    await server.start()
    print(f"ready {port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(grace=1.0)


# --------------------------------------------------------------------------- bare


class EchoServer:
    def __init__(self, node_dir: Path, ca: Path) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).resolve()),
                "--echo-server",
                "--cert",
                str(node_dir / "tls.pem"),
                "--key",
                str(node_dir / "tls.key"),
                "--ca",
                str(ca),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("ready "):
            self.process.kill()
            raise RuntimeError(f"echo server did not start: {line!r}")
        self.port = int(line.split()[1])

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


async def _bare_async(target: str, creds: grpc.ChannelCredentials, size: int, n: int, c: int) -> dict[str, Any]:
    channel = grpc.aio.secure_channel(target, creds, options=CHANNEL_OPTIONS)
    call = channel.unary_unary(ECHO_METHOD)
    payload = os.urandom(size)

    async def run(total: int, latencies: list[float]) -> float:
        remaining = total

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                start = time.perf_counter()
                reply = await call(payload, timeout=30)
                latencies.append(time.perf_counter() - start)
                assert len(reply) == size

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(c)))
        return time.perf_counter() - start

    await run(max(500, 2 * c), [])  # warm-up: handshake, HTTP/2 windows, allocator
    latencies: list[float] = []
    elapsed = await run(n, latencies)
    await channel.close()
    return {"elapsed": elapsed, "latencies": latencies}


def run_bare(fed_root: Path, server: EchoServer, size: int, n: int, c: int) -> dict[str, Any]:
    kz = fed_root / "nodes" / "KZ"
    ca = fed_root / "ca.pem"
    creds = channel_credentials((kz / "tls.pem").read_bytes(), (kz / "tls.key").read_bytes(), ca.read_bytes())
    cpu_server0, cpu_self0 = cpu_seconds(server.process.pid), self_cpu()
    result = asyncio.run(_bare_async(f"127.0.0.1:{server.port}", creds, size, n, c))
    result["cpu"] = {
        "echo server": cpu_seconds(server.process.pid) - cpu_server0,
        "bench client": self_cpu() - cpu_self0,
    }
    result["n"] = n
    return result


# --------------------------------------------------------------------------- end to end


def envelope_wire_size(fed_root: Path, label: Any, item: Any) -> int:
    """Serialized size of a real KZ→TR envelope (what Deliver carries) for this item."""
    from node.codec import envelope_to_pb
    from node.config import load_material, load_node_config
    from protocol.envelope import attest, seal

    cfg = load_node_config(fed_root / "nodes" / "KZ" / "node.toml")
    material = load_material(cfg)
    now = datetime.now(UTC)
    origin, plaintext = attest(item_id="0" * 32, label=label, item=item, originator_key=material.signing_key, now=now)
    agreement = material.agreements.get("KZ", "TR")
    member = material.roster.member("TR")
    assert agreement is not None
    assert member is not None
    envelope = seal(
        plaintext=plaintext,
        origin=origin,
        sender="KZ",
        sender_key=material.signing_key,
        recipient=member,
        agreement_id=agreement.agreement_id,
        agreement_version=agreement.version,
        consents=(),
        suite=cfg.suite,
        now=now,
    )
    return int(envelope_to_pb(envelope).ByteSize())


def make_item(fed_root: Path, payload: int) -> tuple[Any, Any]:
    from node.harness import make_label
    from protocol.classification import Band
    from protocol.item import ReportTemplate
    from protocol.roster import Roster
    from protocol.statements import Signed

    roster = Roster.from_bytes(Signed.model_validate_json((fed_root / "roster.json").read_bytes()).payload)
    label = make_label(
        roster, "KZ", band=Band.CONFIDENTIAL, topics=("terrorism", "caspian-security"), releasable_to=("TR",)
    )
    # Printable, incompressible-looking text of the requested size.
    body = os.urandom(payload).hex()[:payload]
    item = ReportTemplate(
        title="Cell movement on the Caspian coast",
        summary="Three members of a known cell crossed at Aktau.",
        body=body,
        assessment="Likely preparing logistics.",
        grading=label.grading,
    )
    return label, item


class Settled:
    """Counts receipts KZ committed, by reading KZ's audit log read-only.

    Each poll reads only the DELIVERY_CONFIRMED entries after the last one seen, from
    the (event, seq) index, so polling costs the same however long the run: a count
    over the whole outbox would take CPU from the nodes under test as the table grows.
    """

    def __init__(self, db: Path) -> None:
        self.conn = ro_connect(db)
        self.last_seq = 0
        self.total = 0

    def count(self) -> int:
        count, last = self.conn.execute(
            "SELECT count(*), max(seq) FROM audit_log WHERE event = 'DELIVERY_CONFIRMED' AND seq > ?",
            (self.last_seq,),
        ).fetchone()
        if count:
            self.total += int(count)
            self.last_seq = int(last)
        return self.total

    def close(self) -> None:
        self.conn.close()


def submit_batch(
    desk: Any, request: Any, n: int, window: int, submitters: int, settled: Settled, poll: float, batch: int
) -> tuple[dict[str, float], float]:
    """Submit n items, ``batch`` per desk call (SubmitBatch), at most ``window`` outstanding.

    Returns envelope id → submit start (epoch).
    """

    base = settled.count()
    permits = threading.Semaphore(window)
    starts: dict[str, float] = {}
    lock = threading.Lock()
    issued = 0
    errors: list[BaseException] = []

    def submitter() -> None:
        nonlocal issued
        while True:
            with lock:
                if issued >= n or errors:
                    return
                count = min(batch, n - issued)
                issued += count
            for _ in range(count):
                permits.acquire()
            started = time.time()
            try:
                results = desk.submit_requests([request] * count)
            except BaseException as exc:
                errors.append(exc)
                for _ in range(count):
                    permits.release()
                return
            for response in results:
                (outcome,) = response.outcomes
                if not outcome.allowed:
                    errors.append(RuntimeError(f"egress refused: {outcome.reason} {outcome.detail}"))
                    return
                with lock:
                    starts[outcome.envelope_id] = started

    first_start = time.time()
    with ThreadPoolExecutor(submitters) as pool:
        futures = [pool.submit(submitter) for _ in range(submitters)]
        released = 0
        deadline = time.monotonic() + 600
        while released < n:
            if errors:
                raise RuntimeError(f"submit failed: {errors[0]!r}") from errors[0]
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {released}/{n} settled")
            done = settled.count() - base
            if done > released:
                for _ in range(done - released):
                    permits.release()
                released = done
            else:
                time.sleep(poll)
        for future in futures:
            future.result()
    if errors:
        raise RuntimeError(f"submit failed: {errors[0]!r}") from errors[0]
    return starts, first_start


def run_e2e(
    fed: Any, n: int, window: int, submitters: int, label: Any, item: Any, poll: float, batch: int
) -> dict[str, Any]:
    from node.wire import desk_pb2

    kz_db = sqlite_path(fed.nodes["KZ"].config.database_url)
    tr_db = sqlite_path(fed.nodes["TR"].config.database_url)
    request = desk_pb2.SubmitRequest(
        label_json=label.model_dump_json(), item_json=item.model_dump_json(), recipients=["TR"]
    )
    desk = fed.desk("KZ")
    settled = Settled(kz_db)
    try:
        warm = max(200, window)
        submit_batch(desk, request, warm, window, submitters, settled, poll, batch)
        pids = {m: fed.nodes[m].process.pid for m in ("KZ", "TR")}
        cpu0 = {m: cpu_seconds(pid) for m, pid in pids.items()}
        self0 = self_cpu()
        wall0 = time.perf_counter()
        starts, first_start = submit_batch(desk, request, n, window, submitters, settled, poll, batch)
        wall = time.perf_counter() - wall0
        cpu = {f"{m} node": cpu_seconds(pid) - cpu0[m] for m, pid in pids.items()}
        cpu["bench (desk client)"] = self_cpu() - self0
    finally:
        settled.close()
        desk.close()

    kz = ro_connect(kz_db)
    tr = ro_connect(tr_db)
    try:
        outbox = {
            r[0]: (r[1], parse_db_time(r[2]), parse_db_time(r[3]))
            for r in kz.execute("SELECT envelope_id, state, created_at, updated_at FROM outbox")
        }
        tr_commit = {r[0]: parse_db_time(r[1]) for r in tr.execute("SELECT envelope_id, received_at FROM deliveries")}
        env_len = kz.execute("SELECT avg(length(envelope)) FROM outbox_envelopes").fetchone()[0]
    finally:
        kz.close()
        tr.close()
    latency, in_node, to_tr, back = [], [], [], []
    for envelope_id, started in starts.items():
        state, created, updated = outbox[envelope_id]
        assert state == "delivered", (envelope_id, state)
        latency.append(updated - started)
        in_node.append(updated - created)
        to_tr.append(tr_commit[envelope_id] - created)
        back.append(updated - tr_commit[envelope_id])
    last = max(outbox[e][2] for e in starts)
    return {
        "n": n,
        "elapsed": last - first_start,
        "wall_loop": wall,
        "latencies": latency,
        "in_node": in_node,
        "to_tr": to_tr,
        "back": back,
        "cpu": cpu,
        "stored_envelope_bytes": env_len,
        "total_sent": len(outbox),
    }


def verify_after(fed: Any, expected: int) -> list[str]:
    """After the nodes stopped: inbox, outbox and both audit chains."""
    from sqlalchemy import func, select
    from sqlalchemy.orm import Session

    from node import audit
    from node.store import AuditEntryRow, InboxItem, OutboxEntry, make_engine

    lines = []
    problems = []
    for member in ("KZ", "TR"):
        engine = make_engine(fed.nodes[member].config.database_url)
        try:
            with Session(engine) as session:
                report = audit.verify(session)
                events = {
                    str(event): int(count)
                    for event, count in session.execute(
                        select(AuditEntryRow.event, func.count()).group_by(AuditEntryRow.event)
                    ).all()
                }
                lines.append(f"{member} audit: ok={report.ok} entries={report.entries} events={events}")
                if not report.ok:
                    problems.append(f"{member} audit chain: {report.problems[:3]}")
                if member == "KZ":
                    states = {
                        str(state): int(count)
                        for state, count in session.execute(
                            select(OutboxEntry.state, func.count()).group_by(OutboxEntry.state)
                        ).all()
                    }
                    lines.append(f"KZ outbox: {states}")
                    if states != {"delivered": expected}:
                        problems.append(f"KZ outbox is {states}, expected {expected} delivered")
                    if events.get("EGRESS") != expected or events.get("DELIVERY_CONFIRMED") != expected:
                        problems.append("KZ audit lacks EGRESS/DELIVERY_CONFIRMED entries")
                else:
                    held = session.scalar(select(func.count()).select_from(InboxItem).where(InboxItem.status == "held"))
                    lines.append(f"TR inbox: {held} held")
                    if held != expected:
                        problems.append(f"TR holds {held} items, expected {expected}")
                    if events.get("INGRESS") != expected:
                        problems.append("TR audit lacks INGRESS entries")
        finally:
            engine.dispose()
    return lines + [f"PROBLEM: {p}" for p in problems]


# --------------------------------------------------------------------------- report


def summarise(name: str, n: int, elapsed: float, latencies: Sequence[float]) -> dict[str, float]:
    return {
        "name": name,  # type: ignore[dict-item]
        "rate": n / elapsed,
        "p50": pct(latencies, 0.50) * 1000,
        "p99": pct(latencies, 0.99) * 1000,
    }


def print_cpu(title: str, cpu: dict[str, float], n: int, wall: float) -> None:
    total = sum(cpu.values())
    parts = ", ".join(f"{k} {v:.2f}s ({v / n * 1e6:.0f} µs/msg)" for k, v in cpu.items())
    print(f"  CPU {title}: {parts}; total {total / n * 1e6:.0f} µs/msg, {total / wall / 2:.0%} of 2 cores")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--n-e2e", type=int, default=3000, help="end-to-end items measured (default 3000)")
    parser.add_argument("--n-bare", type=int, default=5000, help="bare echo calls measured per bare phase")
    parser.add_argument("--n", type=int, help="set both --n-e2e and --n-bare")
    parser.add_argument("--concurrency", type=int, help="calls in flight (default: the node's max_in_flight)")
    parser.add_argument("--payload", type=int, default=4096, help="report body size in bytes (default 4096)")
    parser.add_argument("--window", type=int, help="e2e items outstanding at once (default 2 x concurrency)")
    parser.add_argument("--submitters", type=int, default=4, help="desk client threads (default 4)")
    parser.add_argument("--batch", type=int, default=32, help="items per desk SubmitBatch call (1: plain Submit)")
    parser.add_argument("--rounds", type=int, default=3, help="end-to-end rounds, each between two bare runs")
    parser.add_argument("--poll", type=float, default=0.002, help="outbox poll interval, seconds")
    parser.add_argument("--keep", action="store_true", help="keep the federation directory")
    parser.add_argument(
        "--checkpoints-ab",
        action="store_true",
        help="instead: end-to-end with and without checkpoints and witnessing, alternating (A B B A …)",
    )
    # Child mode: the echo server.
    parser.add_argument("--echo-server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cert", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--key", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--ca", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--listen", default="127.0.0.1:0", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.echo_server:
        asyncio.run(_echo_serve(args.cert, args.key, args.ca, args.listen))
        return 0
    if args.n:
        args.n_e2e = args.n_bare = args.n

    from node.harness import LocalFederation

    # Node processes run `python -m node.cli`; make the repo importable for them.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    tmp = Path(tempfile.mkdtemp(prefix="bench-exchange-"))
    root = tmp / "fed"
    print(f"federation: {root}", flush=True)
    fed = LocalFederation.create(REPO / "examples" / "federation.toml", root)
    c = args.concurrency or fed.nodes["KZ"].config.delivery.max_in_flight
    if c != fed.nodes["KZ"].config.delivery.max_in_flight:
        _set_max_in_flight(fed.nodes["KZ"].config_path, c)
    window = args.window or 2 * c
    label, item = make_item(root, args.payload)
    size = envelope_wire_size(root, label, item)
    print(f"payload: {args.payload} B report body, {size} B serialized envelope; C={c} in flight", flush=True)

    if args.checkpoints_ab:
        return checkpoints_ab(args, tmp, fed, window, label, item)
    echo = EchoServer(root / "nodes" / "TR", root / "ca.pem")
    bares: list[dict[str, Any]] = []
    e2es: list[dict[str, Any]] = []
    try:
        # bare, e2e, bare, e2e, ..., bare: each e2e round is compared with the bare runs
        # on either side of it, so a slow or fast spell of this shared machine moves both.
        bares.append(run_bare(root, echo, size, args.n_bare, c))
        print(f"bare #1: {args.n_bare / bares[-1]['elapsed']:.0f} msg/s", flush=True)
        with fed.running(["KZ", "TR"]):
            for round_no in range(1, args.rounds + 1):
                e2es.append(run_e2e(fed, args.n_e2e, window, args.submitters, label, item, args.poll, args.batch))
                print(f"e2e #{round_no}: {args.n_e2e / e2es[-1]['elapsed']:.0f} msg/s", flush=True)
                bares.append(run_bare(root, echo, size, args.n_bare, c))
                print(f"bare #{round_no + 1}: {args.n_bare / bares[-1]['elapsed']:.0f} msg/s", flush=True)
    finally:
        echo.stop()
        fed.stop()

    checks = verify_after(fed, e2es[-1]["total_sent"])
    bare_rows = [summarise(f"bare #{i + 1}", args.n_bare, b["elapsed"], b["latencies"]) for i, b in enumerate(bares)]
    e2e_rows = [summarise(f"end-to-end #{i + 1}", args.n_e2e, e["elapsed"], e["latencies"]) for i, e in enumerate(e2es)]
    ratios = [
        e["rate"] / ((before["rate"] + after["rate"]) / 2)
        for e, before, after in zip(e2e_rows, bare_rows, bare_rows[1:], strict=False)
    ]
    ratio = statistics.median(ratios)
    median_round = sorted(range(len(ratios)), key=lambda i: ratios[i])[len(ratios) // 2]
    e2e = e2es[median_round]
    bare1 = bares[median_round]

    print()
    print(f"payload {size} B (report body {args.payload} B)   C = {c}   N bare = {args.n_bare}", end="")
    print(f"   N e2e = {args.n_e2e}   rounds = {args.rounds}")
    print(f"e2e window {window} outstanding, {args.submitters} desk submitters, {args.batch} items per SubmitBatch")
    print(f"{'':24}{'msg/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'ratio':>10}")
    for index, row in enumerate(bare_rows):
        print(f"{row['name']:<24}{row['rate']:>10.0f}{row['p50']:>10.2f}{row['p99']:>10.2f}")
        if index < len(e2e_rows):
            r = e2e_rows[index]
            print(f"{r['name']:<24}{r['rate']:>10.0f}{r['p50']:>10.2f}{r['p99']:>10.2f}{ratios[index]:>10.1%}")
    print(f"median round: end-to-end #{median_round + 1}")
    for name, values in (
        ("  in node (KZ commit→receipt)", e2e["in_node"]),
        ("  KZ submit→TR commit", e2e["to_tr"]),
        ("  TR commit→KZ receipt", e2e["back"]),
    ):
        print(f"{name:<34}p50 {pct(values, 0.5) * 1000:7.2f} ms  p99 {pct(values, 0.99) * 1000:7.2f} ms")
    verdict = "PASS" if ratio >= TARGET_RATIO else "BELOW"
    spread = f"rounds {min(ratios):.1%}–{max(ratios):.1%}"
    print(
        f"ratio e2e/bare (median of {len(ratios)}) = {ratio:.1%}   {spread}   target >= {TARGET_RATIO:.0%}: {verdict}"
    )
    print_cpu(f"bare #{median_round + 1}", bare1["cpu"], args.n_bare, bare1["elapsed"])
    print_cpu(f"end-to-end #{median_round + 1}", e2e["cpu"], args.n_e2e, e2e["wall_loop"])
    for line in checks:
        print(line)
    if not args.keep:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    else:
        print(f"kept {root}")
    return 1 if any(line.startswith("PROBLEM") for line in checks) else 0


def checkpoints_ab(args: Any, tmp: Path, with_fed: Any, window: int, label: Any, item: Any) -> int:
    """End-to-end rounds with checkpoints and witnessing (A) and without (B), in A B B A order.

    Two federations, since a log written without checkpoints is refused by a node that
    signs them (SPEC §11.10.8). Each round restarts its pair of nodes; KZ and TR witness
    each other as configured (every 1000 entries or 5 s while the log grows). The
    overhead is 1 - A/B of the medians, and of each adjacent A, B pair.
    """
    from node.harness import LocalFederation
    from node.runtime.node import UNSAFE_NO_CHECKPOINTS_ENV

    without_fed = LocalFederation.create(REPO / "examples" / "federation.toml", tmp / "fed-without")
    c = args.concurrency or with_fed.nodes["KZ"].config.delivery.max_in_flight
    if c != without_fed.nodes["KZ"].config.delivery.max_in_flight:
        _set_max_in_flight(without_fed.nodes["KZ"].config_path, c)
    rates: dict[str, list[float]] = {"A": [], "B": []}
    order = [("A", "B"), ("B", "A")]
    try:
        for round_no in range(args.rounds):
            for side in order[round_no % 2]:
                fed = with_fed if side == "A" else without_fed
                if side == "B":
                    os.environ[UNSAFE_NO_CHECKPOINTS_ENV] = "1"
                try:
                    with fed.running(["KZ", "TR"]):
                        e2e = run_e2e(fed, args.n_e2e, window, args.submitters, label, item, args.poll, args.batch)
                finally:
                    os.environ.pop(UNSAFE_NO_CHECKPOINTS_ENV, None)
                rates[side].append(args.n_e2e / e2e["elapsed"])
                name = "with checkpoints" if side == "A" else "without"
                print(f"round {round_no + 1} {side} ({name}): {rates[side][-1]:.0f} items/s", flush=True)
    finally:
        with_fed.stop()
        without_fed.stop()
    a, b = statistics.median(rates["A"]), statistics.median(rates["B"])
    pairs = [1 - x / y for x, y in zip(rates["A"], rates["B"], strict=True)]
    checkpoints = ro_connect(sqlite_path(with_fed.nodes["TR"].config.database_url))
    try:
        covered = checkpoints.execute("SELECT seq FROM audit_head WHERE checkpoint IS NOT NULL").fetchone()
        shown = checkpoints.execute("SELECT count(*) FROM audit_checkpoints").fetchone()[0]
        cosigned = checkpoints.execute("SELECT count(*) FROM audit_cosignatures").fetchone()[0]
    finally:
        checkpoints.close()
    print(
        f"\nA (checkpoint per commit, witnessing): median {a:.0f} items/s; TR's latest checkpoint covers "
        f"{covered[0] if covered else 0} entries, {shown} in its history, {cosigned} co-signed by KZ"
    )
    print(f"B (neither):                           median {b:.0f} items/s")
    overhead = 1 - a / b
    spread = ", ".join(f"{p:+.1%}" for p in pairs)
    verdict = "PASS" if overhead < CHECKPOINT_OVERHEAD else "ABOVE"
    print(f"overhead 1 - A/B = {overhead:+.1%} (rounds {spread}); target < {CHECKPOINT_OVERHEAD:.0%}: {verdict}")
    if not args.keep:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def _set_max_in_flight(config_path: Path, c: int) -> None:
    """Rewrite ``max_in_flight`` in a node.toml so both sides use the same concurrency."""
    import re

    text = config_path.read_text(encoding="utf-8")
    new, count = re.subn(r"(?m)^max_in_flight\s*=\s*\d+", f"max_in_flight = {c}", text)
    if count != 1:
        raise RuntimeError(f"cannot set max_in_flight in {config_path}")
    config_path.write_text(new, encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
