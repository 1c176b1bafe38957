"""A running node against bad input from a member: real node processes over mutual TLS
(KZ and TR running, one federation per module), the attacker-controlled peer simulator
holding KZ's keys and certificate, and TR's database opened beside the node.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from peer_simulator import Item, PeerSimulator
from sqlalchemy import make_url

from node.client import DeskClient
from node.harness import LocalFederation
from protocol.classification import Band
from protocol.envelope import attest
from protocol.item import ReportTemplate
from protocol.label import Label
from protocol.policy import Reason
from protocol.receipt import Receipt

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
FEDERATION_TOML = REPO / "examples" / "federation.toml"


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFederation]:
    federation = LocalFederation.create(FEDERATION_TOML, tmp_path_factory.mktemp("edges") / "ots")
    with federation.running(["KZ", "TR"]):
        yield federation


@pytest.fixture(scope="module")
def sim(fed: LocalFederation) -> Iterator[PeerSimulator]:
    simulator = PeerSimulator(fed.root, deadline=10.0)
    yield simulator
    simulator.close()


@pytest.fixture
def tr(fed: LocalFederation) -> Iterator[DeskClient]:
    desk = fed.desk("TR")
    yield desk
    desk.close()


def tr_db(fed: LocalFederation) -> Path:
    database = make_url(fed.nodes["TR"].config.database_url).database
    assert database is not None
    return Path(database)


def tr_sql(fed: LocalFederation, sql: str, *args: object) -> list[Any]:
    """Run SQL on TR's database beside the running node (WAL lets a second writer in)."""
    with sqlite3.connect(tr_db(fed), timeout=30) as conn:
        return conn.execute(sql, args).fetchall()


def attested(sim: PeerSimulator, label: Label, item_id: str) -> Item:
    """KZ's attestation of ``item_id`` v1 under ``label``: the originator's own signature."""
    report = ReportTemplate(title="t", summary=secrets.token_hex(4), body="b", assessment="a", grading=label.grading)
    origin, plaintext = attest(
        item_id=item_id, label=label, item=report, originator_key=sim.signing_key("KZ"), now=datetime.now(UTC)
    )
    return Item(origin, plaintext)


def receipt_of(sim: PeerSimulator, signed: Any) -> Receipt:
    return sim.receipt(signed, "TR")


# --------------------------------------------------------------------------- 8. equivocation


def test_item_version_under_two_labels_is_an_equivocation(
    fed: LocalFederation, sim: PeerSimulator, tr: DeskClient
) -> None:
    # SPEC §9.2.9 step 7: held under one attestation, a second one for the same version is refused.
    item_id = secrets.token_hex(16)
    secret = attested(sim, sim.label("KZ", band=Band.SECRET, releasable_to=("TR",)), item_id)
    restricted = attested(sim, sim.label("KZ", band=Band.RESTRICTED, releasable_to=("TR",)), item_id)
    first = receipt_of(sim, sim.send(sim.envelope(secret, sender="KZ", recipient="TR"), to="TR", tls="KZ"))
    assert first.accepted
    head = tr.status().audit_head
    second = receipt_of(sim, sim.send(sim.envelope(restricted, sender="KZ", recipient="TR"), to="TR", tls="KZ"))
    assert (second.accepted, second.reason, second.rule) == (False, Reason.EQUIVOCATION.value, "§9.2.9")
    (entry,) = [e for e in tr.audit(after_seq=head, event="INGRESS") if e["item_id"] == item_id]
    assert (entry["allowed"], entry["reason"]) == (False, "EQUIVOCATION")
    assert secret.origin.digest in entry["detail"]["detail"]
    assert tr_sql(fed, "SELECT origin_digest FROM inbox_items WHERE item_id = ?", item_id) == [(secret.origin.digest,)]


def test_equivocation_within_one_batch(fed: LocalFederation, sim: PeerSimulator) -> None:
    # SPEC §9.2.9 step 7: an envelope accepted earlier in the same batch counts as held.
    item_id = secrets.token_hex(16)
    one = attested(sim, sim.label("KZ", band=Band.CONFIDENTIAL, releasable_to=("TR",)), item_id)
    two = attested(sim, sim.label("KZ", band=Band.CONFIDENTIAL, releasable_to=("TR",), topics=("extremism",)), item_id)
    batch = sim.seal_batch([(one, "TR"), (two, "TR")], sender="KZ")
    ((a, b),) = sim.send_batches([batch], to="TR", tls="KZ")
    assert [(r.accepted, r.reason) for r in (receipt_of(sim, a), receipt_of(sim, b))] == [
        (True, "ALLOWED"),
        (False, "EQUIVOCATION"),
    ]
    assert tr_sql(fed, "SELECT count(*) FROM inbox_items WHERE item_id = ?", item_id) == [(1,)]
