"""Batched delivery (SPEC §4.6, §11.3, §11.6).

Over the wire: ``DeliverBatches`` calls from the attacker-controlled peer simulator to a
real TR node over mutual TLS (one federation per module, KZ and TR running; the
simulator holds KZ's keys and certificate). Plain functions: ``services.ingress.commit_ingress_batch``
and ``services.delivery.record_receipts`` on a fresh database from ``conftest`` (a SQLite file, and a
PostgreSQL schema when ``INTELSHARE_TEST_POSTGRES_URL`` is set), with a ``NodeState``
built from the same federation's key material, as ``node.runtime.Node`` builds it.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from peer_simulator import FakeReceiver, Item, PeerSimulator
from sqlalchemy import func, make_url, select
from sqlalchemy.orm import Session, sessionmaker

from node import audit
from node.audit import AuditEvent
from node.client import DeskClient
from node.codec import MAX_ENVELOPE_BATCH, envelope_from_bytes, envelope_from_pb, signed_to_pb
from node.harness import LocalFederation, eventually, make_label, written_since
from node.lifecycle import OutboxState
from node.services import delivery, egress, holdings, ingress
from node.services.delivery import (
    NoSuchEntry,
    ReceiptMismatch,
    ReceiptOutcome,
    RefusedReceipt,
    SettledEntry,
    VerifiedReceipt,
)
from node.services.state import AtRestKey, NodeState
from node.store import AuditEntryRow, Delivery, InboxItem, OutboxEntry
from node.wire import exchange_pb2
from protocol.classification import Band
from protocol.encoding import sha256_hex
from protocol.envelope import Envelope, EnvelopeHeader, OriginAttestation, Suite
from protocol.errors import RemoteProtocolError
from protocol.item import ReportTemplate
from protocol.label import Label
from protocol.policy import IngressResult, Reason, check_ingress
from protocol.receipt import Receipt
from protocol.statements import PayloadType, Signed, sign_many, verify

REPO = Path(__file__).resolve().parents[2]
FEDERATION_TOML = REPO / "examples" / "federation.toml"

integration = pytest.mark.integration


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> LocalFederation:
    return LocalFederation.create(FEDERATION_TOML, tmp_path_factory.mktemp("batches") / "ots")


@pytest.fixture(scope="module")
def sim(federation: LocalFederation) -> Iterator[PeerSimulator]:
    simulator = PeerSimulator(federation.root, deadline=10.0)
    yield simulator
    simulator.close()


@pytest.fixture(scope="module")
def fed(federation: LocalFederation) -> Iterator[LocalFederation]:
    with federation.running(["KZ", "TR"]):
        yield federation


@pytest.fixture(scope="module")
def tr(fed: LocalFederation) -> Iterator[DeskClient]:
    desk = fed.desk("TR")
    yield desk
    desk.close()


# --------------------------------------------------------------------------- helpers


def header(envelope: Envelope) -> EnvelopeHeader:
    return EnvelopeHeader.from_bytes(envelope.header.payload)


def report(label: Label) -> ReportTemplate:
    return ReportTemplate(title="Batch", summary="summary", body="body", assessment="a", grading=label.grading)


def kz_items(sim: PeerSimulator, n: int, releasable_to: tuple[str, ...] = ("TR",)) -> list[Item]:
    return [sim.item("KZ", releasable_to=releasable_to) for _ in range(n)]


def to_tr(sim: PeerSimulator, n: int) -> list[Envelope]:
    """``n`` fresh envelopes from KZ to TR, sealed together (batch-signed headers)."""
    return sim.seal_batch([(item, "TR") for item in kz_items(sim, n)], sender="KZ")


def verdicts(sim: PeerSimulator, receipts: Sequence[Signed]) -> list[tuple[bool, str]]:
    """(accepted, reason) of each receipt, each verified alone against TR's roster key."""
    return [(r.accepted, r.reason) for r in (sim.receipt(s, "TR") for s in receipts)]


def root_signature(signed: Signed) -> bytes:
    """The root signature inside a batch signature (SPEC §4.6 layout)."""
    (signature,) = signed.signatures
    assert signature.alg.endswith("-batch"), signature.alg
    proof_len = signature.sig[8]
    return signature.sig[9 + 32 * proof_len :]


def db_query(fed: LocalFederation, member: str, sql: str, *args: object) -> list[tuple[object, ...]]:
    """Read a running node's SQLite database directly (read-only)."""
    database = make_url(fed.nodes[member].config.database_url).database
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:
        return conn.execute(sql, args).fetchall()


def db_count(fed: LocalFederation, member: str, sql: str, *args: object) -> int:
    ((count,),) = db_query(fed, member, sql, *args)
    assert isinstance(count, int)
    return count


