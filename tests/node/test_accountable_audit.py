"""Accountable audit across nodes (SPEC §10.3, §11.3, §11.10): witnessing, verification,
reconciliation, tracing and bundles, over a federation of real node processes.

One federation (KZ, TR, AZ) plays a short history once: KZ shares an item with TR, TR
asks KZ's consent and re-shares it to AZ, KZ shares a second item, an attacker-controlled
peer sends TR an envelope it refuses, and KZ recalls the first item; the nodes witness
each other's logs throughout. Each test then works on its own copy of the stopped
federation. The insider (``node.insider.Insider``) rewrites a node's log with the node's own
key and covers every trace inside that node's database; only what the other members
hold can name the rewrite. One named test per rewrite (SPEC §11.10.7).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from peer_simulator import PeerSimulator
from test_integration import FEDERATION_TOML, REPO, inbox_entry, request_state, share, wait_for

from node import audit
from node.audit.bundle import BundleError, open_bundle
from node.audit.reconcile import MismatchKind, reconcile
from node.audit.sources import AuditView, bundle_view, federation_view, pins_for, roster_from_bundles
from node.config.material import read_secretariat
from node.harness import LocalFederation, make_label
from node.insider import Entry, Insider
from node.store import make_reader, make_sessionmaker
from protocol.bundle import BundleManifest
from protocol.classification import Band
from protocol.keys import SigningKey
from protocol.policy import Reason
from protocol.receipt import Receipt
from protocol.statements import PayloadType, Signed, sign

pytestmark = pytest.mark.integration

MEMBERS = ("KZ", "TR", "AZ")
WITNESS_EVENTS = ("CHECKPOINT_WITNESSED", "COSIGNATURE_RECEIVED")


@dataclass(frozen=True)
class History:
    """The stopped federation after the history, and the ids the tests look for."""

    root: Path
    first: str  # shared KZ -> TR, re-shared TR -> AZ, recalled
    second: str  # shared KZ -> TR


# --------------------------------------------------------------------------- helpers


def db(root: Path, member: str) -> Path:
    return root / "nodes" / member / "node.db"


def query(root: Path, member: str, sql: str, *args: object) -> list[tuple[Any, ...]]:
    with sqlite3.connect(f"file:{db(root, member)}?mode=ro", uri=True) as conn:
        return conn.execute(sql, args).fetchall()


def execute(root: Path, member: str, sql: str, *args: object) -> None:
    """An insider's plain SQL, for rows reconciliation reads (no re-chaining needed there)."""
    with sqlite3.connect(db(root, member)) as conn:
        assert conn.execute(sql, args).rowcount >= 1, sql


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "node.cli", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "COLUMNS": "240", "NO_COLOR": "1"},
        timeout=120,
        check=False,
    )


def verify(view: AuditView, member: str) -> audit.AuditReport:
    pins = pins_for(view, member)
    engine = make_reader(view.sources[member].url)
    try:
        with make_sessionmaker(engine)() as session:
            return audit.verify(session, roster=view.roster, member=member, pins=pins)
    finally:
        engine.dispose()


def last_real_entry(root: Path, member: str) -> int:
    """The last entry of a log that is not about witnessing (witnessing alone starts no exchange)."""
    marks = ",".join("?" * len(WITNESS_EVENTS))
    ((seq,),) = query(root, member, f"SELECT max(seq) FROM audit_log WHERE event NOT IN ({marks})", *WITNESS_EVENTS)
    return int(seq)


def witnessed_size(root: Path, member: str) -> int:
    """The largest size of ``member``'s log that a peer co-signed."""
    sql = "SELECT coalesce(max(size), 0) FROM witnessed_checkpoints WHERE member = ?"
    return max(int(query(root, peer, sql, member)[0][0]) for peer in MEMBERS if peer != member)


def seq_of(root: Path, member: str, event: str, item_id: str) -> int:
    ((seq,),) = query(root, member, "SELECT seq FROM audit_log WHERE event = ? AND item_id = ?", event, item_id)
    return int(seq)


def without(seq: int) -> Any:
    return lambda entries: [e for e in entries if e["seq"] != seq]


def kinds(root: Path) -> set[str]:
    return {m.kind for m in reconcile(federation_view(root))}


