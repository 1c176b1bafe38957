"""Delivery across a network that drops packets silently (SPEC §11.6): real KZ and TR
processes, KZ reaching TR through a TCP proxy the test controls (``blackhole``).

The roster names TR's endpoint; TR listens on another port, and the proxy sits on the
roster's, so every connection KZ makes to TR goes through it.
"""

from __future__ import annotations

import socket
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from blackhole import BlackHoleProxy
from sqlalchemy import make_url

from node.client import DeskClient
from node.harness import LocalFederation, eventually, make_label
from protocol.classification import Band
from protocol.item import ReportTemplate

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
FEDERATION_TOML = REPO / "examples" / "federation.toml"
#: KZ's deadline for receipts, and its longest retry backoff (node.toml [delivery]).
DEADLINE_SECONDS = 2.0
RETRY_MAX_SECONDS = 0.5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def fed(tmp_path: Path) -> Iterator[tuple[LocalFederation, int, int]]:
    """KZ and TR, TR listening off the roster's port: (federation, roster port, TR's real port)."""
    federation = LocalFederation.create(FEDERATION_TOML, tmp_path / "ots")
    tr = federation.nodes["TR"]
    roster_port, real_port = tr.config.listen_port, _free_port()
    tr.config_path.write_text(
        tr.config_path.read_text(encoding="utf-8").replace(f"127.0.0.1:{roster_port}", f"127.0.0.1:{real_port}")
    )
    kz = federation.nodes["KZ"].config_path
    text = kz.read_text(encoding="utf-8")
    text = text.replace("retry_max_seconds = 10.0", f"retry_max_seconds = {RETRY_MAX_SECONDS}")
    kz.write_text(text.replace("deadline_seconds = 10.0", f"deadline_seconds = {DEADLINE_SECONDS}"))
    assert federation.nodes["KZ"].config.delivery.deadline_seconds == DEADLINE_SECONDS
    try:
        yield federation, roster_port, real_port
    finally:
        federation.stop()


def _submit(kz: DeskClient, fed: LocalFederation) -> str:
    label = make_label(fed.roster, "KZ", band=Band.CONFIDENTIAL, releasable_to=["TR"])
    report = ReportTemplate(title="t", summary="s", body="b", assessment="a", grading=label.grading)
    (outcome,) = kz.submit(label, report, ["TR"]).outcomes
    assert outcome.allowed
    return outcome.envelope_id


def test_delivery_recovers_soon_after_a_black_hole_heals(fed: tuple[LocalFederation, int, int]) -> None:
    # SPEC §11.6 step 6: a call without receipts in time fails, and the next one dials a new connection.
    federation, roster_port, real_port = fed
    with BlackHoleProxy(roster_port, real_port) as proxy, federation.running(["TR", "KZ"]):
        kz = federation.desk("KZ")
        try:
            first = _submit(kz, federation)
            assert kz.wait_settled([first])[first].state == "delivered"
            proxy.cut()
            during = [_submit(kz, federation) for _ in range(3)]
            # Written into the dead connection and failed by the deadline at least once.
            assert eventually(lambda: all(e.attempts for e in kz.outbox() if e.envelope_id in during), timeout=30)
            proxy.heal()
            healed = time.monotonic()
            settled = kz.wait_settled(during, timeout=60)
            recovered = time.monotonic() - healed
        finally:
            kz.close()
    assert {e.state for e in settled.values()} == {"delivered"}
    # A few seconds: the deadline of the call on the dead connection, a backoff, a new connection
    # (before, the link kept using the dead one until keepalive closed it: 40 s and more).
    assert recovered < DEADLINE_SECONDS + RETRY_MAX_SECONDS + 10, recovered
    database = make_url(federation.nodes["TR"].config.database_url).database
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:  # exactly once, retries and all
        (items,) = conn.execute("SELECT count(*) FROM inbox_items").fetchone()
        (distinct,) = conn.execute("SELECT count(DISTINCT envelope_id) FROM inbox_items").fetchone()
        (deliveries,) = conn.execute("SELECT count(*) FROM deliveries").fetchone()
    assert (items, distinct, deliveries) == (4, 4, 4)