def held(fed: LocalFederation, envelope: Envelope) -> int:
    """How many inbox rows TR holds for ``envelope``."""
    return db_count(fed, "TR", "SELECT count(*) FROM inbox_items WHERE envelope_id = ?", header(envelope).envelope_id)


# --------------------------------------------------------------------------- over the wire


@integration
def test_honest_batch_gets_one_receipt_batch_in_order(fed: LocalFederation, sim: PeerSimulator, tr: DeskClient) -> None:
    # SPEC §11.1: the node serves DeliverBatches.
    envelopes = to_tr(sim, 4)
    assert len({root_signature(e.header) for e in envelopes}) == 1  # the headers are batch-signed
    (receipts,) = sim.send_batches([envelopes], to="TR", tls="KZ")
    assert len(receipts) == len(envelopes)
    tr_key = sim.member("TR").signing_key
    for envelope, signed in zip(envelopes, receipts, strict=True):
        verify(signed, PayloadType.RECEIPT, [tr_key])  # alone: no sibling, no cache
        receipt = Receipt.from_bytes(signed.payload)
        assert (receipt.envelope_id, receipt.envelope_digest) == (header(envelope).envelope_id, envelope.digest)
        assert (receipt.accepted, receipt.reason, receipt.sender, receipt.receiver) == (True, "ALLOWED", "KZ", "TR")
    assert len({root_signature(r) for r in receipts}) == 1  # one batch signature for the batch
    inbox = {e.envelope_id: e.item_id for e in tr.inbox(1000)}
    assert {header(e).envelope_id: header(e).item_id for e in envelopes}.items() <= inbox.items()
    assert json.loads(tr.read(header(envelopes[-1]).item_id).item_json)["title"] == "Simulated report"


@integration
def test_mixed_batch_gets_per_envelope_refusals(fed: LocalFederation, sim: PeerSimulator, tr: DeskClient) -> None:
    earlier = to_tr(sim, 1)[0]
    (first,) = sim.send_batches([[earlier]], to="TR", tls="KZ")
    good1, good2, tampered = to_tr(sim, 3)
    forged = Envelope(
        sim.tamper_payload(
            tampered.header, lambda _: header(tampered).model_copy(update={"nonce": "0" * 32}).to_bytes()
        ),
        tampered.origin,
        tampered.consents,
        tampered.ciphertext,
    )
    (for_az,) = sim.seal_batch([(kz_items(sim, 1, ("AZ", "TR"))[0], "AZ")], sender="KZ")
    replay = sim.resign_header(earlier, "KZ", created_at=header(earlier).created_at + timedelta(seconds=1))
    head = tr.status().audit_head

    (receipts,) = sim.send_batches([[good1, forged, for_az, replay, earlier, good2]], to="TR", tls="KZ")

    assert verdicts(sim, receipts) == [
        (True, "ALLOWED"),
        (False, Reason.SENDER_SIGNATURE_INVALID.value),
        (False, Reason.NOT_ADDRESSED_TO_RECEIVER.value),
        (False, Reason.REPLAY.value),
        (True, "ALLOWED"),  # identical re-delivery: the stored receipt
        (True, "ALLOWED"),
    ]
    assert receipts[4] == first[0]
    assert [held(fed, e) for e in (good1, good2, earlier)] == [1, 1, 1]
    assert held(fed, for_az) == 0
    ingress = tr.audit(after_seq=head, event="INGRESS")
    assert [(e["allowed"], e["reason"]) for e in ingress] == [  # nothing for the re-delivery
        (True, "ALLOWED"),
        (False, Reason.SENDER_SIGNATURE_INVALID.value),
        (False, Reason.NOT_ADDRESSED_TO_RECEIVER.value),
        (False, Reason.REPLAY.value),
        (True, "ALLOWED"),
    ]


@integration
def test_same_envelope_twice_in_one_batch(fed: LocalFederation, sim: PeerSimulator, tr: DeskClient) -> None:
    (envelope,) = to_tr(sim, 1)
    head = tr.status().audit_head
    (receipts,) = sim.send_batches([[envelope, envelope]], to="TR", tls="KZ")
    assert receipts[0] == receipts[1]
    assert verdicts(sim, receipts) == [(True, "ALLOWED")] * 2
    envelope_id = header(envelope).envelope_id
    assert held(fed, envelope) == 1
    assert db_count(fed, "TR", "SELECT count(*) FROM deliveries WHERE envelope_id = ?", envelope_id) == 1
    assert [e["envelope_id"] for e in tr.audit(after_seq=head, event="INGRESS")] == [envelope_id]


