"""Retention enforced: each holder destroys the content when retention ends, keeps the metadata (SPEC §11.13)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from peer_simulator import PeerSimulator
from sqlalchemy import Engine, make_url, select
from sqlalchemy.orm import Session, sessionmaker

from node.client import DeskClient, DeskError
from node.config import RetentionSettings
from node.harness import LocalFederation, eventually, make_label
from node.lifecycle import InboxStatus
from node.services.egress import NewItem, submit_many
from node.services.ingress import receive_batch
from node.services.retention import apply_agreement_maximum, purge_due
from node.services.state import AtRestKey, NodeState
from node.store import AuditEntryRow, InboxItem, OriginalItem, OutboxEnvelope, make_sessionmaker
from protocol import Band, ReportTemplate
from protocol.agreement import AgreementBook
from protocol.envelope import DEFAULT_SUITE
from protocol.label import Label
from protocol.statements import PayloadType, sign

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "federation.toml"
integration = pytest.mark.integration


def report(label: Label) -> ReportTemplate:
    return ReportTemplate(title="Short-lived", summary="s", body="b", assessment="a", grading=label.grading)


def rows(fed: LocalFederation, member: str, sql: str, *args: object) -> list[tuple[Any, ...]]:
    database = make_url(fed.nodes[member].config.database_url).database
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:
        return list(conn.execute(sql, args))


def status(desk: DeskClient, item_id: str) -> str | None:
    return next((e.status for e in desk.inbox(1000) if e.item_id == item_id), None)


# --------------------------------------------------------------------------- node processes


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFederation]:
    federation = LocalFederation.create(EXAMPLE, tmp_path_factory.mktemp("fed") / "ots", now=datetime.now(UTC))
    with federation.running(["KZ", "TR", "AZ"]):
        yield federation


@integration
def test_an_item_is_purged_by_every_holder_at_its_retention_date(fed: LocalFederation) -> None:
    # SPEC §11.13: content and what opens it destroyed, metadata kept, an audit entry each.
    kz, tr, az = fed.desk("KZ"), fed.desk("TR"), fed.desk("AZ")
    deadline = datetime.now(UTC) + timedelta(seconds=12)
    label = make_label(fed.roster, "KZ", band=Band.CONFIDENTIAL, releasable_to=["TR"]).model_copy(
        update={"retain_until": deadline}
    )
    sent = kz.submit(label, report(label), ["TR"])
    kz.wait_settled([o.envelope_id for o in sent.outcomes])
    item_id = sent.item_id
    assert tr.ask_consent(item_id, "AZ", "before it expires").state == "decided"
    assert eventually(lambda: tr.consent_requests("granted") != [])
    (onward,) = tr.reshare(item_id, ["AZ"]).outcomes
    assert onward.allowed, onward
    tr.wait_settled([onward.envelope_id])
    assert az.read(item_id).entry.status == "held"

    assert eventually(lambda: status(tr, item_id) == "purged" and status(az, item_id) == "purged", timeout=30)
    for desk, member in ((tr, "TR"), (az, "AZ")):
        with pytest.raises(DeskError, match="was purged"):
            desk.read(item_id)
        (purged,) = desk.audit(event="ITEM_PURGED", item_id=item_id)
        assert (purged["reason"], purged["rule"], purged["detail"]["copy"]) == (
            "RETENTION_EXPIRED",
            "§11.13",
            "received",
        )
        assert datetime.fromisoformat(purged["at"]) >= deadline
        # The row and its metadata stay; the sealed content is gone.
        ((sealed, origin),) = rows(
            fed, member, "SELECT sealed_content, origin_statement FROM inbox_items WHERE item_id = ?", item_id
        )
        assert (len(sealed), len(origin) > 0) == (0, True)
    # The originator's own copy follows its node's configuration (default: the label's date).
    assert eventually(lambda: kz.audit(event="ITEM_PURGED", item_id=item_id) != [])
    with pytest.raises(DeskError, match="was purged"):
        kz.read(item_id)
    assert rows(fed, "KZ", "SELECT length(sealed_content) FROM original_items WHERE item_id = ?", item_id) == [(0,)]
    # No sealed envelope of it is left in any outbox.
    for member in ("KZ", "TR"):
        left = rows(
            fed,
            member,
            "SELECT count(*) FROM outbox_envelopes e JOIN outbox o ON o.envelope_id = e.envelope_id "
            "WHERE o.item_id = ?",
            item_id,
        )
        assert left == [(0,)], member
    # Passing a purged copy on is refused, and so is the item itself wherever retention passed.
    with pytest.raises(DeskError, match="was purged"):
        tr.reshare(item_id, ["AZ"])
    for desk in (kz, tr, az):
        desk.close()


@integration
def test_an_item_past_its_retention_is_refused_at_egress_and_ingress(fed: LocalFederation) -> None:
    # SPEC §9.3.9: RETENTION_EXPIRED, a reason code of its own, on both sides.
    kz, tr = fed.desk("KZ"), fed.desk("TR")
    past = datetime.now(UTC) - timedelta(seconds=1)
    label = make_label(fed.roster, "KZ", band=Band.CONFIDENTIAL, releasable_to=["TR"]).model_copy(
        update={"retain_until": past}
    )
    (outcome,) = kz.submit(label, report(label), ["TR"]).outcomes
    assert (outcome.allowed, outcome.reason, outcome.rule) == (False, "RETENTION_EXPIRED", "§9.3.9")
    sim = PeerSimulator(fed.root)
    try:
        stale = sim.attest(label)
        envelope = sim.envelope(stale, sender="KZ", recipient="TR")
        receipt = sim.receipt(sim.send(envelope, to="TR", tls="KZ"), "TR")
        assert (receipt.accepted, receipt.reason, receipt.rule) == (False, "RETENTION_EXPIRED", "§9.3.9")
        assert stale.attestation.item_id not in {e.item_id for e in tr.inbox(1000)}
    finally:
        sim.close()
        kz.close()
        tr.close()


# --------------------------------------------------------------------------- plain functions, clock passed in


@pytest.fixture(scope="module")
def sim_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("retention") / "ots"
    LocalFederation.create(EXAMPLE, root, now=datetime.now(UTC))
    return root


@pytest.fixture
def sim(sim_root: Path) -> Iterator[PeerSimulator]:
    simulator = PeerSimulator(sim_root)
    yield simulator
    simulator.close()


def node_state(sim: PeerSimulator, member: str, **changes: Any) -> NodeState:
    m = sim.material(member)
    state = NodeState(
        me=member,
        signing_key=m.signing_key,
        hpke_keys=m.hpke_keys,
        at_rest=AtRestKey(m.at_rest_key),
        roster=m.roster,
        agreements=m.agreements,
        window=m.config.window,
        consent=m.config.consent,
    )
    return replace(state, **changes) if changes else state


def receive(factory: sessionmaker[Session], state: NodeState, sim: PeerSimulator, now: datetime, days: int) -> str:
    """KZ's item, kept for ``days`` by its label, received by ``state``'s node at ``now``."""
    item = sim.attest(sim.label("KZ", releasable_to=(state.me,), retain_days=days, now=now), now=now)
    envelope = sim.envelope(item, sender="KZ", recipient=state.me, now=now)
    peer = state.roster.member("KZ")
    assert peer is not None
    with factory.begin() as session:
        (receipt,) = receive_batch(
            session,
            state,
            envelopes=[envelope],
            peer="KZ",
            peer_tls_identity=peer.tls_identity,
            peer_fingerprint=peer.tls_fingerprint,
            now=now,
        )
    assert b'"accepted":true' in receipt.payload, receipt.payload
    return item.attestation.item_id


@pytest.fixture
def factory(engine: Engine) -> sessionmaker[Session]:
    return make_sessionmaker(engine)


def test_a_copy_is_purged_exactly_when_its_retention_ends(factory: sessionmaker[Session], sim: PeerSimulator) -> None:
    # SPEC §11.13: the node's clock decides; the deadline itself counts.
    tr = node_state(sim, "TR")
    now = datetime.now(UTC).replace(microsecond=0)
    item_id = receive(factory, tr, sim, now, days=30)
    with factory.begin() as session:
        assert purge_due(session, tr, now=now + timedelta(days=30) - timedelta(seconds=1)) == []
    with factory.begin() as session:
        (purged,) = purge_due(session, tr, now=now + timedelta(days=30))
        assert (purged.item_id, purged.cause) == (item_id, "label retain_until")
    with factory() as session:
        row = session.scalars(select(InboxItem).where(InboxItem.item_id == item_id)).one()
        assert (row.status, row.sealed_content, row.purged_at) == (InboxStatus.PURGED, b"", now + timedelta(days=30))
        entry = session.scalars(select(AuditEntryRow).where(AuditEntryRow.event == "ITEM_PURGED")).one()
        assert (entry.item_id, entry.envelope_id, entry.reason) == (item_id, row.envelope_id, "RETENTION_EXPIRED")
    with factory.begin() as session:  # nothing is purged twice
        assert purge_due(session, tr, now=now + timedelta(days=60)) == []


def test_a_shorter_agreement_maximum_brings_the_purge_forward(
    factory: sessionmaker[Session], sim: PeerSimulator
) -> None:
    # SPEC §11.13, §6.4: copies held under an agreement whose maximum an amendment shortened.
    tr = node_state(sim, "TR")
    now = datetime.now(UTC).replace(microsecond=0)
    item_id = receive(factory, tr, sim, now, days=300)
    current = tr.agreements.get("KZ", "TR")
    assert current is not None
    shorter = current.model_copy(update={"version": current.version + 1, "max_retention_days": 10})
    book = AgreementBook()
    for agreement in tr.agreements.agreements():
        statement = tr.agreements.signed(*agreement.parties)
        assert statement is not None
        book.accept(statement, tr.roster)
    book.accept(sign(PayloadType.AGREEMENT, shorter, [sim.signing_key("KZ"), sim.signing_key("TR")]), tr.roster)
    amended = replace(tr, agreements=book)
    with factory.begin() as session:
        assert apply_agreement_maximum(session, amended, now=now) == 1
        assert purge_due(session, amended, now=now + timedelta(days=9)) == []
    with factory.begin() as session:
        (purged,) = purge_due(session, amended, now=now + timedelta(days=10))
        assert (purged.item_id, purged.cause) == (item_id, "agreement maximum or consent condition")


@pytest.mark.parametrize(("originals", "purged"), [("label", True), ("keep", False)])
def test_the_originators_copy_follows_the_node_configuration(
    factory: sessionmaker[Session], sim: PeerSimulator, originals: str, purged: bool
) -> None:
    # SPEC §11.13: [retention] originals = "label" purges at retain_until (+ extra days); "keep" never.
    kz = node_state(sim, "KZ", retention=RetentionSettings(originals=originals))  # type: ignore[arg-type]
    now = datetime.now(UTC).replace(microsecond=0)
    label = make_label(kz.roster, "KZ", band=Band.CONFIDENTIAL, releasable_to=["TR"], retain_days=5, now=now)
    with factory.begin() as session:
        (result,) = submit_many(session, kz, requests=[NewItem(label, report(label), ("TR",), DEFAULT_SUITE)], now=now)
    with factory.begin() as session:
        done = purge_due(session, kz, now=now + timedelta(days=5))
        assert [(p.item_id, p.copy) for p in done] == ([(result.item_id, "original")] if purged else [])
    with factory() as session:
        original = session.get(OriginalItem, (result.item_id, 1))
        assert original is not None
        assert (original.purged_at is not None, original.sealed_content == b"") == (purged, purged)
        envelopes = session.scalars(select(OutboxEnvelope.envelope_id)).all()
        assert (len(envelopes) == 0) == purged  # the sealed envelope went with the last copy