def assert_names(report: audit.AuditReport, first_altered: int) -> None:
    """The report fails and bounds the first altered entry: it names it, or a range that holds it."""
    assert not report.ok
    assert report.first_altered is not None
    assert report.first_altered <= first_altered, report.problems
    problem = next(p for p in report.problems if p.seq == report.first_altered)
    assert problem.kind in ("witness_mismatch", "truncated"), problem
    assert f"entry {first_altered}" in problem.message or ".." in problem.message, problem


# --------------------------------------------------------------------------- the history


def _play(fed: LocalFederation) -> History:
    kz, tr, az = (fed.desk(m) for m in MEMBERS)
    sim = PeerSimulator(fed.root, deadline=5.0)
    try:
        label = make_label(fed.roster, "KZ", band=Band.CONFIDENTIAL, retain_days=90, releasable_to=["TR"])
        first, _ = share(kz, label, ["TR"])
        asked = tr.ask_consent(first, "AZ", "joint operation on the Caspian coast")
        wait_for("grant at TR", lambda: request_state(tr, asked.request_id, "outgoing").state == "granted")
        (outcome,) = tr.reshare(first, ["AZ"]).outcomes
        assert tr.wait_settled([outcome.envelope_id])[outcome.envelope_id].state == "delivered"
        second, _ = share(
            kz, make_label(fed.roster, "KZ", band=Band.RESTRICTED, retain_days=90, releasable_to=["TR"]), ["TR"]
        )
        refused = sim.envelope(sim.item("KZ", band=Band.TOP_SECRET, releasable_to=("TR",)), sender="KZ", recipient="TR")
        assert sim.receipt(sim.send(refused, to="TR", tls="KZ"), "TR").reason == Reason.BAND_ABOVE_CEILING.value
        kz.recall(first, "source compromised")
        wait_for("AZ applied the recall", lambda: inbox_entry(az, first).status == "recalled")
        wait_for(
            "both holders' acknowledgements at KZ",
            lambda: {e["detail"]["holder"] for e in kz.audit(event="NOTICE_ACKNOWLEDGED")} == {"TR", "AZ"},
        )
        for member in MEMBERS:  # every log co-signed by a peer up to its last real entry
            wait_for(
                f"{member}'s log witnessed",
                lambda m=member: witnessed_size(fed.root, m) >= last_real_entry(fed.root, m),  # type: ignore[misc]
                timeout=60,
            )
        return History(fed.root, first, second)
    finally:
        sim.close()
        for desk in (kz, tr, az):
            desk.close()


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> History:
    fed = LocalFederation.create(FEDERATION_TOML, tmp_path_factory.mktemp("audit") / "ots")
    for member in MEMBERS:  # witness often, so the history is witnessed within seconds
        config = fed.nodes[member].config_path
        config.write_text(config.read_text(encoding="utf-8") + "\n[witness]\ninterval_seconds = 0.3\n", "utf-8")
    with fed.running(list(MEMBERS)):
        return _play(fed)


@pytest.fixture
def copy(history: History, tmp_path: Path) -> History:
    """This test's own copy of the stopped federation."""
    root = tmp_path / "ots"
    shutil.copytree(history.root, root, ignore=shutil.ignore_patterns("*.sock"))
    return History(root, history.first, history.second)


# --------------------------------------------------------------------------- the honest federation


def test_every_log_is_cosigned_by_its_peers(history: History) -> None:
    # SPEC §11.10.6: each node asks its peers to witness; each keeps the other's cosignature.
    for member in MEMBERS:
        cosigned = query(history.root, member, "SELECT count(*) FROM audit_cosignatures")[0][0]
        assert cosigned > 0, member
        refused = query(
            history.root,
            member,
            "SELECT count(*) FROM audit_log WHERE event = ? AND NOT allowed",
            "CHECKPOINT_WITNESSED",
        )
        assert refused == [(0,)], member


def test_honest_logs_verify_against_what_peers_hold(history: History) -> None:
    view = federation_view(history.root)
    for member in MEMBERS:
        report = verify(view, member)
        assert report.ok, (member, report.problems)
        assert report.compared > 1, member  # its own checkpoints and its peers' pins were compared