@integration
def test_resent_batch_gets_identical_receipts(fed: LocalFederation, sim: PeerSimulator, tr: DeskClient) -> None:
    batch = to_tr(sim, 3)
    same_call = sim.send_batches([batch, batch], to="TR", tls="KZ")  # the second may share the first's commit
    head = tr.status().audit_head
    (new_call,) = sim.send_batches([batch], to="TR", tls="KZ")
    assert same_call == [new_call, new_call]
    assert verdicts(sim, new_call) == [(True, "ALLOWED")] * 3
    assert [held(fed, e) for e in batch] == [1, 1, 1]
    assert written_since(tr, head) == []  # a re-delivery records nothing


@integration
def test_lifted_batch_signature_is_refused(fed: LocalFederation, sim: PeerSimulator) -> None:
    """A header carrying its sibling's batch signature; the sibling's root is verified first."""
    genuine, sibling = to_tr(sim, 2)
    lifted = sim.lift_header_signatures(genuine, sibling)
    (receipts,) = sim.send_batches([[sibling, lifted, genuine]], to="TR", tls="KZ")
    assert verdicts(sim, receipts) == [
        (True, "ALLOWED"),
        (False, Reason.SENDER_SIGNATURE_INVALID.value),
        (True, "ALLOWED"),  # the refusal stored nothing under the claimed id
    ]
    assert held(fed, genuine) == 1


@integration
def test_largest_batch_is_answered(fed: LocalFederation, sim: PeerSimulator) -> None:
    tiny = [exchange_pb2.Envelope()] * MAX_ENVELOPE_BATCH
    (receipts,) = sim.send_batches([tiny], to="TR", tls="KZ")
    assert verdicts(sim, receipts) == [(False, Reason.ENVELOPE_MALFORMED.value)] * MAX_ENVELOPE_BATCH


@integration
def test_empty_batch_gets_an_empty_receipt_batch(fed: LocalFederation, sim: PeerSimulator) -> None:
    (envelope,) = to_tr(sim, 1)
    assert [len(r) for r in sim.send_batches([[], [envelope], []], to="TR", tls="KZ")] == [0, 1, 0]


@integration
def test_batch_over_another_members_connection(fed: LocalFederation, sim: PeerSimulator) -> None:
    """AZ's connection carries KZ's batch: every envelope is SENDER_IDENTITY_MISMATCH."""
    batch = to_tr(sim, 2)
    (receipts,) = sim.send_batches([batch], to="TR", tls="AZ")
    assert verdicts(sim, receipts) == [(False, Reason.SENDER_IDENTITY_MISMATCH.value)] * 2
    assert [held(fed, e) for e in batch] == [0, 0]


@integration
def test_batch_from_a_peer_outside_the_roster(fed: LocalFederation, sim: PeerSimulator, tr: DeskClient) -> None:
    head = tr.status().audit_head
    with pytest.raises(grpc.RpcError) as caught:
        sim.send_batches([to_tr(sim, 1)], to="TR", tls=sim.federation_ca_cert("XX"))
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert [(e["event"], e["reason"]) for e in written_since(tr, head)] == [("CONNECTION_REFUSED", "UNKNOWN_PEER")]


@integration
def test_oversized_batch_ends_the_call(fed: LocalFederation, sim: PeerSimulator, tr: DeskClient) -> None:
    before, after = to_tr(sim, 2)
    oversized = [exchange_pb2.Envelope()] * (MAX_ENVELOPE_BATCH + 1)
    head = tr.status().audit_head
    replies = sim.batch_stream([[before], oversized, [after]], to="TR", tls="KZ")
    assert verdicts(sim, next(replies)) == [(True, "ALLOWED")]  # batches before it are answered
    with pytest.raises(grpc.RpcError) as caught:
        next(replies)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    entries = written_since(tr, head)
    # The refusal is audited as soon as the batch is read; the batch before it commits
    # after its verification, so the two entries may come in either order.
    assert sorted((e["event"], e["peer"], e["allowed"], e["reason"]) for e in entries) == [
        ("INGRESS", "KZ", False, Reason.ENVELOPE_MALFORMED.value),
        ("INGRESS", "KZ", True, "ALLOWED"),
    ]
    (refusal,) = [e for e in entries if not e["allowed"]]
    assert refusal["envelope_id"] is None
    assert str(MAX_ENVELOPE_BATCH + 1) in refusal["detail"]["detail"]
    assert held(fed, after) == 0  # nothing after the oversized batch was read


def submit_many(kz: DeskClient, fed: LocalFederation, n: int) -> list[str]:
    """KZ's officer submits ``n`` items for TR in one ``SubmitBatch``; their envelope ids."""
    labels = [make_label(fed.roster, "KZ", band=Band.CONFIDENTIAL, releasable_to=["TR"]) for _ in range(n)]
    results = kz.submit_batch([(lab, report(lab), ["TR"]) for lab in labels])
    ids = [o.envelope_id for r in results for o in r.outcomes if o.allowed]
    assert len(ids) == n
    return ids


