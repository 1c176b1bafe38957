"""A running node against bad input from a member: real node processes over mutual TLS
(KZ, TR and AZ running, one federation per module), the attacker-controlled peer simulator
holding KZ's keys and certificate, and TR's database opened beside the node.

TR ends idle inbound streams after 2 s and sums up refusals in its log every 2 s; AZ lets
a peer hold two streams at once (``[inbound]`` in their node.toml).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
from peer_simulator import Item, PeerSimulator
from sqlalchemy import make_url
from typer.testing import CliRunner

from node.cli import app
from node.client import DeskClient
from node.codec import envelope_to_pb
from node.harness import LocalFederation, eventually
from node.wire import exchange_pb2, exchange_pb2_grpc
from protocol.classification import Band
from protocol.consent import ConsentRequest
from protocol.envelope import attest
from protocol.item import ReportTemplate
from protocol.label import Label
from protocol.policy import Reason
from protocol.receipt import Receipt
from protocol.statements import PayloadType, sign

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
FEDERATION_TOML = REPO / "examples" / "federation.toml"
TR_IDLE_SECONDS = 2
TR_REFUSAL_LOG_SECONDS = 2
AZ_MAX_STREAMS = 2
DELIVER_BATCHES = "/intelshare.v1.Exchange/DeliverBatches"


def _add_inbound(federation: LocalFederation, member: str, table: str) -> None:
    config = federation.nodes[member].config_path
    config.write_text(config.read_text(encoding="utf-8") + f"\n[inbound]\n{table}\n", encoding="utf-8")


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFederation]:
    federation = LocalFederation.create(FEDERATION_TOML, tmp_path_factory.mktemp("edges") / "ots")
    _add_inbound(
        federation,
        "TR",
        f"stream_idle_seconds = {TR_IDLE_SECONDS}\nrefusal_log_seconds = {TR_REFUSAL_LOG_SECONDS}",
    )
    _add_inbound(federation, "AZ", f"max_streams_per_peer = {AZ_MAX_STREAMS}")
    assert federation.nodes["TR"].config.inbound.stream_idle_seconds == TR_IDLE_SECONDS
    with federation.running(["KZ", "TR", "AZ"]):
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


# --------------------------------------------------------------------------- 10, 11. what the desk shows


def held_secret(sim: PeerSimulator) -> Item:
    """A SECRET item of KZ's, accepted by TR."""
    item = sim.item("KZ", band=Band.SECRET, releasable_to=("TR",), topics=("terrorism",))
    assert receipt_of(sim, sim.send(sim.envelope(item, sender="KZ", recipient="TR"), to="TR", tls="KZ")).accepted
    return item


def test_desk_shows_the_signed_label_not_the_columns(fed: LocalFederation, sim: PeerSimulator, tr: DeskClient) -> None:
    # SPEC §11.5: the label shown is the stored origin statement's; the columns beside it are unsigned.
    item = held_secret(sim)
    downgraded = item.attestation.label.model_copy(
        update={"band": Band.RESTRICTED, "originator_marking": "ДЛЯ СЛУЖЕБНОГО ПОЛЬЗОВАНИЯ", "topics": ("extremism",)}
    )
    tr_sql(
        fed,
        "UPDATE inbox_items SET band = ?, topics = ?, label_json = ? WHERE item_id = ?",
        int(Band.RESTRICTED),
        json.dumps(["extremism"]),
        downgraded.model_dump_json(),
        item.item_id,
    )
    (listed,) = [e for e in tr.inbox(1000) if e.item_id == item.item_id]
    read = tr.read(item.item_id).entry
    for entry in (listed, read):
        assert (entry.band, entry.originator_marking, entry.reader_marking, list(entry.topics)) == (
            Band.SECRET.title,
            "СЕКРЕТНО",
            "GİZLİ",
            ["terrorism"],
        )