def test_honest_logs_reconcile(history: History) -> None:
    done = cli("audit", "reconcile", "--dir", str(history.root))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "reconcile" in done.stdout


def test_acknowledgements_reach_the_originator_through_the_reshare(history: History) -> None:
    # SPEC §10.3: AZ's signed acknowledgement travels AZ -> TR -> KZ and names AZ's entry.
    acks = {
        holder: (via, seq, leaf)
        for holder, via, seq, leaf in query(
            history.root,
            "KZ",
            "SELECT json_extract(detail, '$.holder'), json_extract(detail, '$.via'), "
            "json_extract(detail, '$.holder_seq'), json_extract(detail, '$.holder_leaf') "
            "FROM audit_log WHERE event = 'NOTICE_ACKNOWLEDGED' AND allowed",
        )
    }
    assert {holder: via for holder, (via, _, _) in acks.items()} == {"TR": "TR", "AZ": "TR"}
    applied = seq_of(history.root, "AZ", "RECALL_RECEIVED", history.first)
    ((leaf,),) = query(history.root, "AZ", "SELECT entry_hash FROM audit_log WHERE seq = ?", applied)
    assert acks["AZ"][1:] == (applied, leaf)


def test_receipts_name_the_receivers_ingress_entry(history: History) -> None:
    # SPEC §11.3: the receipt TR signed names the seq and leaf of TR's INGRESS entry.
    ((receipt,),) = query(history.root, "KZ", "SELECT receipt FROM outbox WHERE item_id = ?", history.second)
    named = Receipt.from_bytes(Signed.model_validate_json(receipt).payload)
    ingress = seq_of(history.root, "TR", "INGRESS", history.second)
    ((leaf,),) = query(history.root, "TR", "SELECT entry_hash FROM audit_log WHERE seq = ?", ingress)
    assert (named.log_seq, named.log_leaf) == (ingress, leaf)


def test_trace_shows_the_path_the_holders_and_the_acknowledgements(history: History) -> None:
    # a prefix into the random part: the first 12 characters are the millisecond the id was made in
    done = cli("audit", "trace", history.first[:20], "--dir", str(history.root))
    assert done.returncode == 0, done.stdout + done.stderr
    for line in ("→ TR v1: sent", "→ AZ v1: sent", "AZ v1: recalled (from TR)", "KZ holds AZ's signed acknowledgement"):
        assert line in done.stdout, done.stdout


# --------------------------------------------------------------------------- an insider rewrites TR's log


def test_tail_cut_off_and_head_moved(copy: History) -> None:
    cut = seq_of(copy.root, "TR", "INGRESS", copy.second)
    Insider(copy.root, "TR").rewrite(lambda entries: entries[: cut - 1])
    assert_names(verify(federation_view(copy.root), "TR"), cut)


def test_ingress_entry_deleted_and_log_rechained(copy: History) -> None:
    ingress = seq_of(copy.root, "TR", "INGRESS", copy.second)
    Insider(copy.root, "TR").rewrite(without(ingress))
    assert_names(verify(federation_view(copy.root), "TR"), ingress)
    # KZ holds TR's receipt naming that entry: the two logs no longer tell one story.
    assert {MismatchKind.NOT_RECEIVED, MismatchKind.SIGNED_ENTRY_DIFFERS} <= kinds(copy.root)


def test_refusal_rewritten_as_allowed(copy: History) -> None:
    ((refusal,),) = query(copy.root, "TR", "SELECT seq FROM audit_log WHERE reason = ?", "BAND_ABOVE_CEILING")

    def allow(entries: list[Entry]) -> list[Entry]:
        entries[refusal - 1] |= {"allowed": True, "reason": "ALLOWED"}
        return entries

    Insider(copy.root, "TR").rewrite(allow)
    assert_names(verify(federation_view(copy.root), "TR"), refusal)


def test_forged_entry_backdated_into_the_witnessed_past(copy: History) -> None:
    ingress = seq_of(copy.root, "TR", "INGRESS", copy.first)
    insider = Insider(copy.root, "TR")
    read = insider.entries()[ingress - 1] | {
        "event": "OFFICER_READ",
        "actor": "duty@TR",
        "peer": None,
        "allowed": None,
        "reason": None,
        "rule": None,
        "detail": "{}",
    }
    insider.rewrite(lambda entries: [*entries[:ingress], read, *entries[ingress:]])
    assert_names(verify(federation_view(copy.root), "TR"), ingress + 1)