@integration
def test_desk_batch_travels_as_one_envelope_batch(fed: LocalFederation) -> None:
    """KZ's node sends a desk batch in one EnvelopeBatch; TR's receipts for it, stored in
    KZ's outbox, share one batch signature."""
    kz = fed.desk("KZ")
    try:
        ids = submit_many(kz, fed, 5)
        settled = kz.wait_settled(ids)
    finally:
        kz.close()
    assert {e.state for e in settled.values()} == {"delivered"}
    marks = ",".join("?" * len(ids))
    stored = db_query(fed, "KZ", f"SELECT receipt FROM outbox WHERE envelope_id IN ({marks})", *ids)
    assert len(stored) == 5
    assert len({root_signature(Signed.model_validate_json(receipt)) for (receipt,) in stored}) == 1


# ----- the sender's link against a receiver that misbehaves (its own federation each)


@pytest.fixture
def kz_alone(tmp_path: Path) -> Iterator[tuple[LocalFederation, PeerSimulator]]:
    """A federation where nothing runs yet; KZ retries at most 0.3 s apart and waits 1 s
    for a receipt. The test starts KZ (after ``set_max_in_flight``, if it wants)."""
    federation = LocalFederation.create(FEDERATION_TOML, tmp_path / "ots")
    config = federation.nodes["KZ"].config_path
    text = config.read_text(encoding="utf-8")
    text = text.replace("retry_max_seconds = 10.0", "retry_max_seconds = 0.3")
    config.write_text(text.replace("deadline_seconds = 10.0", "deadline_seconds = 1.0"), encoding="utf-8")
    simulator = PeerSimulator(federation.root)
    try:
        yield federation, simulator
    finally:
        federation.stop()
        simulator.close()


def set_max_in_flight(fed: LocalFederation, value: int) -> None:
    config = fed.nodes["KZ"].config_path
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("max_in_flight = 64", f"max_in_flight = {value}"), encoding="utf-8")
    assert fed.nodes["KZ"].config.delivery.max_in_flight == value


def delivered(kz: DeskClient, ids: Sequence[str]) -> int:
    return sum(e.state == "delivered" for e in kz.outbox() if e.envelope_id in ids)


def all_but_the_last(sim: PeerSimulator, batch: exchange_pb2.EnvelopeBatch) -> exchange_pb2.ReceiptBatch:
    """Valid TR receipts (TR's key) accepting every envelope of ``batch`` but the last."""
    envelopes = [envelope_from_pb(e) for e in batch.envelopes][:-1]
    signed = tr_receipts(sim, envelopes, [True] * len(envelopes))
    return exchange_pb2.ReceiptBatch(receipts=[exchange_pb2.Receipt(statement=signed_to_pb(r)) for r in signed])


@integration
def test_receipt_count_mismatch_fails_the_stream(kz_alone: tuple[LocalFederation, PeerSimulator]) -> None:
    """A batch of 3 answered with 2 valid receipts: none is used, all 3 are retried."""
    fed, sim = kz_alone
    fed.nodes["KZ"].start()
    kz = fed.desk("KZ")
    try:
        with FakeReceiver(sim, "TR", answer=lambda batch: all_but_the_last(sim, batch)) as fake:
            ids = submit_many(kz, fed, 3)
            assert eventually(lambda: fake.received() >= 6, timeout=10)  # sent, failed, sent again
            pending = [e for e in kz.outbox() if e.envelope_id in ids]
            assert {e.state for e in pending} == {"pending"}
            assert all("2 receipts for a batch of 3" in e.last_error for e in pending), pending
        fed.nodes["TR"].start()
        settled = kz.wait_settled(ids)
    finally:
        kz.close()
    assert {e.state for e in settled.values()} == {"delivered"}


@integration
def test_envelope_waiting_for_room_is_retried_after_a_failed_call(
    kz_alone: tuple[LocalFederation, PeerSimulator],
) -> None:
    """max_in_flight 1 and a receiver that never answers: the call fails at the deadline
    with one envelope written and the next one waiting for room; both must be retried."""
    fed, sim = kz_alone
    set_max_in_flight(fed, 1)
    fed.nodes["KZ"].start()
    kz = fed.desk("KZ")
    try:
        with FakeReceiver(sim, "TR", answer=lambda batch: None) as fake:
            ids = submit_many(kz, fed, 3)
            assert eventually(lambda: fake.received() >= 1, timeout=10)
            time.sleep(1.5)  # past the deadline: the call fails
        fed.nodes["TR"].start()
        assert eventually(lambda: delivered(kz, ids) >= 2, timeout=10)
        assert eventually(lambda: delivered(kz, ids) == 3, timeout=3)  # the poller runs every second
    finally:
        kz.close()


