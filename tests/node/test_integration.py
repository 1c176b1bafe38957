"""End to end over mutual TLS on loopback: real node processes, their desks, and an
attacker-controlled peer (``peer_simulator``) speaking to their ``Exchange`` service.

One federation (KZ, TR, AZ, UZ running) serves the module's non-destructive tests; the
crash and audit-tampering tests build their own two-node federation each.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest
from peer_simulator import Item, PeerSimulator
from sqlalchemy import make_url

from node.client import DeskClient, DeskError
from node.codec import envelope_to_pb
from node.harness import LocalFederation, make_label, written_since
from node.runtime.commit import UNSAFE_CRASH_ENV
from protocol.classification import Band
from protocol.consent import ConsentGrant, ConsentRequest
from protocol.encoding import sha256_hex
from protocol.envelope import Envelope, EnvelopeHeader
from protocol.item import ReportTemplate
from protocol.label import Category, Label
from protocol.notices import Recall
from protocol.policy import Reason
from protocol.receipt import Receipt
from protocol.statements import PayloadType, Signed, sign

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
FEDERATION_TOML = REPO / "examples" / "federation.toml"
T = TypeVar("T")


# --------------------------------------------------------------------------- helpers


def report(label: Label, title: str = "Cell on the Caspian coast") -> ReportTemplate:
    return ReportTemplate(title=title, summary="summary", body="body", assessment="assessment", grading=label.grading)


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 15.0) -> T:
    """Poll ``probe`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.05)


def share(desk: DeskClient, label: Label, recipients: list[str]) -> tuple[str, dict[str, Any]]:
    """Submit, check every recipient was allowed, wait for delivery; (item_id, outbox by id)."""
    result = desk.submit(label, report(label), recipients)
    assert [(o.recipient, o.allowed) for o in result.outcomes] == [(r, True) for r in recipients]
    settled = desk.wait_settled([o.envelope_id for o in result.outcomes])
    assert {e.state for e in settled.values()} == {"delivered"}
    return result.item_id, settled


def inbox_entry(desk: DeskClient, item_id: str) -> Any:
    entries = [e for e in desk.inbox(1000) if e.item_id == item_id]
    assert len(entries) == 1, entries
    return entries[0]


def request_state(desk: DeskClient, request_id: str, direction: str) -> Any:
    for r in desk.consent_requests():
        if r.request_id == request_id and r.direction == direction:
            return r
    return None


def db_path(fed: LocalFederation, member: str) -> Path:
    database = make_url(fed.nodes[member].config.database_url).database
    assert database is not None
    return Path(database)


def db_count(fed: LocalFederation, member: str, sql: str, *args: object) -> int:
    with sqlite3.connect(f"file:{db_path(fed, member)}?mode=ro", uri=True) as conn:
        return int(conn.execute(sql, args).fetchone()[0])


def audit_verify_cli(root: Path, member: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "node.cli", "audit", "verify", "--dir", str(root), "--member", member],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "COLUMNS": "240", "NO_COLOR": "1"},
        timeout=60,
        check=False,
    )


def assert_audit_verifies(root: Path, member: str) -> None:
    done = audit_verify_cli(root, member)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "verifies" in done.stdout


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFederation]:
    federation = LocalFederation.create(FEDERATION_TOML, tmp_path_factory.mktemp("fed") / "ots")
    with federation.running(["KZ", "TR", "AZ", "UZ"]):
        yield federation


@pytest.fixture(scope="module")
def desks(fed: LocalFederation) -> Iterator[dict[str, DeskClient]]:
    clients = {m: fed.desk(m) for m in ("KZ", "TR", "AZ", "UZ")}
    yield clients
    for client in clients.values():
        client.close()


@pytest.fixture(scope="module")
def sim(fed: LocalFederation) -> Iterator[PeerSimulator]:
    simulator = PeerSimulator(fed.root, deadline=5.0)
    yield simulator
    simulator.close()


def label(fed: LocalFederation, originator: str, **kwargs: Any) -> Label:
    kwargs.setdefault("band", Band.CONFIDENTIAL)
    kwargs.setdefault("retain_days", 90)
    return make_label(fed.roster, originator, **kwargs)


# --------------------------------------------------------------------------- 1. delivery


def test_delivery_shows_label_in_both_markings(fed: LocalFederation, desks: dict[str, DeskClient]) -> None:
    kz, tr = desks["KZ"], desks["TR"]
    lab = label(fed, "KZ", band=Band.SECRET, releasable_to=["TR"])
    item_id, settled = share(kz, lab, ["TR"])

    entry = inbox_entry(tr, item_id)
    assert (entry.originator, entry.sender, entry.status) == ("KZ", "KZ", "held")
    assert entry.originator_marking == "СЕКРЕТНО"  # KZ's marking, as signed
    assert entry.reader_marking == "GİZLİ"  # the same band in TR's marking
    read = tr.read(item_id)
    assert json.loads(read.item_json)["title"] == "Cell on the Caspian coast"
    (envelope_id,) = settled
    ingress = [e for e in tr.audit(event="INGRESS") if e["envelope_id"] == envelope_id]
    assert [(e["allowed"], e["reason"]) for e in ingress] == [(True, "ALLOWED")]
    confirmed = [e for e in kz.audit(event="DELIVERY_CONFIRMED") if e["envelope_id"] == envelope_id]
    assert [(e["allowed"], e["reason"]) for e in confirmed] == [(True, "ALLOWED")]


# --------------------------------------------------------------------------- 2. egress refusals


@pytest.mark.parametrize(
    ("recipient", "overrides", "reason"),
    [
        pytest.param("TR", {"releasable_to": []}, Reason.NOT_RELEASABLE, id="not-releasable"),
        pytest.param("UZ", {"releasable_to": ["UZ"]}, Reason.NO_AGREEMENT, id="no-agreement"),
        pytest.param(
            "TR", {"releasable_to": ["TR"], "band": Band.TOP_SECRET}, Reason.BAND_ABOVE_CEILING, id="band-above-ceiling"
        ),
        pytest.param(
            "AZ",
            {"releasable_to": ["AZ"], "category": Category.MILITARY},
            Reason.CATEGORY_NOT_COVERED,
            id="category-not-covered",
        ),
        pytest.param(
            "TR",
            {"releasable_to": ["TR"], "topics": ["irregular-migration"]},
            Reason.TOPIC_NOT_COVERED,
            id="topic-not-covered",
        ),
    ],
)
def test_egress_refusal(
    fed: LocalFederation, desks: dict[str, DeskClient], recipient: str, overrides: dict[str, Any], reason: Reason
) -> None:
    # SPEC §3.2: the node records the core's decision (reason and rule), not its own.
    kz = desks["KZ"]
    head = kz.status().audit_head
    lab = label(fed, "KZ", **overrides)
    result = kz.submit(lab, report(lab), [recipient])
    (outcome,) = result.outcomes
    assert (outcome.allowed, outcome.reason, outcome.envelope_id) == (False, reason.value, "")
    egress = [e for e in kz.audit(after_seq=head, event="EGRESS") if e["item_id"] == result.item_id]
    assert [(e["allowed"], e["reason"], e["peer"]) for e in egress] == [(False, reason.value, recipient)]
    assert not [e for e in kz.outbox() if e.item_id == result.item_id]
    assert not [e for e in desks[recipient].inbox(1000) if e.item_id == result.item_id]


def test_egress_reshare_without_consent_refused(fed: LocalFederation, desks: dict[str, DeskClient]) -> None:
    item_id, _ = share(desks["KZ"], label(fed, "KZ", releasable_to=["TR"]), ["TR"])
    (outcome,) = desks["TR"].reshare(item_id, ["AZ"]).outcomes
    assert (outcome.allowed, outcome.reason) == (False, Reason.THIRD_PARTY_WITHOUT_CONSENT.value)
    assert not [e for e in desks["AZ"].inbox(1000) if e.item_id == item_id]


def test_desk_refuses_a_label_this_node_cannot_originate(fed: LocalFederation, desks: dict[str, DeskClient]) -> None:
    # SPEC §11.8: the label's originator MUST be this node, its marking this node's for the band.
    kz = desks["KZ"]
    head = kz.status().audit_head
    foreign = label(fed, "TR", releasable_to=["KZ"])
    with pytest.raises(DeskError, match="cannot originate items for TR"):
        kz.submit(foreign, report(foreign), ["TR"])
    mismarked = label(fed, "KZ", releasable_to=["TR"]).model_copy(update={"originator_marking": "GİZLİ"})
    with pytest.raises(DeskError, match="marking for"):
        kz.submit(mismarked, report(mismarked), ["TR"])
    assert written_since(kz, head) == []  # refused before anything was written


# --------------------------------------------------------------------------- 3. consent


def test_consent_by_rule_reshare_and_recall(fed: LocalFederation, desks: dict[str, DeskClient]) -> None:
    # SPEC §10.1: the holder forwards the same signed recall, which AZ verifies.
    kz, tr, az = desks["KZ"], desks["TR"], desks["AZ"]
    item_id, _ = share(kz, label(fed, "KZ", releasable_to=["TR"]), ["TR"])

    # KZ's standing rule (examples/federation.toml): grant for AZ up to SECRET, deny the rest.
    asked = tr.ask_consent(item_id, "AZ", "joint operation on the Caspian coast")
    assert asked.state == "decided"
    granted = wait_for("grant at TR", lambda: request_state(tr, asked.request_id, "outgoing").state == "granted")
    assert granted
    assert request_state(kz, asked.request_id, "incoming").state == "granted"
    refused = tr.ask_consent(item_id, "UZ", "regional briefing")
    wait_for("denial at TR", lambda: request_state(tr, refused.request_id, "outgoing").state == "denied")

    # The grant travels with the item; AZ re-checks the chain and holds it.
    (outcome,) = tr.reshare(item_id, ["AZ"]).outcomes
    assert outcome.allowed, outcome
    assert tr.wait_settled([outcome.envelope_id])[outcome.envelope_id].state == "delivered"
    held = inbox_entry(az, item_id)
    assert (held.originator, held.sender, held.status) == ("KZ", "TR", "held")
    (grant_json,) = az.read(item_id).consent_chain_json
    grant = json.loads(grant_json)
    assert (grant["grantor"], grant["holder"], grant["grantee"], grant["transferable"]) == ("KZ", "TR", "AZ", False)
    ingress = [e for e in az.audit(event="INGRESS") if e["item_id"] == item_id]
    assert [(e["allowed"], len(e["detail"]["consents"])) for e in ingress] == [(True, 1)]

    # The grant was not transferable, and UZ was denied.
    (onward,) = az.reshare(item_id, ["UZ"]).outcomes
    assert onward.reason == Reason.CONSENT_NOT_TRANSFERABLE.value
    (to_uz,) = tr.reshare(item_id, ["UZ"]).outcomes
    assert to_uz.reason == Reason.THIRD_PARTY_WITHOUT_CONSENT.value

    # Recall: KZ tells TR, TR forwards the same signed notice to AZ.
    recalled = kz.recall(item_id, "source compromised")
    assert list(recalled.notified) == ["TR"]
    for desk in (tr, az):
        wait_for("recall", lambda d=desk: inbox_entry(d, item_id).status == "recalled")  # type: ignore[misc]
    with pytest.raises(DeskError, match="recalled"):
        az.read(item_id)
    (forwarded,) = [e for e in tr.audit(event="RECALL_RECEIVED") if e["item_id"] == item_id]
    assert forwarded["detail"]["forwarded_to"] == ["AZ"]
    (after_recall,) = tr.reshare(item_id, ["AZ"]).outcomes
    assert after_recall.reason == Reason.RECALLED.value


def test_consent_manual_grant_and_deny(fed: LocalFederation, desks: dict[str, DeskClient]) -> None:
    tr, az, kz = desks["TR"], desks["AZ"], desks["KZ"]  # TR decides consent by hand
    item_id, _ = share(tr, label(fed, "TR", releasable_to=["AZ"]), ["AZ"])

    ask = az.ask_consent(item_id, "KZ", "Caspian corridor")
    assert ask.state == "pending"
    incoming = wait_for("request at TR", lambda: request_state(tr, ask.request_id, "incoming"))
    assert (incoming.state, incoming.requester, incoming.third_party) == ("pending", "AZ", "KZ")
    decided = tr.decide(ask.request_id, grant=True, valid_days=7)
    assert decided.state == "granted"
    assert decided.grant_id
    wait_for("grant at AZ", lambda: request_state(az, ask.request_id, "outgoing").state == "granted")
    with pytest.raises(DeskError, match="already"):
        tr.decide(ask.request_id, grant=False)
    (outcome,) = az.reshare(item_id, ["KZ"]).outcomes
    assert outcome.allowed, outcome
    assert az.wait_settled([outcome.envelope_id])[outcome.envelope_id].state == "delivered"
    held = inbox_entry(kz, item_id)
    assert (held.originator, held.sender) == ("TR", "AZ")

    deny = az.ask_consent(item_id, "UZ", "regional briefing")
    wait_for("request at TR", lambda: request_state(tr, deny.request_id, "incoming"))
    tr.decide(deny.request_id, grant=False, reason="not for onward release")
    denied = wait_for(
        "denial at AZ",
        lambda: (r := request_state(az, deny.request_id, "outgoing")) is not None and r.state == "denied" and r,
    )
    assert denied.reason == "not for onward release"
    (to_uz,) = az.reshare(item_id, ["UZ"]).outcomes
    assert to_uz.reason == Reason.THIRD_PARTY_WITHOUT_CONSENT.value


# --------------------------------------------------------------------------- 2. ingress attacks


def refused(
    fed: LocalFederation, sim: PeerSimulator, receiver: str, reason: Reason, attack: Callable[[], Signed]
) -> Receipt:
    """Run ``attack``; assert the signed receipt, the audit entry and an unchanged inbox."""
    desk = fed.desk(receiver)
    try:
        head = desk.status().audit_head
        inbox_before = {e.envelope_id for e in desk.inbox(1000)}
        rows_before = db_count(fed, receiver, "SELECT count(*) FROM inbox_items")
        receipt = sim.receipt(attack(), receiver)  # verifies the receiver's signature
        assert (receipt.accepted, receipt.reason, receipt.receiver) == (False, reason.value, receiver)
        entries = [
            e
            for e in desk.audit(after_seq=head, event="INGRESS")
            if e["detail"]["envelope_digest"] == receipt.envelope_digest
        ]
        assert [(e["allowed"], e["reason"], e["rule"]) for e in entries] == [(False, reason.value, receipt.rule)]
        assert {e.envelope_id for e in desk.inbox(1000)} == inbox_before
        assert db_count(fed, receiver, "SELECT count(*) FROM inbox_items") == rows_before
        return receipt
    finally:
        desk.close()


def kz_item(sim: PeerSimulator, **kwargs: Any) -> Item:
    kwargs.setdefault("releasable_to", ("TR",))
    return sim.item("KZ", **kwargs)


def test_accepts_a_well_formed_envelope(fed: LocalFederation, sim: PeerSimulator) -> None:
    # SPEC §11.1: the node serves Deliver.
    envelope = sim.envelope(kz_item(sim), sender="KZ", recipient="TR")
    receipt = sim.receipt(sim.send(envelope, to="TR", tls="KZ"), "TR")
    assert (receipt.accepted, receipt.reason, receipt.envelope_digest) == (True, "ALLOWED", envelope.digest)


def test_tls_identity_differs_from_signed_sender(fed: LocalFederation, sim: PeerSimulator) -> None:
    """AZ's connection carries an envelope KZ signed: SENDER_IDENTITY_MISMATCH."""
    # SPEC §9.2.3
    envelope = sim.envelope(kz_item(sim), sender="KZ", recipient="TR")
    refused(fed, sim, "TR", Reason.SENDER_IDENTITY_MISMATCH, lambda: sim.send(envelope, to="TR", tls="AZ"))


def test_forged_sender_signature(fed: LocalFederation, sim: PeerSimulator) -> None:
    envelope = sim.envelope(kz_item(sim), sender="KZ", recipient="TR", sign_as="AZ")
    refused(fed, sim, "TR", Reason.SENDER_SIGNATURE_INVALID, lambda: sim.send(envelope, to="TR", tls="KZ"))


def test_tampered_header(fed: LocalFederation, sim: PeerSimulator) -> None:
    envelope = sim.envelope(kz_item(sim), sender="KZ", recipient="TR")
    header = EnvelopeHeader.from_bytes(envelope.header.payload)
    edited = sim.tamper_payload(envelope.header, lambda _: header.model_copy(update={"nonce": "0" * 32}).to_bytes())
    forged = Envelope(edited, envelope.origin, envelope.consents, envelope.ciphertext)
    refused(fed, sim, "TR", Reason.SENDER_SIGNATURE_INVALID, lambda: sim.send(forged, to="TR", tls="KZ"))


def test_origin_signed_by_someone_else(fed: LocalFederation, sim: PeerSimulator) -> None:
    item = sim.attest(sim.label("KZ", releasable_to=("TR",)), signer="AZ")
    envelope = sim.envelope(item, sender="KZ", recipient="TR")
    refused(fed, sim, "TR", Reason.ORIGIN_SIGNATURE_INVALID, lambda: sim.send(envelope, to="TR", tls="KZ"))


def test_tampered_label_widens_release(fed: LocalFederation, sim: PeerSimulator) -> None:
    item = kz_item(sim, releasable_to=())
    widened = sim.tamper_payload(item.origin, lambda b: b.replace(b'"releasable_to":[]', b'"releasable_to":["TR"]', 1))
    assert widened.payload != item.origin.payload
    envelope = sim.envelope(Item(widened, item.plaintext), sender="KZ", recipient="TR")
    refused(fed, sim, "TR", Reason.ORIGIN_SIGNATURE_INVALID, lambda: sim.send(envelope, to="TR", tls="KZ"))


def test_label_in_another_members_marking(fed: LocalFederation, sim: PeerSimulator) -> None:
    envelope = sim.envelope(kz_item(sim, marking="ÖZEL"), sender="KZ", recipient="TR")  # TR's word
    refused(fed, sim, "TR", Reason.LABEL_INVALID, lambda: sim.send(envelope, to="TR", tls="KZ"))


def test_envelope_for_another_receiver(fed: LocalFederation, sim: PeerSimulator) -> None:
    envelope = sim.envelope(kz_item(sim, releasable_to=("AZ", "TR")), sender="KZ", recipient="AZ")
    refused(fed, sim, "TR", Reason.NOT_ADDRESSED_TO_RECEIVER, lambda: sim.send(envelope, to="TR", tls="KZ"))


@pytest.mark.parametrize("shift", [timedelta(days=-8), timedelta(hours=1)], ids=["stale", "future"])
def test_timestamp_out_of_window(fed: LocalFederation, sim: PeerSimulator, shift: timedelta) -> None:
    envelope = sim.envelope(kz_item(sim), sender="KZ", recipient="TR", now=datetime.now(UTC) + shift)
    refused(fed, sim, "TR", Reason.TIMESTAMP_OUT_OF_WINDOW, lambda: sim.send(envelope, to="TR", tls="KZ"))


def test_replayed_envelope_id_and_nonce(fed: LocalFederation, sim: PeerSimulator) -> None:
    item = kz_item(sim)
    first = sim.envelope(item, sender="KZ", recipient="TR")
    assert sim.receipt(sim.send(first, to="TR", tls="KZ"), "TR").accepted
    header = EnvelopeHeader.from_bytes(first.header.payload)
    same_id = sim.resign_header(first, "KZ", created_at=header.created_at + timedelta(seconds=1))
    refused(fed, sim, "TR", Reason.REPLAY, lambda: sim.send(same_id, to="TR", tls="KZ"))
    same_nonce = sim.resign_header(sim.envelope(item, sender="KZ", recipient="TR"), "KZ", nonce=header.nonce)
    refused(fed, sim, "TR", Reason.REPLAY, lambda: sim.send(same_nonce, to="TR", tls="KZ"))
    assert db_count(fed, "TR", "SELECT count(*) FROM inbox_items WHERE item_id = ?", item.item_id) == 1


def test_unknown_sender(fed: LocalFederation, sim: PeerSimulator) -> None:
    envelope = sim.resign_header(sim.envelope(kz_item(sim), sender="KZ", recipient="TR"), "KZ", sender="XX")
    refused(fed, sim, "TR", Reason.UNKNOWN_MEMBER, lambda: sim.send(envelope, to="TR", tls="KZ"))


def test_unknown_originator(fed: LocalFederation, sim: PeerSimulator) -> None:
    lab = sim.label("KZ", releasable_to=("TR",)).model_copy(update={"originator": "XX"})
    envelope = sim.envelope(sim.attest(lab, signer="KZ"), sender="KZ", recipient="TR")
    refused(fed, sim, "TR", Reason.UNKNOWN_MEMBER, lambda: sim.send(envelope, to="TR", tls="KZ"))


def test_envelope_without_origin_is_malformed(fed: LocalFederation, sim: PeerSimulator) -> None:
    message = envelope_to_pb(sim.envelope(kz_item(sim), sender="KZ", recipient="TR"))
    message.ClearField("origin")
    receipt = refused(fed, sim, "TR", Reason.ENVELOPE_MALFORMED, lambda: sim.send(message, to="TR", tls="KZ"))
    assert receipt.envelope_digest == sha256_hex(b"")  # nothing signed could be identified


def test_header_that_does_not_parse_is_malformed(fed: LocalFederation, sim: PeerSimulator) -> None:
    envelope = sim.envelope(kz_item(sim), sender="KZ", recipient="TR")
    garbled = Envelope(
        sim.tamper_payload(envelope.header, lambda b: b[:-7]), envelope.origin, envelope.consents, envelope.ciphertext
    )
    refused(fed, sim, "TR", Reason.ENVELOPE_MALFORMED, lambda: sim.send(garbled, to="TR", tls="KZ"))


def test_sealed_to_another_key_is_unopenable(fed: LocalFederation, sim: PeerSimulator) -> None:
    envelope = sim.envelope(kz_item(sim), sender="KZ", recipient="TR", hpke_of="AZ")
    refused(fed, sim, "TR", Reason.ENVELOPE_UNOPENABLE, lambda: sim.send(envelope, to="TR", tls="KZ"))


def test_third_party_without_consent_at_ingress(fed: LocalFederation, sim: PeerSimulator) -> None:
    """TR skips its own egress check and passes KZ's item straight to AZ."""
    envelope = sim.envelope(kz_item(sim), sender="TR", recipient="AZ")
    refused(fed, sim, "AZ", Reason.THIRD_PARTY_WITHOUT_CONSENT, lambda: sim.send(envelope, to="AZ", tls="TR"))


def test_forged_consent_at_ingress(fed: LocalFederation, sim: PeerSimulator) -> None:
    """TR writes itself a grant in KZ's name, signed with its own key."""
    item = kz_item(sim)
    now = datetime.now(UTC)
    forged = sign(
        PayloadType.CONSENT_GRANT,
        ConsentGrant(
            grant_id="ab" * 16,
            item_id=item.item_id,
            item_version=1,
            origin_digest=item.origin.digest,
            grantor="KZ",
            holder="TR",
            grantee="AZ",
            expires_at=now + timedelta(days=1),
            issued_at=now,
        ),
        [sim.signing_key("TR")],
    )
    envelope = sim.envelope(item, sender="TR", recipient="AZ", consents=(forged,))
    refused(fed, sim, "AZ", Reason.CONSENT_INVALID, lambda: sim.send(envelope, to="AZ", tls="TR"))


def test_band_above_ceiling_at_ingress(fed: LocalFederation, sim: PeerSimulator) -> None:
    # SPEC §3.2, §9.1: the receiving node runs the core's checks again.
    envelope = sim.envelope(kz_item(sim, band=Band.TOP_SECRET), sender="KZ", recipient="TR")
    refused(fed, sim, "TR", Reason.BAND_ABOVE_CEILING, lambda: sim.send(envelope, to="TR", tls="KZ"))


def test_not_releasable_at_ingress(fed: LocalFederation, sim: PeerSimulator) -> None:
    envelope = sim.envelope(kz_item(sim, releasable_to=()), sender="KZ", recipient="TR")
    refused(fed, sim, "TR", Reason.NOT_RELEASABLE, lambda: sim.send(envelope, to="TR", tls="KZ"))


def test_category_not_covered_at_ingress(fed: LocalFederation, sim: PeerSimulator) -> None:
    envelope = sim.envelope(
        kz_item(sim, releasable_to=("AZ",), category=Category.MILITARY), sender="KZ", recipient="AZ"
    )
    refused(fed, sim, "AZ", Reason.CATEGORY_NOT_COVERED, lambda: sim.send(envelope, to="AZ", tls="KZ"))


def test_recall_forged_by_a_holder(fed: LocalFederation, desks: dict[str, DeskClient], sim: PeerSimulator) -> None:
    """TR signs a recall of KZ's item in KZ's name; AZ keeps the item."""
    item = kz_item(sim, releasable_to=("AZ",))
    assert sim.receipt(sim.send(sim.envelope(item, sender="KZ", recipient="AZ"), to="AZ", tls="KZ"), "AZ").accepted
    forged = sign(
        PayloadType.RECALL,
        Recall(
            recall_id="cd" * 16,
            item_id=item.item_id,
            item_version=1,
            origin_digest=item.origin.digest,
            originator="KZ",
            reason="forged",
            issued_at=datetime.now(UTC),
        ),
        [sim.signing_key("TR")],
    )
    head = desks["AZ"].status().audit_head
    ack = sim.send_statement("Notify", forged, to="AZ", tls="TR")
    assert (ack.accepted, ack.reason) == (False, Reason.ORIGIN_SIGNATURE_INVALID.value)
    assert inbox_entry(desks["AZ"], item.item_id).status == "held"
    (entry,) = desks["AZ"].audit(after_seq=head, event="RECALL_RECEIVED")
    assert (entry["peer"], entry["allowed"], entry["reason"]) == ("TR", False, Reason.ORIGIN_SIGNATURE_INVALID.value)


def test_consent_request_in_another_members_name(fed: LocalFederation, sim: PeerSimulator) -> None:
    """AZ's connection carries a consent request TR signed: refused, nothing recorded."""
    item = kz_item(sim)
    request = sign(
        PayloadType.CONSENT_REQUEST,
        ConsentRequest(
            request_id="ef" * 16,
            item_id=item.item_id,
            item_version=1,
            origin_digest=item.origin.digest,
            requester="TR",
            third_party="AZ",
            purpose="forged",
            requested_at=datetime.now(UTC),
        ),
        [sim.signing_key("TR")],
    )
    ack = sim.send_statement("RequestConsent", request, to="KZ", tls="AZ")
    assert (ack.accepted, ack.reason) == (False, Reason.SENDER_IDENTITY_MISMATCH.value)


# --------------------------------------------------------------------------- 4. idempotence


def test_same_envelope_bytes_twice(fed: LocalFederation, sim: PeerSimulator) -> None:
    envelope = sim.envelope(kz_item(sim), sender="KZ", recipient="TR")
    data = envelope_to_pb(envelope).SerializeToString()
    first = sim.send_bytes(data, to="TR", tls=sim.tls("KZ"))
    second = sim.send_bytes(data, to="TR", tls=sim.tls("KZ"))
    assert first.model_dump_json() == second.model_dump_json()
    assert sim.receipt(first, "TR").accepted
    envelope_id = EnvelopeHeader.from_bytes(envelope.header.payload).envelope_id
    assert db_count(fed, "TR", "SELECT count(*) FROM inbox_items WHERE envelope_id = ?", envelope_id) == 1
    assert db_count(fed, "TR", "SELECT count(*) FROM deliveries WHERE envelope_id = ?", envelope_id) == 1


# --------------------------------------------------------------------------- 6. handshake


def _rpc_error(fn: Callable[[], object]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        fn()
    return caught.value


def test_unknown_ca_client_refused_at_handshake(fed: LocalFederation, sim: PeerSimulator) -> None:
    envelope = sim.envelope(kz_item(sim), sender="KZ", recipient="TR")
    error = _rpc_error(lambda: sim.send(envelope, to="TR", tls=sim.unknown_ca_cert("KZ")))
    assert error.code() is grpc.StatusCode.UNAVAILABLE


def test_no_client_certificate_refused_at_handshake(fed: LocalFederation, sim: PeerSimulator) -> None:
    envelope = sim.envelope(kz_item(sim), sender="KZ", recipient="TR")
    error = _rpc_error(lambda: sim.send(envelope, to="TR", tls=sim.no_client_cert()))
    assert error.code() is grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize("claims", ["XX", "KZ"], ids=["not-a-member", "member-san-other-key"])
def test_ca_issued_certificate_not_in_roster(
    fed: LocalFederation, desks: dict[str, DeskClient], sim: PeerSimulator, claims: str
) -> None:
    """A certificate from the federation CA that the roster does not name is refused."""
    # SPEC §11.2: a member's SAN with another key: the fingerprint MUST match.
    head = desks["TR"].status().audit_head
    envelope = sim.envelope(kz_item(sim), sender="KZ", recipient="TR")
    error = _rpc_error(lambda: sim.send(envelope, to="TR", tls=sim.federation_ca_cert(claims)))
    assert error.code() is grpc.StatusCode.PERMISSION_DENIED
    entries = written_since(desks["TR"], head)
    assert [(e["event"], e["reason"]) for e in entries] == [("CONNECTION_REFUSED", "UNKNOWN_PEER")]


# --------------------------------------------------------------------------- 5. kill -9


def _pair(root: Path) -> LocalFederation:
    """KZ and TR only; KZ retries at most 0.5 s apart so restarts are noticed quickly."""
    fed = LocalFederation.create(FEDERATION_TOML, root)
    config = fed.nodes["KZ"].config_path
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("retry_max_seconds = 10.0", "retry_max_seconds = 0.5"), encoding="utf-8")
    assert fed.nodes["KZ"].config.delivery.retry_max_seconds == 0.5
    return fed


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[LocalFederation]:
    fed = _pair(tmp_path / "ots")
    try:
        yield fed
    finally:
        fed.stop()


def test_kill9_between_commit_and_reply(pair: LocalFederation) -> None:
    # SPEC §11.7: the test hook makes a node exit unanswered after a commit: never in production.
    kz_node, tr_node = pair.nodes["KZ"], pair.nodes["TR"]
    kz_node.start()
    tr_node.start(extra_env={UNSAFE_CRASH_ENV: "1"})
    kz = pair.desk("KZ")
    try:
        lab = label(pair, "KZ", releasable_to=["TR"])
        result = kz.submit(lab, report(lab), ["TR"])
        (outcome,) = result.outcomes
        assert tr_node.process is not None
        assert tr_node.process.wait(timeout=15) == 137  # committed, then died before replying
        tr_node.kill9()
        assert db_count(pair, "TR", "SELECT count(*) FROM inbox_items WHERE item_id = ?", result.item_id) == 1
        assert {e.state for e in kz.outbox()} == {"pending"}

        tr_node.start()  # normally, this time
        settled = kz.wait_settled([outcome.envelope_id], timeout=20)
        assert settled[outcome.envelope_id].state == "delivered"
        assert settled[outcome.envelope_id].attempts >= 2
        tr = pair.desk("TR")
        entries = [e for e in tr.inbox() if e.item_id == result.item_id]
        tr.close()
        assert len(entries) == 1
        assert db_count(pair, "TR", "SELECT count(*) FROM deliveries") == 1
    finally:
        kz.close()
    pair.stop()
    assert_audit_verifies(pair.root, "TR")
    assert_audit_verifies(pair.root, "KZ")


def test_kill9_loop(pair: LocalFederation) -> None:
    # SPEC §11.3, §11.7: every cycle TR dies right after its N-th ingress commit, before replying
    # (the unsafe test hook, never timing); KZ re-delivers, and each item lands exactly once.
    rng = random.Random(20261122)
    kz_node, tr_node = pair.nodes["KZ"], pair.nodes["TR"]
    kz_node.start()
    kz = pair.desk("KZ")
    envelope_ids: list[str] = []
    cycles, crashes = 6, 0

    def submit(count: int) -> None:
        for _ in range(count):
            lab = label(pair, "KZ", releasable_to=["TR"])
            (outcome,) = kz.submit(lab, report(lab), ["TR"]).outcomes
            envelope_ids.append(outcome.envelope_id)

    try:
        for _ in range(cycles):
            submit(rng.randint(0, 2))  # while TR is down
            tr_node.start(extra_env={UNSAFE_CRASH_ENV: str(rng.randint(1, 3))})
            assert tr_node.process is not None
            deadline = time.monotonic() + 60  # a safety net only: TR exits after its N-th commit
            while tr_node.process.poll() is None:
                assert time.monotonic() < deadline, "TR never reached its crash point"
                submit(1)
                time.sleep(0.1)
            crashes += tr_node.process.returncode == 137
            tr_node.kill9()  # reaps it
        tr_node.start()
        settled = kz.wait_settled(envelope_ids, timeout=40)
    finally:
        kz.close()

    states = Counter(e.state for e in settled.values())
    assert states == Counter({"delivered": len(envelope_ids)}), states
    delivered = {e.envelope_id: e.item_id for e in settled.values() if e.state == "delivered"}
    tr = pair.desk("TR")
    try:
        inbox = tr.inbox(limit=100_000)
    finally:
        tr.close()
    by_item = Counter(e.item_id for e in inbox)
    assert set(by_item) == set(delivered.values())
    assert max(by_item.values()) == 1  # no item twice
    assert {e.envelope_id: e.item_id for e in inbox} == delivered
    assert db_count(pair, "TR", "SELECT count(*) FROM deliveries") == len(delivered)
    pair.stop()
    assert crashes == cycles  # every cycle crashed between a commit and its reply
    assert_audit_verifies(pair.root, "TR")
    assert_audit_verifies(pair.root, "KZ")


# --------------------------------------------------------------------------- 8. audit verify CLI


def test_audit_verify_cli_names_the_edited_entry(tmp_path: Path) -> None:
    fed = LocalFederation.create(FEDERATION_TOML, tmp_path / "ots")
    sim = PeerSimulator(fed.root, deadline=5.0)
    try:
        with fed.running(["KZ", "TR"]):
            kz = fed.desk("KZ")
            share(kz, label(fed, "KZ", releasable_to=["TR"]), ["TR"])
            kz.close()
            envelope = sim.envelope(
                sim.item("KZ", band=Band.TOP_SECRET, releasable_to=("TR",)), sender="KZ", recipient="TR"
            )
            receipt = sim.receipt(sim.send(envelope, to="TR", tls="KZ"), "TR")
            assert receipt.reason == Reason.BAND_ABOVE_CEILING.value
    finally:
        sim.close()
    assert_audit_verifies(fed.root, "TR")

    with sqlite3.connect(db_path(fed, "TR")) as conn:
        (seq,) = conn.execute(
            "SELECT seq FROM audit_log WHERE event = 'INGRESS' AND reason = 'BAND_ABOVE_CEILING'"
        ).fetchone()
        conn.execute("UPDATE audit_log SET reason = 'ALLOWED', allowed = 1 WHERE seq = ?", (seq,))
    done = audit_verify_cli(fed.root, "TR")
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"entry {seq}:" in done.stdout + done.stderr