def test_damaged_sealed_content_is_data_loss_and_audited(
    fed: LocalFederation, sim: PeerSimulator, tr: DeskClient
) -> None:
    # SPEC §11.5: a sealed value that does not open is a StoredDataError: DATA_LOSS, exit 9, audited.
    item = held_secret(sim)
    (sealed,) = tr_sql(fed, "SELECT sealed_content FROM inbox_items WHERE item_id = ?", item.item_id)[0]
    damaged = sealed[:-1] + bytes([sealed[-1] ^ 1])
    tr_sql(fed, "UPDATE inbox_items SET sealed_content = ? WHERE item_id = ?", damaged, item.item_id)
    head = tr.status().audit_head
    shown = subprocess.run(
        [sys.executable, "-m", "node.cli", "show", item.item_id, "--dir", str(fed.root), "--member", "TR"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        timeout=60,
        check=False,
    )
    assert shown.returncode == 9, shown.stdout + shown.stderr
    assert shown.stderr.count("\n") == 1
    assert "does not open" in shown.stderr
    assert "Traceback" not in shown.stderr
    (entry,) = [e for e in tr.audit(after_seq=head) if e["item_id"] == item.item_id]
    assert (entry["event"], entry["allowed"]) == ("STORED_DATA_DAMAGED", False)
    assert (entry["actor"], entry["detail"]["operation"]) == ("duty@TR", "ReadItem")


# --------------------------------------------------------------------------- 9. undecodable batch


def test_undecodable_batch_ends_the_call_with_a_status(
    fed: LocalFederation, sim: PeerSimulator, tr: DeskClient
) -> None:
    # SPEC §11.3 Batches step 1: a batch that does not decode is refused whole, audited, the call ended.
    head = tr.status().audit_head
    good = sim.seal_batch([(sim.item("KZ", releasable_to=("TR",)), "TR")], sender="KZ")
    first = exchange_pb2.EnvelopeBatch(envelopes=[envelope_to_pb(e) for e in good]).SerializeToString()
    call = sim._channel("TR", sim.tls("KZ")).stream_stream(
        DELIVER_BATCHES, request_serializer=lambda b: b, response_deserializer=exchange_pb2.ReceiptBatch.FromString
    )
    replies = call(iter([first, b"\xff\xff\xff"]), timeout=10)
    assert len(next(replies).receipts) == 1  # the batch before the junk is answered
    with pytest.raises(grpc.RpcError) as ended:
        next(replies)
    assert ended.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "does not decode" in (ended.value.details() or "")
    refusals = [e for e in tr.audit(after_seq=head, event="INGRESS") if not e["allowed"]]
    assert [(e["reason"], "does not decode" in e["detail"]["detail"]) for e in refusals] == [
        ("ENVELOPE_MALFORMED", True)
    ]


def test_undecodable_deliver_gets_a_refusal_receipt(fed: LocalFederation, sim: PeerSimulator, tr: DeskClient) -> None:
    # SPEC §11.1: an undecodable Envelope message is refused like an envelope that does not parse.
    head = tr.status().audit_head
    receipt = receipt_of(sim, sim.send_bytes(b"\xff\xff\xff", to="TR", tls=sim.tls("KZ")))
    assert (receipt.accepted, receipt.reason) == (False, Reason.ENVELOPE_MALFORMED.value)
    (entry,) = tr.audit(after_seq=head, event="INGRESS")
    assert (entry["allowed"], entry["reason"], entry["peer"]) == (False, "ENVELOPE_MALFORMED", "KZ")


# --------------------------------------------------------------------------- 12. refusals in the log


def test_junk_burst_is_logged_once_per_interval_with_a_count(fed: LocalFederation, sim: PeerSimulator) -> None:
    # AZ's connection: no other test of this module has TR refuse anything from AZ.
    log = fed.nodes["TR"].config_path.parent / "node.log"
    before = log.stat().st_size
    deliver = sim._channel("TR", sim.tls("AZ")).unary_unary(
        "/intelshare.v1.Exchange/Deliver", request_serializer=lambda b: b, response_deserializer=lambda b: b
    )
    burst = 200
    started = time.monotonic()
    for _ in range(burst):
        # Each gets a refusal receipt (test_undecodable_deliver_gets_a_refusal_receipt); the log is the point.
        with contextlib.suppress(grpc.RpcError):
            deliver(b"\xff\xff\xff", timeout=10)
    elapsed = time.monotonic() - started

    def written() -> str:
        return log.read_bytes()[before:].decode(errors="replace")

    def counted() -> int:
        text = written()
        firsts = len(re.findall(r"refused an undecodable Deliver from AZ;", text))
        return firsts + sum(
            int(n) for n in re.findall(r"more requests from AZ in .*?an undecodable Deliver ×(\d+)", text)
        )

    assert eventually(lambda: counted() == burst, timeout=10 + TR_REFUSAL_LOG_SECONDS)
    text = written()
    assert "Traceback" not in text
    lines = [line for line in text.splitlines() if "from AZ" in line]
    # One line as an interval opens and one with its count as it closes: bounded by time, not by requests.
    assert len(lines) <= 2 * (elapsed // TR_REFUSAL_LOG_SECONDS + 2)


# --------------------------------------------------------------------------- 14. stream bounds


def _open_stream(sim: PeerSimulator, to: str, hold: threading.Event, timeout: float) -> Iterator[Any]:
    """A DeliverBatches call writing one empty batch, then nothing until ``hold`` is set."""

    def requests() -> Iterator[exchange_pb2.EnvelopeBatch]:
        yield exchange_pb2.EnvelopeBatch()
        hold.wait()

    stub = exchange_pb2_grpc.ExchangeStub(sim._channel(to, sim.tls("KZ")))
    return iter(stub.DeliverBatches(requests(), timeout=timeout))


def test_idle_stream_without_deadline_is_closed(fed: LocalFederation, sim: PeerSimulator) -> None:
    # SPEC §11.3 stream bounds: a stream with nothing to answer is ended after stream_idle_seconds.
    hold = threading.Event()
    try:
        replies = _open_stream(sim, "TR", hold, timeout=60)  # the client's own deadline is far off
        assert len(next(replies).receipts) == 0
        with pytest.raises(grpc.RpcError) as ended:
            next(replies)
        assert ended.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
        assert f"idle for {TR_IDLE_SECONDS} s" in (ended.value.details() or "")
    finally:
        hold.set()


def test_streams_per_peer_are_capped(fed: LocalFederation, sim: PeerSimulator) -> None:
    # SPEC §11.3 stream bounds: one stream more than max_streams_per_peer is refused at once.
    hold = threading.Event()
    try:
        open_ = [_open_stream(sim, "AZ", hold, timeout=60) for _ in range(AZ_MAX_STREAMS)]
        for replies in open_:
            assert len(next(replies).receipts) == 0  # answered: counted at AZ
        with pytest.raises(grpc.RpcError) as refused:
            next(_open_stream(sim, "AZ", hold, timeout=60))
        assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        hold.set()
    # Streams that end stop counting: a new one is served again.
    again = threading.Event()
    try:
        assert eventually(lambda: _answers(_open_stream(sim, "AZ", again, timeout=10)), timeout=15)
    finally:
        again.set()


def _answers(replies: Iterator[Any]) -> bool:
    try:
        return len(next(replies).receipts) == 0
    except grpc.RpcError:
        return False


# --------------------------------------------------------------------------- 18. ids and prefixes


def cli(*args: str) -> Any:
    """``intelshare ARGS`` in this process (the desk calls go to the running nodes)."""
    return CliRunner().invoke(app, list(args))


@pytest.fixture(scope="module")
def same_millisecond(fed: LocalFederation) -> list[str]:
    """Three items KZ made in one desk call, so in one millisecond, held by TR: their ids."""
    with fed.desk("KZ") as kz:
        labels = [sim_label(fed, "KZ") for _ in range(3)]
        results = kz.submit_batch([(lab, _report(lab), ["TR"]) for lab in labels])
        kz.wait_settled([r.outcomes[0].envelope_id for r in results])
    ids = [r.item_id for r in results]
    assert len({i[:12] for i in ids}) == 1  # the time part: what the tables used to show
    return ids


@pytest.fixture(scope="module")
def two_requests(fed: LocalFederation, sim: PeerSimulator) -> list[str]:
    """Two consent requests AZ sent TR (manual consent) whose ids begin alike: their ids."""
    with fed.desk("TR") as tr:
        label = sim_label(fed, "TR", releasable_to=["AZ"])
        result = tr.submit(label, _report(label), ["AZ"])
        tr.wait_settled([result.outcomes[0].envelope_id])
    (origin_digest,) = tr_sql(fed, "SELECT origin_digest FROM original_items WHERE item_id = ?", result.item_id)[0]
    ids = ["ab" * 16, "ab" + "cd" * 15]
    for request_id in ids:
        request = ConsentRequest(
            request_id=request_id,
            item_id=result.item_id,
            item_version=1,
            origin_digest=origin_digest,
            requester="AZ",
            third_party="KZ",
            purpose="joint analysis",
            requested_at=datetime.now(UTC),
        )
        signed = sign(PayloadType.CONSENT_REQUEST, request, [sim.signing_key("AZ")])
        assert sim.send_statement("RequestConsent", signed, to="TR", tls="AZ").reason == "PENDING"
    return ids


def sim_label(fed: LocalFederation, originator: str, releasable_to: list[str] | None = None) -> Label:
    from node.harness import make_label

    return make_label(fed.roster, originator, band=Band.CONFIDENTIAL, releasable_to=releasable_to or ["TR"])


def _report(label: Label) -> ReportTemplate:
    return ReportTemplate(title="t", summary="s", body="b", assessment="a", grading=label.grading)


def test_ids_shown_tell_items_made_in_one_millisecond_apart(fed: LocalFederation, same_millisecond: list[str]) -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "node.cli", "inbox", "--dir", str(fed.root), "--member", "TR", "--limit", "1000"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "400"},
        timeout=60,
        check=True,
    )
    assert all(item_id in shown.stdout for item_id in same_millisecond)