@integration
def test_deadline_applies_to_a_batch_written_after_an_idle_moment(
    kz_alone: tuple[LocalFederation, PeerSimulator],
) -> None:
    """The receiver answers the first batch of the call, then nothing: the second batch,
    written on the same call, must fail it after deadline_seconds (1 s) and go back to the
    outbox (SPEC §11.6 steps 5 and 6)."""
    fed, sim = kz_alone
    fed.nodes["KZ"].start()
    kz = fed.desk("KZ")
    answered: list[int] = []

    def first_only(batch: exchange_pb2.EnvelopeBatch) -> exchange_pb2.ReceiptBatch | None:
        if answered:
            return None
        answered.append(len(batch.envelopes))
        envelopes = [envelope_from_pb(e) for e in batch.envelopes]
        signed = tr_receipts(sim, envelopes, [True] * len(envelopes))
        return exchange_pb2.ReceiptBatch(receipts=[exchange_pb2.Receipt(statement=signed_to_pb(r)) for r in signed])

    try:
        with FakeReceiver(sim, "TR", answer=first_only) as fake:
            (first,) = submit_many(kz, fed, 1)
            assert eventually(lambda: delivered(kz, [first]) == 1, timeout=10)
            (second,) = submit_many(kz, fed, 1)  # well within the 5 s idle time: same call
            assert eventually(lambda: fake.received() == 2, timeout=10)
            assert eventually(lambda: any(e.attempts for e in kz.outbox() if e.envelope_id == second), timeout=4)
    finally:
        kz.close()


# --------------------------------------------------------------------------- plain functions


def node_state(sim: PeerSimulator, member: str) -> NodeState:
    """A member's state as ``Node`` builds it from its configuration and key material."""
    m = sim.material(member)
    return NodeState(
        me=member,
        signing_key=m.signing_key,
        hpke_keys=m.hpke_keys,
        at_rest=AtRestKey(m.at_rest_key),
        roster=m.roster,
        agreements=m.agreements,
        window=m.config.window,
        consent=m.config.consent,
    )


def checked(state: NodeState, envelope: Envelope, now: datetime) -> tuple[Envelope, IngressResult]:
    """TR's verification off the database thread, as ``Node.ingest_batch`` does it (TLS peer KZ)."""
    peer = state.roster.member("KZ")
    assert peer is not None
    return envelope, check_ingress(
        envelope,
        receiver=state.me,
        receiver_keys=state.hpke_keys,
        peer_tls_identity=peer.tls_identity,
        peer_fingerprint=peer.tls_fingerprint,
        ctx=state.policy(now),
        window=state.window,
        is_replay=lambda header, digest: False,
        roots=state.roots,
    )


def ingest(factory: sessionmaker[Session], state: NodeState, *batches: Sequence[Envelope]) -> list[list[Signed]]:
    """Commit each batch as one job, all in one transaction (one group commit)."""
    now = datetime.now(UTC)
    with factory.begin() as session:
        return [
            ingress.commit_ingress_batch(
                session, state, checked=[checked(state, e, now) for e in batch], peer="KZ", now=now
            )
            for batch in batches
        ]


def count(factory: sessionmaker[Session], model: type[object], **where: object) -> int:
    with factory() as session:
        query = select(func.count()).select_from(model)  # type: ignore[arg-type]
        for column, value in where.items():
            query = query.where(getattr(model, column) == value)
        return int(session.scalar(query) or 0)


def entries(factory: sessionmaker[Session], event: AuditEvent) -> list[AuditEntryRow]:
    with factory() as session:
        return list(session.scalars(select(AuditEntryRow).where(AuditEntryRow.event == event.value)))


def audit_ok(factory: sessionmaker[Session]) -> bool:
    with factory() as session:
        return audit.verify(session).ok


def test_commit_batch_signs_new_receipts_together(session_factory: sessionmaker[Session], sim: PeerSimulator) -> None:
    tr_state = node_state(sim, "TR")
    batch = to_tr(sim, 3)
    (receipts,) = ingress = ingest(session_factory, tr_state, batch)
    assert len(ingress) == 1
    for envelope, signed in zip(batch, receipts, strict=True):
        receipt = sim.receipt(signed, "TR")
        assert (receipt.envelope_id, receipt.accepted) == (header(envelope).envelope_id, True)
    assert len({root_signature(r) for r in receipts}) == 1
    assert count(session_factory, InboxItem) == count(session_factory, Delivery) == 3
    assert len(entries(session_factory, AuditEvent.INGRESS)) == 3
    assert audit_ok(session_factory)


