"""Bad input at the command line: one clear line on stderr, a documented exit code, no
traceback, nothing written (README, "Exit codes").

One federation directory for the module: TR ran once (so it has a log) and is stopped;
KZ runs for the test that needs a node and a peer that is down. Each case may set the
directory up its own way (a broken file, a port taken) and undoes it after.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from node.cli.base import ExitCode
from node.harness import LocalFederation

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
FEDERATION_TOML = REPO / "examples" / "federation.toml"


@dataclass
class Case:
    """A command line; what it exits with and says; how to set it up, and whether it may write."""

    args: Callable[[Path], list[str]]
    code: ExitCode
    says: str
    setup: Callable[[LocalFederation], Callable[[], None] | None] = lambda fed: None
    #: Whether the command may write: a send to a peer that is down is queued, by design.
    writes: bool = False


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFederation]:
    federation = LocalFederation.create(FEDERATION_TOML, tmp_path_factory.mktemp("cli") / "ots")
    with federation.running(["TR"]):
        pass  # TR has a log now, and is down
    with federation.running(["KZ"]):
        yield federation


def _swap_text(path: Path, old: str, new: str) -> Callable[[], None]:
    original = path.read_text(encoding="utf-8")
    assert old in original, old
    path.write_text(original.replace(old, new), encoding="utf-8")
    return lambda: path.write_text(original, encoding="utf-8")


def _database_url(fed: LocalFederation, url: str) -> Callable[[], None]:
    return _swap_text(fed.nodes["TR"].config_path, 'database_url = "sqlite:///node.db"', f'database_url = "{url}"')


def _not_a_database(fed: LocalFederation) -> Callable[[], None]:
    database = fed.nodes["TR"].config_path.parent / "node.db"
    kept = database.with_name("node.db.kept")
    shutil.move(database, kept)
    for suffix in ("-wal", "-shm"):
        database.with_name("node.db" + suffix).unlink(missing_ok=True)
    database.write_bytes(b"this is not a database\n" * 100)
    return lambda: shutil.move(kept, database)


def _port_taken(fed: LocalFederation) -> Callable[[], None]:
    holder = socket.socket()
    holder.bind(("127.0.0.1", fed.nodes["TR"].config.listen_port))
    holder.listen()
    return holder.close


def _never_started(fed: LocalFederation) -> Callable[[], None]:
    assert not (fed.nodes["AZ"].config_path.parent / "node.db").exists()
    return lambda: None


def _expired_federation_file(fed: LocalFederation) -> Callable[[], None]:
    text = FEDERATION_TOML.read_text(encoding="utf-8").replace(
        "valid_until = 2031-06-15T00:00:00Z", "valid_until = 2023-06-15T00:00:00Z"
    )
    (fed.root.parent / "expired.toml").write_text(text, encoding="utf-8")
    return lambda: None


UNREACHABLE = "postgresql+psycopg://nobody@127.0.0.1:1/intelshare"
SEND = ["send", "--member", "KZ", "--to", "TR", "--band", "SECRET"]
CASES = {
    "send to a peer that is down": Case(
        lambda root: [*SEND, "--title", "t", "--dir", str(root)],
        ExitCode.UNAVAILABLE,
        "queued, the node retries",
        writes=True,
    ),
    "audit list --event BOGUS": Case(
        lambda root: ["audit", "list", "--dir", str(root), "--member", "TR", "--event", "BOGUS"],
        ExitCode.INVALID,
        "unknown event 'BOGUS'",
    ),
    "audit export into a missing folder": Case(
        lambda root: ["audit", "export", "--dir", str(root), "--member", "TR", "--out", str(root / "no" / "x.jsonl")],
        ExitCode.INVALID,
        "no folder",
    ),
    "audit verify on a node that never started": Case(
        lambda root: ["audit", "verify", "--dir", str(root), "--member", "AZ"],
        ExitCode.NOT_FOUND,
        "never started",
        _never_started,
    ),
    "node run on a database that cannot be reached": Case(
        lambda root: ["node", "run", "--dir", str(root), "--member", "TR"],
        ExitCode.FAILED,
        "cannot open the database",
        lambda fed: _database_url(fed, UNREACHABLE),
    ),
    "audit list on a database that cannot be reached": Case(
        lambda root: ["audit", "list", "--dir", str(root), "--member", "TR"],
        ExitCode.FAILED,
        "cannot open the database",
        lambda fed: _database_url(fed, UNREACHABLE),
    ),
    "node run on a node.db that is not a database": Case(
        lambda root: ["node", "run", "--dir", str(root), "--member", "TR"],
        ExitCode.DATA_LOSS,
        "is not a SQLite database",
        _not_a_database,
    ),
    "audit list on a node.db that is not a database": Case(
        lambda root: ["audit", "list", "--dir", str(root), "--member", "TR"],
        ExitCode.DATA_LOSS,
        "is not a SQLite database",
        _not_a_database,
    ),
    "node run on a port in use": Case(
        lambda root: ["node", "run", "--dir", str(root), "--member", "TR"],
        ExitCode.FAILED,
        "the port is in use",
        _port_taken,
    ),
    "send --retain-days -5": Case(
        lambda root: [*SEND, "--title", "t", "--retain-days", "-5", "--dir", str(root)],
        ExitCode.USAGE,
        "--retain-days",
    ),
    "audit list --limit -1": Case(
        lambda root: ["audit", "list", "--dir", str(root), "--member", "TR", "--limit", "-1"],
        ExitCode.USAGE,
        "--limit",
    ),
    'send --title ""': Case(
        lambda root: [*SEND, "--title", "", "--dir", str(root)],
        ExitCode.INVALID,
        "title: String should have at least 1 character",
    ),
    "send with a malformed roster.json": Case(
        lambda root: [*SEND, "--title", "t", "--dir", str(root)],
        ExitCode.FAILED,
        "cannot read the roster",
        lambda fed: _swap_text(fed.root / "roster.json", '"payload_type":', '"payload_type": 7, "x":'),
    ),
    "federation init with an agreement already expired": Case(
        lambda root: ["federation", "init", str(root.parent / "expired.toml"), "--dir", str(root.parent / "new")],
        ExitCode.FAILED,
        "agreements.AZ-TR: valid_until 2023-06-15T00:00:00+00:00 has already passed",
        _expired_federation_file,
    ),
}


def _snapshot(fed: LocalFederation) -> dict[str, object]:
    """Every file under the federation's parent folder (size, modification time), and KZ's log head and outbox.

    KZ runs, so its own files change by themselves; what a command could write there goes
    through its desk. SQLite's -wal and -shm files are not data: a read-only reader makes them.
    """
    out: dict[str, object] = {}
    for path in sorted(fed.root.parent.rglob("*")):
        name = path.relative_to(fed.root.parent).as_posix()
        if path.is_file() and not name.startswith("ots/nodes/KZ/") and not name.endswith(("-wal", "-shm")):
            stat = path.stat()
            out[name] = (stat.st_size, stat.st_mtime_ns)
    with fed.desk("KZ") as kz:
        out["KZ audit head"] = kz.status().audit_head
        out["KZ outbox"] = len(kz.outbox())
    return out


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_gives_one_line_and_a_documented_exit(fed: LocalFederation, name: str) -> None:
    case = CASES[name]
    undo = case.setup(fed)
    try:
        before = _snapshot(fed)
        done = subprocess.run(
            [sys.executable, "-m", "node.cli", *case.args(fed.root)],
            capture_output=True,
            text=True,
            env={**os.environ, "COLUMNS": "200"},
            timeout=60,
            check=False,
        )
        after = _snapshot(fed)
    finally:
        if undo is not None:
            undo()
    assert done.returncode == case.code, done.stdout + done.stderr
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert done.stderr.startswith("error: ")
    assert case.says in done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert case.writes or after == before  # nothing written