def test_forged_entry_appended_without_the_nodes_key(copy: History) -> None:
    # SPEC §11.10.7: an entry after the last checkpoint the node signed was written by something else.
    insider = Insider(copy.root, "TR")
    last = insider.entries()[-1]
    insider.append_forged(last | {"event": "OFFICER_READ", "actor": "duty@TR", "detail": "{}"}, sign=False)
    size = last["seq"]
    report = verify(federation_view(copy.root), "TR")
    assert [(p.seq, p.kind) for p in report.problems] == [(size + 1, "not_checkpointed")]


def test_received_item_erased_with_its_entries(copy: History) -> None:
    ingress = seq_of(copy.root, "TR", "INGRESS", copy.second)
    execute(copy.root, "TR", "DELETE FROM inbox_items WHERE item_id = ?", copy.second)
    envelopes = "SELECT envelope_id FROM audit_log WHERE item_id = ?"
    execute(copy.root, "TR", f"DELETE FROM deliveries WHERE envelope_id IN ({envelopes})", copy.second)
    Insider(copy.root, "TR").rewrite(lambda entries: [e for e in entries if e["item_id"] != copy.second])
    assert_names(verify(federation_view(copy.root), "TR"), ingress)
    mismatches = [m for m in reconcile(federation_view(copy.root)) if m.kind == MismatchKind.NOT_RECEIVED]
    assert [m.item_id for m in mismatches] == [copy.second]


def test_rewritten_log_is_refused_by_its_witnesses(copy: History) -> None:
    # SPEC §11.10.5: a log cut back and regrown is a rollback (or fork) to every witness
    # that co-signed more of it; each refuses, keeps the two contradicting notes, and
    # TR's log records the refusals.
    cut = seq_of(copy.root, "TR", "INGRESS", copy.second)
    held = witnessed_size(copy.root, "TR")
    assert held > cut
    Insider(copy.root, "TR").rewrite(lambda entries: entries[: cut - 1])
    fed = LocalFederation(copy.root)
    with fed.running(list(MEMBERS)):
        refusals = wait_for(
            "KZ refuses TR's checkpoint",
            lambda: query(
                copy.root,
                "KZ",
                "SELECT reason, json_extract(detail, '$.held_note') FROM audit_log "
                "WHERE event = 'CHECKPOINT_WITNESSED' AND peer = 'TR' AND NOT allowed",
            ),
            timeout=30,
        )
        reason, held_note = refusals[0]
        assert reason in ("CHECKPOINT_ROLLBACK", "CHECKPOINT_FORK", "CONSISTENCY_PROOF_INVALID")
        assert f"\n{held}\n" in held_note  # the checkpoint KZ co-signed, signed by TR, kept as evidence
        wait_for(
            "TR's log records the refusal",
            lambda: query(
                copy.root,
                "TR",
                "SELECT 1 FROM audit_log WHERE event = 'COSIGNATURE_RECEIVED' AND peer = 'KZ' AND NOT allowed",
            ),
        )
    assert query(copy.root, "KZ", "SELECT max(size) FROM witnessed_checkpoints WHERE member = 'TR'") == [(held,)]


# --------------------------------------------------------------------------- reconciliation


@pytest.mark.parametrize(
    ("member", "event", "expected"),
    [
        ("KZ", "DELIVERY_CONFIRMED", {MismatchKind.UNCONFIRMED}),
        ("KZ", "CONSENT_DECISION_SENT", {MismatchKind.RESHARE_WITHOUT_CONSENT}),
        ("AZ", "RECALL_RECEIVED", {MismatchKind.NOTICE_NOT_APPLIED, MismatchKind.SIGNED_ENTRY_DIFFERS}),
        ("TR", "RESHARE", {MismatchKind.NOT_SENT}),
    ],
)
def test_entry_missing_on_one_side(copy: History, member: str, event: str, expected: set[str]) -> None:
    # SPEC §11.10.8: every transfer, consent and notice leaves entries on both sides.
    execute(copy.root, member, "DELETE FROM audit_log WHERE event = ? AND item_id = ?", event, copy.first)
    assert kinds(copy.root) == expected