def test_commit_keeps_the_exact_attested_plaintext(session_factory: sessionmaker[Session], sim: PeerSimulator) -> None:
    """The inbox copy is the originator's bytes, not a re-serialisation: it still matches the attestation."""
    tr_state = node_state(sim, "TR")
    batch = to_tr(sim, 2)
    results = [checked(tr_state, envelope, datetime.now(UTC))[1] for envelope in batch]
    ingest(session_factory, tr_state, batch)
    with session_factory() as session:
        for envelope, result in zip(batch, results, strict=True):
            attestation = OriginAttestation.from_bytes(envelope.origin.payload)
            copy = holdings.held(session, tr_state, attestation.item_id, attestation.item_version)
            origin, plaintext = copy.origin, copy.plaintext
            assert plaintext == result.plaintext
            assert sha256_hex(plaintext) == attestation.plaintext_digest
            assert origin.digest == envelope.origin.digest


def test_commit_single_envelope_is_signed_directly(session_factory: sessionmaker[Session], sim: PeerSimulator) -> None:
    tr_state = node_state(sim, "TR")
    ((receipt,),) = ingest(session_factory, tr_state, to_tr(sim, 1))
    assert [s.alg for s in receipt.signatures] == ["ed25519"]


def test_commit_redelivery_returns_stored_bytes(session_factory: sessionmaker[Session], sim: PeerSimulator) -> None:
    tr_state = node_state(sim, "TR")
    a, b, c = to_tr(sim, 3)
    (first,) = ingest(session_factory, tr_state, [a, b])
    (second,) = ingest(session_factory, tr_state, [b, c])
    assert second[0] == first[1]
    assert [s.alg for s in second[1].signatures] == ["ed25519"]  # the only new receipt: direct
    assert count(session_factory, Delivery) == 3
    assert len(entries(session_factory, AuditEvent.INGRESS)) == 3


def test_commit_repeat_across_jobs_of_one_transaction(
    session_factory: sessionmaker[Session], sim: PeerSimulator
) -> None:
    tr_state = node_state(sim, "TR")
    a, b = to_tr(sim, 2)
    first, second = ingest(session_factory, tr_state, [a, b], [b, a])
    assert second == [first[1], first[0]]
    assert count(session_factory, InboxItem) == count(session_factory, Delivery) == 2
    assert len(entries(session_factory, AuditEvent.INGRESS)) == 2


def test_commit_repeat_within_batch_stored_once(session_factory: sessionmaker[Session], sim: PeerSimulator) -> None:
    tr_state = node_state(sim, "TR")
    (a,) = to_tr(sim, 1)
    ((r1, r2),) = ingest(session_factory, tr_state, [a, a])
    assert r1 == r2
    assert sim.receipt(r1, "TR").accepted
    assert count(session_factory, InboxItem) == count(session_factory, Delivery) == 1
    assert len(entries(session_factory, AuditEvent.INGRESS)) == 1


def test_commit_nonce_reused_within_batch_is_replay(session_factory: sessionmaker[Session], sim: PeerSimulator) -> None:
    tr_state = node_state(sim, "TR")
    a, b = to_tr(sim, 2)
    same_nonce = sim.resign_header(b, "KZ", nonce=header(a).nonce)
    ((ra, rb),) = ingest(session_factory, tr_state, [a, same_nonce])
    assert verdicts(sim, [ra, rb]) == [(True, "ALLOWED"), (False, Reason.REPLAY.value)]
    assert count(session_factory, Delivery) == 1  # the replay keeps the first record
    assert count(session_factory, InboxItem, envelope_id=header(a).envelope_id) == 1
    assert audit_ok(session_factory)


def test_commit_unverified_header_leaves_no_record(session_factory: sessionmaker[Session], sim: PeerSimulator) -> None:
    tr_state = node_state(sim, "TR")
    genuine, sibling = to_tr(sim, 2)
    lifted = sim.lift_header_signatures(genuine, sibling)
    ((refusal, accepted),) = ingest(session_factory, tr_state, [lifted, genuine])
    assert verdicts(sim, [refusal, accepted]) == [(False, Reason.SENDER_SIGNATURE_INVALID.value), (True, "ALLOWED")]
    assert sim.receipt(refusal, "TR").envelope_id == header(genuine).envelope_id  # the claimed id, echoed
    assert count(session_factory, Delivery) == 1
    refused_entry, _ = entries(session_factory, AuditEvent.INGRESS)
    assert (refused_entry.envelope_id, refused_entry.item_id) == (None, None)


# ----- audit: append_many and append in one transaction


