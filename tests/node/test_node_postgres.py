"""A node on PostgreSQL: KZ (SQLite) delivers to TR, whose node.toml points at a fresh schema.

Needs ``INTELSHARE_TEST_POSTGRES_URL`` (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test);
skipped with a message where it is unset.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, make_url, select, text

from node.harness import LocalFederation, make_label
from node.store import Delivery, InboxItem, make_engine, make_sessionmaker
from protocol.classification import Band
from protocol.item import ReportTemplate

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

POSTGRES_ENV = "INTELSHARE_TEST_POSTGRES_URL"
REPO = Path(__file__).resolve().parents[2]
FEDERATION_TOML = REPO / "examples" / "federation.toml"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A URL whose search_path is a fresh, empty schema (dropped afterwards)."""
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip(f"{POSTGRES_ENV} is not set (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)")
    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text("SET lock_timeout = '10s'"))
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def _use_database(config: Path, url: str) -> None:
    lines = config.read_text(encoding="utf-8").splitlines()
    replaced = [f'database_url = "{url}"' if line.startswith("database_url = ") else line for line in lines]
    assert replaced != lines
    config.write_text("\n".join(replaced) + "\n", encoding="utf-8")


def test_delivery_to_a_node_on_postgres(tmp_path: Path, postgres_url: str) -> None:
    fed = LocalFederation.create(FEDERATION_TOML, tmp_path / "ots")
    _use_database(fed.nodes["TR"].config_path, postgres_url)
    assert fed.nodes["TR"].config.database_url.startswith("postgresql")

    with fed.running(["KZ", "TR"]):
        kz, tr = fed.desk("KZ"), fed.desk("TR")
        try:
            label = make_label(fed.roster, "KZ", band=Band.SECRET, releasable_to=["TR"], retain_days=90)
            item = ReportTemplate(title="t", summary="s", body="b", assessment="a", grading=label.grading)
            result = kz.submit(label, item, ["TR"])
            (outcome,) = result.outcomes
            assert outcome.allowed
            settled = kz.wait_settled([outcome.envelope_id])
            assert settled[outcome.envelope_id].state == "delivered"
            (entry,) = [e for e in tr.inbox() if e.item_id == result.item_id]
            assert (entry.originator_marking, entry.reader_marking) == ("СЕКРЕТНО", "GİZLİ")
            assert tr.read(result.item_id).entry.item_id == result.item_id
            ingress = tr.audit(event="INGRESS")
            assert [(e["allowed"], e["reason"]) for e in ingress] == [(True, "ALLOWED")]
        finally:
            kz.close()
            tr.close()

    engine = make_engine(postgres_url)
    try:
        with make_sessionmaker(engine)() as session:
            assert session.scalar(select(func.count()).select_from(InboxItem)) == 1
            assert session.scalar(select(func.count()).select_from(Delivery)) == 1
    finally:
        engine.dispose()
    for member in ("TR", "KZ"):
        done = subprocess.run(
            [sys.executable, "-m", "node.cli", "audit", "verify", "--dir", str(fed.root), "--member", member],
            capture_output=True,
            text=True,
            cwd=REPO,
            env={**os.environ, "COLUMNS": "240", "NO_COLOR": "1"},
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "verifies" in done.stdout