def test_holder_that_never_acknowledged(copy: History) -> None:
    execute(
        copy.root,
        "KZ",
        "DELETE FROM audit_log WHERE event = 'NOTICE_ACKNOWLEDGED' AND detail LIKE '%\"holder\":\"AZ\"%'",
    )
    (mismatch,) = reconcile(federation_view(copy.root))
    assert (mismatch.kind, mismatch.item_id) == (MismatchKind.NOTICE_NOT_ACKNOWLEDGED, copy.first)
    assert "from AZ" in mismatch.detail


def test_reconcile_cli_lists_mismatches_and_fails(copy: History) -> None:
    execute(copy.root, "KZ", "DELETE FROM audit_log WHERE event = 'DELIVERY_CONFIRMED' AND item_id = ?", copy.second)
    done = cli("audit", "reconcile", "--dir", str(copy.root))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 mismatches" in done.stdout
    assert "unconfirmed" in done.stdout


# --------------------------------------------------------------------------- bundles


def bundle(root: Path, member: str, out: Path) -> Path:
    path = out / f"{member}.bundle"
    done = cli("audit", "bundle", "--dir", str(root), "--member", member, "--out", str(path))
    assert done.returncode == 0, done.stdout + done.stderr
    return path


@pytest.fixture(scope="module")
def bundles(history: History, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each member's bundle of the honest history."""
    out = tmp_path_factory.mktemp("bundles")
    return {member: bundle(history.root, member, out) for member in MEMBERS}


def bundle_args(paths: dict[str, Path]) -> list[str]:
    return [arg for member in MEMBERS for arg in ("--bundle", str(paths[member]))]


def test_bundles_verify_and_reconcile_away_from_the_nodes(copy: History, bundles: dict[str, Path]) -> None:
    # SPEC §11.10.8: the auditor has the bundles and the roster, not the nodes' databases.
    for member in MEMBERS:
        db(copy.root, member).unlink()
    verified = cli("audit", "verify", "--dir", str(copy.root), *bundle_args(bundles))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.count("verifies") == len(MEMBERS)
    reconciled = cli("audit", "reconcile", "--dir", str(copy.root), *bundle_args(bundles))
    assert reconciled.returncode == 0, reconciled.stdout + reconciled.stderr


def test_bundles_need_only_the_secretariat_keys(copy: History, bundles: dict[str, Path], tmp_path: Path) -> None:
    # SPEC §11.10.8: an auditor's directory holds the federation's public trust anchor and
    # nothing else; the roster comes from the bundles, checked against the secretariat's keys.
    auditor = tmp_path / "auditor"
    auditor.mkdir()
    shutil.copy(copy.root / "secretariat.json", auditor / "secretariat.json")
    for command in (("verify",), ("reconcile",), ("trace", copy.second)):
        done = cli("audit", *command, "--dir", str(auditor), *bundle_args(bundles))
        assert done.returncode == 0, (command, done.stdout + done.stderr)
    assert not list(auditor.rglob("*.key"))


def test_roster_forged_by_a_member_in_its_bundle_is_passed_over(copy: History, tmp_path: Path) -> None:
    # An insider at TR slips a roster without KZ into TR's history and exports honestly:
    # the roster is not the secretariat's, so the auditor keeps the one it can verify.
    honest = federation_view(copy.root).roster
    members = tuple(m for m in honest.members if m.member_id != "KZ")
    forged = honest.model_copy(update={"version": 99, "members": members})
    statement = sign(PayloadType.ROSTER, forged, [Insider(copy.root, "TR").material.signing_key])
    execute(
        copy.root,
        "TR",
        "INSERT INTO roster_history (version, digest, statement, source, held_at) "
        "SELECT 99, digest, ?, source, held_at FROM roster_history ORDER BY version DESC LIMIT 1",
        statement.to_bytes(),
    )
    paths = {member: bundle(copy.root, member, tmp_path) for member in MEMBERS}
    roster = roster_from_bundles(list(paths.values()), read_secretariat(copy.root / "secretariat.json"))
    assert roster.version == honest.version
    assert roster.member("KZ") is not None


def test_bundle_holds_no_content(bundles: dict[str, Path]) -> None:
    with sqlite3.connect(f"file:{bundles['TR']}?mode=ro", uri=True) as conn:
        assert conn.execute("SELECT count(*) FROM inbox_items").fetchone()[0] > 0
        assert conn.execute("SELECT count(*) FROM inbox_items WHERE length(sealed_content) > 0").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM outbox_envelopes").fetchone() == (0,)


def test_bundle_is_one_file(history: History, bundles: dict[str, Path]) -> None:
    # An auditor is handed the file alone: nothing of it lives in a write-ahead log beside it.
    open_bundle(bundles["TR"], roster=federation_view(history.root).roster)
    assert sorted(p.name for p in bundles["TR"].parent.iterdir()) == sorted(f"{m}.bundle" for m in MEMBERS)


def test_edited_bundle_is_refused(history: History, bundles: dict[str, Path], tmp_path: Path) -> None:
    edited = dict(bundles, TR=Path(shutil.copy(bundles["TR"], tmp_path / "TR.bundle")))
    with sqlite3.connect(edited["TR"]) as conn:
        conn.execute("UPDATE audit_log SET reason = 'ALLOWED' WHERE reason = 'BAND_ABOVE_CEILING'")
    done = cli("audit", "verify", "--dir", str(history.root), *bundle_args(edited))
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.strip().splitlines() == [f"error: {edited['TR']}: table audit_log is not as TR signed it"]


def test_bundle_of_a_rewritten_log_is_caught_by_the_other_bundles(
    copy: History, bundles: dict[str, Path], tmp_path: Path
) -> None:
    ingress = seq_of(copy.root, "TR", "INGRESS", copy.second)
    Insider(copy.root, "TR").rewrite(without(ingress))
    rewritten = dict(bundles, TR=bundle(copy.root, "TR", tmp_path))  # TR signs its bundle of the rewritten log
    done = cli("audit", "verify", "--dir", str(copy.root), "--member", "TR", *bundle_args(rewritten))
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"TR entry {ingress}" in done.stderr
    assert "witness_mismatch" in done.stderr


def _edited_copy(source: Path, tmp_path: Path, *sql: str) -> Path:
    path = Path(shutil.copy(source, tmp_path / source.name))
    with sqlite3.connect(path) as conn:
        for statement in sql:
            conn.execute(statement)
    return path


def _resigned(source: Path, tmp_path: Path, key: SigningKey, **changes: object) -> Path:
    """A copy of ``source`` whose manifest was re-signed with ``key``, with ``changes`` made to it."""
    path = Path(shutil.copy(source, tmp_path / source.name))
    with sqlite3.connect(path) as conn:
        (blob,) = conn.execute("SELECT statement FROM bundle_manifest").fetchone()
        manifest = BundleManifest.from_bytes(Signed.from_bytes(blob).payload).model_copy(update=changes)
        conn.execute(
            "UPDATE bundle_manifest SET statement = ?", (sign(PayloadType.AUDIT_BUNDLE, manifest, [key]).to_bytes(),)
        )
    return path


@pytest.mark.parametrize(
    ("sql", "table"),
    [
        (
            "INSERT INTO audit_cosignatures "
            "SELECT size + 1000, witness, cosigned_at, lines FROM audit_cosignatures LIMIT 1",
            "audit_cosignatures",
        ),
        ("DELETE FROM audit_log WHERE seq = (SELECT max(seq) FROM audit_log)", "audit_log"),
        ("UPDATE outbox SET receipt = NULL", "outbox"),
    ],
)
def test_bundle_changed_after_export_is_refused(
    history: History, bundles: dict[str, Path], tmp_path: Path, sql: str, table: str
) -> None:
    roster = federation_view(history.root).roster
    with pytest.raises(BundleError, match=f"table {table} is not as KZ signed it"):
        open_bundle(_edited_copy(bundles["KZ"], tmp_path, sql), roster=roster)


def test_bundle_manifest_signed_by_another_member(history: History, bundles: dict[str, Path], tmp_path: Path) -> None:
    forged = _resigned(bundles["TR"], tmp_path, Insider(history.root, "KZ").material.signing_key)
    with pytest.raises(BundleError, match="manifest refused"):
        open_bundle(forged, roster=federation_view(history.root).roster)


def test_bundle_of_another_federation(history: History, bundles: dict[str, Path], tmp_path: Path) -> None:
    other = _resigned(bundles["TR"], tmp_path, Insider(history.root, "TR").material.signing_key, federation="ELSEWHERE")
    with pytest.raises(BundleError, match="a bundle of federation 'ELSEWHERE'"):
        bundle_view(federation_view(history.root).roster, [other])


def test_two_bundles_of_one_member(history: History, bundles: dict[str, Path], tmp_path: Path) -> None:
    again = Path(shutil.copy(bundles["TR"], tmp_path / "again.bundle"))
    with pytest.raises(BundleError, match="are both TR's"):
        bundle_view(federation_view(history.root).roster, [bundles["TR"], again])


def test_file_that_is_no_bundle(history: History, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a database")
    done = cli("audit", "reconcile", "--dir", str(history.root), "--bundle", str(tmp_path / "notes.txt"))
    assert done.returncode == 1
    assert done.stderr.strip().startswith(f"error: {tmp_path / 'notes.txt'}: not an audit bundle")


# --------------------------------------------------------------------------- over the wire


def test_verify_asks_the_running_peers_instead_of_their_databases(copy: History) -> None:
    # SPEC §11.10.9: the peers tell TR's auditor what they hold about TR's log.
    ingress = seq_of(copy.root, "TR", "INGRESS", copy.second)
    Insider(copy.root, "TR").rewrite(without(ingress))
    with LocalFederation(copy.root).running(["KZ", "AZ"]):
        done = cli("audit", "verify", "--dir", str(copy.root), "--member", "TR", "--ask-peers")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "KZ told" in done.stdout
    assert f"TR entry {ingress}" in done.stderr


def test_receipt_holder_finds_a_rewrite_through_inclusion_proofs(copy: History) -> None:
    # SPEC §11.10.9: TR's node cannot prove an entry its log no longer has.
    fed = LocalFederation(copy.root)
    with fed.running(["KZ", "TR"]):
        honest = cli("audit", "prove", "--dir", str(copy.root), "--member", "KZ", "--log", "TR")
    assert honest.returncode == 0, honest.stdout + honest.stderr
    assert "included" in honest.stdout
    ingress = seq_of(copy.root, "TR", "INGRESS", copy.second)
    Insider(copy.root, "TR").rewrite(without(ingress))
    with fed.running(["KZ", "TR"]):
        caught = cli("audit", "prove", "--dir", str(copy.root), "--member", "KZ", "--log", "TR")
    assert caught.returncode == 1, caught.stdout + caught.stderr
    assert f"TR entry {ingress}" in caught.stderr


def test_a_node_tells_a_member_only_about_its_own_log(copy: History) -> None:
    # SPEC §11.10.9: KZ holds checkpoints and statements of TR's and AZ's logs; TR hears of TR's only.
    from node.codec import signed_from_pb
    from node.config import load_material, load_node_config
    from node.peers import channel_to
    from node.wire import exchange_pb2, exchange_pb2_grpc
    from protocol.checkpoint import parse_checkpoint

    tr = load_material(load_node_config(copy.root / "nodes" / "TR" / "node.toml"))
    held = query(copy.root, "KZ", "SELECT count(DISTINCT member) FROM witnessed_checkpoints")
    assert held == [(2,)]  # KZ witnessed TR's log and AZ's
    with LocalFederation(copy.root).running(["KZ"]), channel_to(tr, "KZ") as channel:
        items = list(exchange_pb2_grpc.ExchangeStub(channel).Evidence(exchange_pb2.EvidenceRequest(limit=1000)))
    notes = [
        parse_checkpoint(i.witnessed_checkpoint).checkpoint.origin for i in items if i.HasField("witnessed_checkpoint")
    ]
    signers = {signed_from_pb(i.statement).payload for i in items if i.HasField("statement")}
    assert notes
    assert {origin.rsplit("/", 1)[-1] for origin in notes} == {"TR"}
    assert signers
    assert all(b'"receiver":"TR"' in payload or b'"holder":"TR"' in payload for payload in signers)
