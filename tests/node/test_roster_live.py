"""A federation that lives: the secretariat changes the roster while every node runs (SPEC §11.12).

Real node processes, the real ``intelshare roster`` command and an attacker-controlled
peer (``peer_simulator``). Three federations: one where a compromised key is revoked
(and a rollback tried), one where a member joins and leaves, one where keys rotate with
envelopes in flight.
"""

from __future__ import annotations

import hashlib
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from peer_simulator import FakeReceiver, PeerSimulator

from node.client import DeskClient
from node.codec import envelope_from_pb, signed_to_pb
from node.harness import LocalFederation, NodeProcess, eventually, make_label
from node.wire import exchange_pb2
from protocol.agreement import Agreement, TrustModel
from protocol.classification import Band
from protocol.encoding import sha256_hex
from protocol.envelope import EnvelopeHeader
from protocol.item import ReportTemplate
from protocol.keys import SigningKey
from protocol.label import Category
from protocol.receipt import Receipt
from protocol.roster import Roster
from protocol.statements import PayloadType, Signed, sign, sign_many

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "federation.toml"


@pytest.fixture(scope="module")
def federation_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demonstration federation, retrying after at most 2 s (not 10), so a node back up hears soon."""
    text = EXAMPLE.read_text(encoding="utf-8")
    assert "retry_max_seconds = 10.0" in text
    path = tmp_path_factory.mktemp("config") / "federation.toml"
    path.write_text(text.replace("retry_max_seconds = 10.0", "retry_max_seconds = 2.0"), encoding="utf-8")
    return path


def intelshare(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The ``intelshare`` command, as the secretariat runs it."""
    return subprocess.run(
        [sys.executable, "-m", "node.cli", *args, "--dir", str(root)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )


def roster_file(root: Path) -> Roster:
    return Roster.from_bytes(Signed.from_bytes((root / "roster.json").read_bytes()).payload)


def roster_events(desk: DeskClient, reason: str) -> list[dict[str, object]]:
    return [e for e in desk.audit(event="ROSTER_UPDATED") if e["reason"] == reason]


def report(title: str, label_grading: str) -> ReportTemplate:
    return ReportTemplate(title=title, summary="s", body="b", assessment="a", grading=label_grading)


# --------------------------------------------------------------- a compromised key is revoked


@dataclass
class Revoked:
    root: Path
    fed: LocalFederation
    sim: PeerSimulator
    pids: dict[str, int]
    accepted_before: Receipt
    revoke: subprocess.CompletedProcess[str]
    publish: subprocess.CompletedProcess[str]
    refused_after: dict[str, Receipt]
    seconds: float


RUNNING = ("TR", "AZ", "KZ", "UZ")


@pytest.fixture(scope="module")
def revoked(tmp_path_factory: pytest.TempPathFactory, federation_file: Path) -> Iterator[Revoked]:
    """UZ's signing key is stolen: the secretariat revokes it while TR, AZ, KZ and UZ run; KG is down."""
    root = tmp_path_factory.mktemp("revoke") / "fed"
    fed = LocalFederation.create(federation_file, root)
    sim = PeerSimulator(root)
    with fed.running(RUNNING):
        pids = {m: fed.nodes[m].process.pid for m in RUNNING}  # type: ignore[union-attr]
        before = sim.envelope(sim.item("UZ", releasable_to=("TR",)), sender="UZ", recipient="TR")
        accepted_before = sim.receipt(sim.send(before, to="TR", tls="UZ"), "TR")
        revoke = intelshare(root, "roster", "revoke-key", "--member", "UZ")
        started = time.monotonic()
        publish = intelshare(root, "roster", "publish")
        # The thief holds UZ's keys and certificate: the next envelope signed with the key, to every node.
        refused_after = {
            m: sim.receipt(
                sim.send(sim.envelope(sim.item("UZ", releasable_to=(m,)), sender="UZ", recipient=m), to=m, tls="UZ"),
                m,
            )
            for m in ("TR", "AZ", "KZ")
        }
        seconds = time.monotonic() - started
        yield Revoked(root, fed, sim, pids, accepted_before, revoke, publish, refused_after, seconds)
    sim.close()


def test_the_next_envelope_signed_with_a_revoked_key_is_refused_everywhere_within_seconds(revoked: Revoked) -> None:
    # SPEC §11.12, §9.2.4: applied at once, no restart.
    assert revoked.accepted_before.accepted
    assert revoked.revoke.returncode == 0, revoked.revoke.stderr
    # KG, HU and TM are not running: publish says so (exit 8), the others hold v2.
    assert revoked.publish.returncode == 8, revoked.publish.stdout + revoked.publish.stderr
    refusals = {m: (r.accepted, r.reason) for m, r in revoked.refused_after.items()}
    assert refusals == dict.fromkeys(("TR", "AZ", "KZ"), (False, "KEY_REVOKED"))
    assert revoked.seconds < 30


def test_every_node_applied_and_audited_the_revocation_without_restarting(revoked: Revoked) -> None:
    for member in RUNNING:
        node = revoked.fed.nodes[member]
        assert node.process is not None
        assert node.process.poll() is None, member
        assert node.process.pid == revoked.pids[member], f"{member} was restarted"
        desk = revoked.fed.desk(member)
        try:
            held = roster_events(desk, "ROSTER_HELD")
        finally:
            desk.close()
        assert len(held) == 1, member
        detail = held[0]["detail"]
        assert isinstance(detail, dict)
        assert detail["version"] == 2
        assert detail["revoked"] == [roster_file(revoked.root).member("UZ").signing_key.keyid]  # type: ignore[union-attr]


def test_agreements_signed_with_the_revoked_key_are_set_aside_at_once(revoked: Revoked) -> None:
    # SPEC §6.2, §12.8: AZ–UZ was signed with UZ's key; AZ holds it no longer, so nothing goes to UZ.
    az = revoked.fed.desk("AZ")
    try:
        set_aside = [e for e in az.audit(event="AGREEMENT_UPDATED") if e["reason"] == "AGREEMENT_SET_ASIDE"]
        label = make_label(revoked.fed.roster, "AZ", band=Band.CONFIDENTIAL, releasable_to=["UZ"], retain_days=30)
        label = label.model_copy(update={"category": Category.INTELLIGENCE})
        sent = az.submit(label, report("to UZ", label.grading), ["UZ"])
    finally:
        az.close()
    assert [e["detail"]["agreement"] for e in set_aside] == ["AZ-UZ"]  # type: ignore[index]
    assert sent.outcomes[0].reason == "NO_AGREEMENT"


def test_a_roster_rollback_is_refused_and_audited_by_every_node(revoked: Revoked) -> None:
    # SPEC §5.3: version 1 again, signed as it was by the secretariat, lifts no revocation.
    old = revoked.root / "rosters" / "roster-v1.json"
    published = intelshare(revoked.root, "roster", "publish", "--file", str(old), *(f"--to={m}" for m in RUNNING))
    assert published.returncode == 1, published.stdout + published.stderr
    for member in RUNNING:
        desk = revoked.fed.desk(member)
        try:
            rollbacks = roster_events(desk, "ROSTER_ROLLBACK")
        finally:
            desk.close()
        assert [e["peer"] for e in rollbacks] == ["urn:intelshare:secretariat"], member
    envelope = revoked.sim.envelope(revoked.sim.item("UZ", releasable_to=("TR",)), sender="UZ", recipient="TR")
    assert revoked.sim.receipt(revoked.sim.send(envelope, to="TR", tls="UZ"), "TR").reason == "KEY_REVOKED"


def test_a_node_that_was_down_catches_up_from_its_peers(revoked: Revoked) -> None:
    # SPEC §11.12: KG was down, and its roster file is still version 1; the nodes that
    # applied version 2 pass it on until KG acknowledges it.
    kg = revoked.fed.nodes["KG"]
    config = kg.config_path.read_text(encoding="utf-8")
    kg.config_path.write_text(config.replace('"../../roster.json"', '"../../rosters/roster-v1.json"'), encoding="utf-8")
    kg.start()
    try:
        desk = kg.desk()
        try:
            assert eventually(lambda: bool(roster_events(desk, "ROSTER_HELD")), timeout=45)
            (held,) = roster_events(desk, "ROSTER_HELD")
        finally:
            desk.close()
        assert held["peer"] in RUNNING
        envelope = revoked.sim.envelope(revoked.sim.item("UZ", releasable_to=("KG",)), sender="UZ", recipient="KG")
        assert revoked.sim.receipt(revoked.sim.send(envelope, to="KG", tls="UZ"), "KG").reason == "KEY_REVOKED"
    finally:
        kg.stop()
        kg.config_path.write_text(config, encoding="utf-8")


def test_a_revocation_stops_no_node_from_restarting(revoked: Revoked) -> None:
    # SPEC §6.2: TR is no party to AZ-UZ and does not read it; AZ is, and sets it aside.
    for member in ("TR", "AZ"):
        node = revoked.fed.nodes[member]
        node.stop()
        node.start()
    az = revoked.fed.desk("AZ")
    try:
        started = az.audit(event="NODE_STARTED")[-1]["detail"]
    finally:
        az.close()
    assert started["roster_version"] == 2  # type: ignore[index]
    assert "AZ-UZ:1" not in started["agreements"]  # type: ignore[index]


# --------------------------------------------------------------- a member joins and leaves


def _agreement_file(root: Path, a: str, b: str) -> Path:
    agreement = Agreement(
        agreement_id=f"{a}-{b}",
        version=1,
        parties=(a, b),
        valid_from=datetime.now(UTC) - timedelta(days=1),
        valid_until=datetime.now(UTC) + timedelta(days=365),
        ceilings={a: Band.CONFIDENTIAL, b: Band.CONFIDENTIAL},
        categories=(Category.INTELLIGENCE,),
        topics=("terrorism",),
        max_retention_days=365,
        raw_data_allowed=False,
        trust_model=TrustModel.HIGH_TRUST,
    )
    keys = [SigningKey.from_json((root / "nodes" / p / "signing.key").read_text()) for p in (a, b)]
    path = root / "agreements" / f"{a}-{b}.json"
    path.write_bytes(sign(PayloadType.AGREEMENT, agreement, keys).to_bytes())
    return path


TJ_MARKINGS = ("UNCLASSIFIED=ОШКОРО", "RESTRICTED=БАРОИ ИСТИФОДАИ ХИЗМАТӢ", "CONFIDENTIAL=МАХФӢ")


def test_a_member_added_and_removed_on_a_running_federation(tmp_path: Path, federation_file: Path) -> None:
    # SPEC §11.12: TJ joins while TR and KZ run, shares an item with TR, then leaves.
    root = tmp_path / "fed"
    fed = LocalFederation.create(federation_file, root)
    with fed.running(["TR", "KZ"]):
        marks = [f"--marking={m}" for m in TJ_MARKINGS]
        added = intelshare(
            root, "roster", "add-member", "--member", "TJ", "--state", "Tajikistan", "--service", "GKNB", *marks
        )
        assert added.returncode == 0, added.stderr
        published = intelshare(root, "roster", "publish", "--to", "TR", "--to", "KZ")
        assert published.returncode == 0, published.stdout + published.stderr
        _agreement_file(root, "TJ", "TR")
        tr = fed.desk("TR")
        assert eventually(lambda: any(e["reason"] == "AGREEMENT_HELD" for e in tr.audit(event="AGREEMENT_UPDATED")))
        tj = NodeProcess("TJ", root / "nodes" / "TJ" / "node.toml")
        tj.start()
        try:
            desk = tj.desk()
            roster = roster_file(root)
            label = make_label(roster, "TJ", band=Band.CONFIDENTIAL, releasable_to=["TR"], retain_days=30)
            sent = desk.submit(label, report("from the new member", label.grading), ["TR"])
            settled = desk.wait_settled([o.envelope_id for o in sent.outcomes if o.allowed])
            assert [e.state for e in settled.values()] == ["delivered"]
            assert tr.read(sent.item_id).item_json

            sim = PeerSimulator(root)
            late = sim.envelope(sim.item("TJ", releasable_to=("TR",)), sender="TJ", recipient="TR")
            removed = intelshare(root, "roster", "remove-member", "--member", "TJ")
            assert removed.returncode == 0, removed.stderr
            published = intelshare(root, "roster", "publish", "--to", "TR", "--to", "KZ", "--to", "TJ")
            assert published.returncode == 0, published.stdout + published.stderr
            # TR refuses TJ at once: no roster member has its certificate any more (SPEC §11.2).
            with pytest.raises(grpc.RpcError) as refused:
                sim.send(late, to="TR", tls="TJ")
            sim.close()
            assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined]
            assert any(e["reason"] == "UNKNOWN_PEER" for e in tr.audit(event="CONNECTION_REFUSED"))
            assert any(e["reason"] == "AGREEMENT_SET_ASIDE" for e in tr.audit(event="AGREEMENT_UPDATED"))
            back = make_label(roster_file(root), "TR", band=Band.CONFIDENTIAL, releasable_to=["TJ"], retain_days=30)
            assert (
                tr.submit(back, report("to a former member", back.grading), ["TJ"]).outcomes[0].reason
                == "UNKNOWN_MEMBER"
            )
            assert tj.process is not None
            assert tj.process.poll() is None  # the removed member's node keeps running, refused by all
            desk.close()
        finally:
            tj.stop()
            tr.close()