def test_append_many_between_appends_verifies(session_factory: sessionmaker[Session]) -> None:
    t0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)

    def one(n: int) -> audit.Entry:
        return audit.Entry(
            AuditEvent.INGRESS,
            "TR",
            peer="KZ",
            envelope_id=f"{n:032x}",
            allowed=n % 2 == 0,
            reason="ALLOWED",
            detail={"n": n, "note": "ünïcode ÖZEL", "consents": ["ab" * 32]},
        )

    with session_factory.begin() as session:
        audit.append(session, now=t0, event=AuditEvent.NODE_STARTED, actor="TR", detail={"roster": 1})
        audit.append_many(session, now=t0, entries=[one(1), one(2)])
        audit.append(session, now=t0 + timedelta(seconds=1), event=AuditEvent.EGRESS, actor="TR", peer="AZ")
        audit.append_many(session, now=t0 + timedelta(seconds=2), entries=[one(3)])
    with session_factory.begin() as session:
        audit.append_many(session, now=t0 + timedelta(seconds=3), entries=[one(4), one(5)])
        audit.append(session, now=t0 + timedelta(seconds=4), event=AuditEvent.OFFICER_READ, actor="duty@TR")
    with session_factory() as session:
        report = audit.verify(session)
        rows = list(session.scalars(select(AuditEntryRow).order_by(AuditEntryRow.seq)))
    assert (report.ok, report.entries, report.head_seq, report.problems) == (True, 8, 8, ())
    assert [r.event for r in rows] == ["NODE_STARTED", "INGRESS", "INGRESS", "EGRESS", *["INGRESS"] * 3, "OFFICER_READ"]
    assert [r.prev_hash for r in rows[1:]] == [r.entry_hash for r in rows[:-1]]


# ----- receipts at the sender


def outbox_to_tr(factory: sessionmaker[Session], sim: PeerSimulator, n: int) -> tuple[NodeState, list[Envelope]]:
    """KZ stores ``n`` new items for TR as its desk does; returns KZ's state and the envelopes."""
    kz_state = node_state(sim, "KZ")
    now = datetime.now(UTC)
    labels = [sim.label("KZ", releasable_to=("TR",)) for _ in range(n)]
    prepared = egress.prepare_items(
        kz_state, [egress.NewItem(lab, report(lab), ("TR",), Suite.X25519_AES256GCM) for lab in labels], now=now
    )
    with factory.begin() as session:
        results = egress.store_items(session, kz_state, prepared=prepared, now=now)
    envelopes = [envelope_from_bytes(o.envelope) for r in results for o in r.outcomes if o.envelope]
    assert len(envelopes) == n
    return kz_state, envelopes


def tr_receipts(sim: PeerSimulator, envelopes: Sequence[Envelope], accepted: Sequence[bool]) -> list[Signed]:
    """TR's receipts for ``envelopes``, under one batch signature."""
    now = datetime.now(UTC)
    statements = [
        Receipt(
            envelope_id=header(e).envelope_id,
            envelope_digest=e.digest,
            sender="KZ",
            receiver="TR",
            accepted=ok,
            reason="ALLOWED" if ok else Reason.BAND_ABOVE_CEILING.value,
            rule="",
            received_at=now,
            log_seq=position,
            log_leaf=sha256_hex(e.digest.encode()),  # a stand-in: TR's log is not read here
        )
        for position, (e, ok) in enumerate(zip(envelopes, accepted, strict=True), start=1)
    ]
    return sign_many([(PayloadType.RECEIPT, s) for s in statements], [sim.signing_key("TR")])


def settle(
    factory: sessionmaker[Session], kz_state: NodeState, settled: Sequence[VerifiedReceipt]
) -> list[ReceiptOutcome]:
    with factory.begin() as session:
        return delivery.record_receipts(session, kz_state, settled=settled, now=datetime.now(UTC))


def verified(kz_state: NodeState, envelopes: Sequence[Envelope], receipts: Sequence[Signed]) -> list[VerifiedReceipt]:
    sent = [(header(e).envelope_id, e.digest) for e in envelopes]
    out = []
    for result in delivery.check_receipts(kz_state, recipient="TR", sent=sent, receipts=receipts):
        assert isinstance(result, VerifiedReceipt), result
        out.append(result)
    return out


def outbox_row(factory: sessionmaker[Session], envelope: Envelope) -> tuple[str, int]:
    with factory() as session:
        row = session.get(OutboxEntry, header(envelope).envelope_id)
        assert row is not None
        return row.state, row.attempts