#: Each command that names an item or a request: (member, words, options after the id, which id).
PREFIXED = {
    "show": ("TR", ["show"], [], ("item", 0)),
    "reshare": ("TR", ["reshare"], ["--to", "AZ", "--no-wait"], ("item", 0)),
    "consent-ask": ("TR", ["consent", "ask"], ["--for", "AZ", "--purpose", "joint"], ("item", 1)),
    "recall": ("KZ", ["recall"], ["--reason", "source burnt"], ("item", 2)),
    "consent-grant": ("TR", ["consent", "grant"], [], ("request", 0)),
    "consent-deny": ("TR", ["consent", "deny"], ["--reason", "no"], ("request", 1)),
}


@pytest.mark.parametrize("command", list(PREFIXED))
def test_ambiguous_prefix_is_refused_listing_the_matches(
    fed: LocalFederation, same_millisecond: list[str], two_requests: list[str], command: str
) -> None:
    member, words, options, (kind, _) = PREFIXED[command]
    ids = same_millisecond if kind == "item" else two_requests
    prefix = ids[0][:12] if kind == "item" else "ab"
    done = cli(*words, prefix, "--dir", str(fed.root), "--member", member, *options)
    assert done.exit_code == 5, done.output + done.stderr
    assert len(done.stderr.splitlines()) == 1
    assert "ambiguous" in done.stderr
    assert all(i in done.stderr for i in ids)


@pytest.mark.parametrize("command", list(PREFIXED))
def test_unique_prefix_is_accepted_everywhere(
    fed: LocalFederation, same_millisecond: list[str], two_requests: list[str], command: str
) -> None:
    member, words, options, (kind, index) = PREFIXED[command]
    ids = same_millisecond if kind == "item" else two_requests
    whole = ids[index]
    prefix = whole[:20] if kind == "item" else whole[:4]
    done = cli(*words, prefix, "--dir", str(fed.root), "--member", member, *options)
    # reshare to a third party without consent is refused by policy (exit 3), after finding the item
    assert done.exit_code == (3 if command == "reshare" else 0), done.output + done.stderr
    assert whole in done.output or command in ("consent-ask", "recall")