# --------------------------------------------------------------- keys rotate with envelopes in flight


def _served_fingerprint(root: Path, endpoint: str, client: str) -> str:
    """The SHA-256 of the certificate a node's server presents to a new connection."""
    host, port = endpoint.rsplit(":", 1)
    context = ssl.create_default_context(cafile=str(root / "ca.pem"))
    node_dir = root / "nodes" / client
    context.load_cert_chain(str(node_dir / "tls.pem"), str(node_dir / "tls.key"))
    context.set_alpn_protocols(["h2"])
    with (
        socket.create_connection((host, int(port)), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return hashlib.sha256(der).hexdigest()


def test_keys_rotated_with_envelopes_in_flight_lose_nothing(tmp_path: Path, federation_file: Path) -> None:
    # SPEC §5.4.3, §5.4.4, §11.12: KZ seals five items to TR while TR is down; then both
    # rotate every key. TR comes back under the new roster: KZ's headers under its retired
    # key still verify, and TR opens what was sealed to its previous HPKE key.
    root = tmp_path / "fed"
    fed = LocalFederation.create(federation_file, root)
    with fed.running(["KZ", "TR"]):
        kz = fed.desk("KZ")
        kz_pid = fed.nodes["KZ"].process.pid  # type: ignore[union-attr]
        fed.nodes["TR"].stop()
        titles = {}
        for n in range(5):
            label = make_label(fed.roster, "KZ", band=Band.SECRET, releasable_to=["TR"], retain_days=30)
            sent = kz.submit(label, report(f"in flight {n}", label.grading), ["TR"])
            assert sent.outcomes[0].allowed
            titles[sent.item_id] = f"in flight {n}"
        assert len(kz.outbox(state="pending")) == 5
        for member in ("KZ", "TR"):
            rotated = intelshare(root, "roster", "rotate-key", "--member", member)
            assert rotated.returncode == 0, rotated.stderr
        published = intelshare(root, "roster", "publish", "--to", "KZ", "--to", "TR")
        assert published.returncode == 8, published.stdout  # TR is down
        roster = roster_file(root)
        kz_entry = roster.member("KZ")
        assert kz_entry is not None
        # KZ switched to its new certificate without a restart (SPEC §11.2).
        assert _served_fingerprint(root, kz_entry.endpoint, "KZ") == kz_entry.tls_fingerprint
        assert fed.nodes["KZ"].process.pid == kz_pid  # type: ignore[union-attr]

        fed.nodes["TR"].start()
        tr = fed.desk("TR")
        assert eventually(lambda: set(titles) <= {e.item_id for e in tr.inbox()}, timeout=60)
        for item_id, title in titles.items():
            assert f'"title":"{title}"' in tr.read(item_id).item_json
        assert {e.state for e in kz.outbox()} == {"delivered"}
        # And what is sealed from now on uses the new keys on both sides.
        label = make_label(roster, "KZ", band=Band.SECRET, releasable_to=["TR"], retain_days=30)
        after = kz.submit(label, report("after the rotation", label.grading), ["TR"])
        assert [e.state for e in kz.wait_settled([o.envelope_id for o in after.outcomes]).values()] == ["delivered"]
        back = make_label(roster, "TR", band=Band.SECRET, releasable_to=["KZ"], retain_days=30)
        reply = tr.submit(back, report("from TR, new keys", back.grading), ["KZ"])
        assert [e.state for e in tr.wait_settled([o.envelope_id for o in reply.outcomes]).values()] == ["delivered"]
        kz.close()
        tr.close()


# --------------------------------------------------------------- a receiver behind on the roster


def _refusals(sim: PeerSimulator, batch: exchange_pb2.EnvelopeBatch, roster_version: int) -> exchange_pb2.ReceiptBatch:
    """TR's signed refusals of every envelope of ``batch``, answered under ``roster_version``."""
    now = datetime.now(UTC)
    receipts = []
    for position, message in enumerate(batch.envelopes, start=1):
        envelope = envelope_from_pb(message)
        header = EnvelopeHeader.from_bytes(envelope.header.payload)
        receipts.append(
            Receipt(
                envelope_id=header.envelope_id,
                envelope_digest=envelope.digest,
                sender="KZ",
                receiver="TR",
                accepted=False,
                reason="SENDER_SIGNATURE_INVALID",
                rule="§9.2.5",
                received_at=now,
                log_seq=position,
                log_leaf=sha256_hex(envelope.digest.encode()),
            )
        )
    signed = sign_many([(PayloadType.RECEIPT, r) for r in receipts], [sim.signing_key("TR")])
    return exchange_pb2.ReceiptBatch(
        receipts=[exchange_pb2.Receipt(statement=signed_to_pb(s)) for s in signed], roster_version=roster_version
    )


def test_a_refusal_from_a_receiver_behind_on_the_roster_is_retried_not_settled(
    tmp_path: Path, federation_file: Path
) -> None:
    # SPEC §11.12 (roster skew): KZ holds v2; "TR" answers under v1 and refuses. KZ keeps
    # the envelope pending and sends it again; the same refusal under v2 settles it.
    root = tmp_path / "fed"
    fed = LocalFederation.create(federation_file, root)
    sim = PeerSimulator(root)
    behind = [True]
    with fed.running(["KZ"]):
        assert intelshare(root, "roster", "revoke-key", "--member", "HU").returncode == 0
        assert intelshare(root, "roster", "publish", "--to", "KZ").returncode == 0
        kz = fed.desk("KZ")
        try:
            with FakeReceiver(sim, "TR", answer=lambda b: _refusals(sim, b, 1 if behind[0] else 2)) as fake:
                label = make_label(fed.roster, "KZ", band=Band.CONFIDENTIAL, releasable_to=["TR"], retain_days=30)
                sent = kz.submit(label, report("skew", label.grading), ["TR"])
                (envelope_id,) = [o.envelope_id for o in sent.outcomes]
                assert eventually(lambda: fake.received() >= 2, timeout=30)  # refused, and sent again
                (entry,) = [e for e in kz.outbox() if e.envelope_id == envelope_id]
                assert entry.state == "pending"
                assert "behind this node's roster" in entry.last_error
                behind[0] = False
                settled = kz.wait_settled([envelope_id], timeout=30)
        finally:
            kz.close()
    sim.close()
    assert settled[envelope_id].state == "refused"
    assert settled[envelope_id].reason == "SENDER_SIGNATURE_INVALID"
