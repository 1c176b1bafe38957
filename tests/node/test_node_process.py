"""The node process and its database: one process per node directory, one database per
member (SPEC §11.7). Real node processes, each test with its own federation directory.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import make_url

from node.harness import LocalFederation

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
FEDERATION_TOML = REPO / "examples" / "federation.toml"


@pytest.fixture
def fed(tmp_path: Path) -> Iterator[LocalFederation]:
    federation = LocalFederation.create(FEDERATION_TOML, tmp_path / "ots")
    try:
        yield federation
    finally:
        federation.stop()


def node_run(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "node.cli", "node", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def sqlite_path(fed: LocalFederation, member: str) -> Path:
    database = make_url(fed.nodes[member].config.database_url).database
    assert database is not None
    return Path(database)


def started_entries(path: Path) -> list[str]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return [actor for (actor,) in conn.execute("SELECT actor FROM audit_log WHERE event = 'NODE_STARTED'")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- 16. one process per directory


@pytest.mark.parametrize("port", ["same", "other"])
def test_second_process_on_a_running_node_is_refused_before_writing(fed: LocalFederation, port: str) -> None:
    # SPEC §11.7: one node directory, one running process; checked before anything is written.
    tr = fed.nodes["TR"]
    tr.start()
    config = tr.config_path
    if port == "other":
        config = config.with_name("node-copy.toml")
        listen = f"127.0.0.1:{tr.config.listen_port}"
        config.write_text(tr.config_path.read_text(encoding="utf-8").replace(listen, f"127.0.0.1:{free_port()}"))
    second = node_run(config)
    assert second.returncode == 1, second.stderr
    assert second.stderr.splitlines() == [second.stderr.strip()]
    assert "already running" in second.stderr
    assert "Traceback" not in second.stderr
    assert started_entries(sqlite_path(fed, "TR")) == ["TR"]  # the live node's log is untouched
    with fed.desk("TR") as desk:  # its desk socket is still there and still answers
        assert desk.status().member_id == "TR"


# --------------------------------------------------------------------------- 15. one database per member


def test_node_refuses_a_database_holding_another_members_log(fed: LocalFederation) -> None:
    # SPEC §11.7: a node refuses to start on a database that holds another member's log.
    fed.nodes["TR"].start()
    fed.nodes["TR"].stop()
    kz = fed.nodes["KZ"].config_path
    text = kz.read_text(encoding="utf-8")
    kz.write_text(
        text.replace('database_url = "sqlite:///node.db"', f'database_url = "sqlite:///{sqlite_path(fed, "TR")}"')
    )
    assert fed.nodes["KZ"].config.database_url.endswith("nodes/TR/node.db")
    refused = node_run(kz)
    # TR signed a checkpoint of it: not the log KZ left (LogTamperedError, exit 9), before any append.
    assert refused.returncode == 9, refused.stderr
    assert refused.stderr.splitlines() == [refused.stderr.strip()]
    assert "checkpoint of 'intelshare/OTS/audit/TR', not of KZ's log" in refused.stderr
    assert started_entries(sqlite_path(fed, "TR")) == ["TR"]


def test_postgres_members_get_their_own_schemas(tmp_path: Path) -> None:
    # SPEC §11.7: a federation file names each member's database with {member}; never one for all.
    base = os.environ.get("INTELSHARE_TEST_POSTGRES_URL")
    if not base:
        pytest.skip("INTELSHARE_TEST_POSTGRES_URL is not set; PostgreSQL variant skipped")
    pytest.importorskip("psycopg")
    from sqlalchemy import create_engine, text

    prefix = f"t{os.getpid()}_{tmp_path.name[-8:].lower().replace('-', '_')}"
    separator = "&" if "?" in base else "?"
    template = f"{base}{separator}options=-csearch_path%3D{prefix}_{{member}}"
    federation_toml = tmp_path / "federation.toml"
    federation_toml.write_text(
        FEDERATION_TOML.read_text(encoding="utf-8").replace(
            'database_url = "sqlite:///node.db"',
            f"database_url = '{template}'",
        ),
        encoding="utf-8",
    )
    fed = LocalFederation.create(federation_toml, tmp_path / "ots")
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        urls = {m: fed.nodes[m].config.database_url for m in ("KZ", "TR")}
        assert urls["KZ"] != urls["TR"]
        with fed.running(["KZ", "TR"]):
            pass
        with admin.connect() as conn:
            for member in ("kz", "tr"):
                actors = conn.execute(text(f'SELECT DISTINCT actor FROM "{prefix}_{member}".audit_log')).scalars()
                assert list(actors) == [member.upper()]
    finally:
        fed.stop()
        with admin.connect() as conn:
            for member in ("kz", "tr", "az", "kg", "uz"):
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{prefix}_{member}" CASCADE'))
        admin.dispose()