def test_record_receipts_settles_a_batch(session_factory: sessionmaker[Session], sim: PeerSimulator) -> None:
    kz_state, envelopes = outbox_to_tr(session_factory, sim, 2)
    receipts = tr_receipts(sim, envelopes, [True, False])
    outcome = settle(session_factory, kz_state, verified(kz_state, envelopes, receipts))
    assert outcome == [
        SettledEntry(header(envelopes[0]).envelope_id, OutboxState.DELIVERED),
        SettledEntry(header(envelopes[1]).envelope_id, OutboxState.REFUSED),
    ]
    assert [outbox_row(session_factory, e) for e in envelopes] == [("delivered", 1), ("refused", 1)]
    confirmed = entries(session_factory, AuditEvent.DELIVERY_CONFIRMED)
    assert [(e.envelope_id, e.allowed) for e in confirmed] == [
        (header(envelopes[0]).envelope_id, True),
        (header(envelopes[1]).envelope_id, False),
    ]
    assert audit_ok(session_factory)


def test_row_loaded_earlier_in_the_group_stays_readable(
    session_factory: sessionmaker[Session], sim: PeerSimulator
) -> None:
    """A desk listing and a receipt share one group commit; the listed row outlives it.

    The listing's rows are read after the session has closed, so settling must leave
    them loaded (and current), not expired.
    """
    kz_state, (envelope,) = outbox_to_tr(session_factory, sim, 1)
    settled = verified(kz_state, [envelope], tr_receipts(sim, [envelope], [True]))
    with session_factory.begin() as session:  # one group: the listing first, then the receipt
        listed = session.get(OutboxEntry, header(envelope).envelope_id)
        delivery.record_receipts(session, kz_state, settled=settled, now=datetime.now(UTC))
    assert listed is not None
    assert (listed.state, listed.attempts, listed.reason) == ("delivered", 1, "ALLOWED")


def test_record_receipt_for_unknown_envelope(session_factory: sessionmaker[Session], sim: PeerSimulator) -> None:
    kz_state, (known,) = outbox_to_tr(session_factory, sim, 1)
    (unknown,) = to_tr(sim, 1)  # never in KZ's outbox
    receipts = tr_receipts(sim, [unknown, known], [True, True])
    outcome = settle(session_factory, kz_state, verified(kz_state, [unknown, known], receipts))
    assert outcome == [
        NoSuchEntry(header(unknown).envelope_id),
        SettledEntry(header(known).envelope_id, OutboxState.DELIVERED),
    ]
    assert len(entries(session_factory, AuditEvent.DELIVERY_CONFIRMED)) == 1


def test_record_receipt_from_wrong_receiver(session_factory: sessionmaker[Session], sim: PeerSimulator) -> None:
    # SPEC §11.3: the receipt's receiver MUST be the entry's recipient.
    kz_state, (envelope,) = outbox_to_tr(session_factory, sim, 1)
    (good,) = verified(kz_state, [envelope], tr_receipts(sim, [envelope], [True]))
    from_az = good.receipt.model_copy(update={"receiver": "AZ"})
    (outcome,) = settle(session_factory, kz_state, [VerifiedReceipt(good.envelope_id, good.signed, from_az)])
    assert isinstance(outcome, ReceiptMismatch)
    assert isinstance(outcome.error, RemoteProtocolError)
    assert outbox_row(session_factory, envelope) == ("pending", 0)
    assert entries(session_factory, AuditEvent.DELIVERY_CONFIRMED) == []


def test_record_same_receipt_twice_in_one_call(session_factory: sessionmaker[Session], sim: PeerSimulator) -> None:
    kz_state, (envelope,) = outbox_to_tr(session_factory, sim, 1)
    (settled,) = verified(kz_state, [envelope], tr_receipts(sim, [envelope], [True]))
    delivered = SettledEntry(header(envelope).envelope_id, OutboxState.DELIVERED)
    assert settle(session_factory, kz_state, [settled, settled]) == [delivered] * 2
    assert outbox_row(session_factory, envelope) == ("delivered", 1)
    assert len(entries(session_factory, AuditEvent.DELIVERY_CONFIRMED)) == 1
    assert settle(session_factory, kz_state, [settled]) == [delivered]  # later: left as it is
    assert len(entries(session_factory, AuditEvent.DELIVERY_CONFIRMED)) == 1


def test_check_receipts_refuses_a_lifted_batch_signature(sim: PeerSimulator) -> None:
    # SPEC §11.3: a receipt MUST verify with the recipient's roster key.
    kz_state = node_state(sim, "KZ")
    envelopes = to_tr(sim, 2)
    first, second = tr_receipts(sim, envelopes, [True, True])
    lifted = first.model_copy(update={"signatures": second.signatures})
    sent = [(header(e).envelope_id, e.digest) for e in envelopes]
    # The sibling's root is verified (and remembered) first; the lifted proof leads elsewhere.
    results = delivery.check_receipts(kz_state, recipient="TR", sent=sent[::-1], receipts=[second, lifted])
    assert [type(r) for r in results] == [VerifiedReceipt, RefusedReceipt]
    assert results[1].envelope_id == sent[0][0]
