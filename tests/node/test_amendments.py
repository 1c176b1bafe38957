"""Agreement amendments between two running nodes, each signing with its own key only (SPEC §6.4)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from peer_simulator import PeerSimulator

from node.client import DeskClient, DeskError
from node.harness import LocalFederation, eventually, make_label
from protocol import Agreement, Band, ReportTemplate

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "federation.toml"


def intelshare(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "node.cli", *args, "--dir", str(root)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "COLUMNS": "240", "NO_COLOR": "1"},
        timeout=60,
        check=False,
    )


def held(desk: DeskClient, other: str) -> tuple[int, bool]:
    agreement = desk.held_agreement(other)
    assert agreement is not None
    return agreement.version, agreement.in_force


def proposal(desk: DeskClient, proposal_id: str) -> object | None:
    return next((p for p in desk.agreements().proposals if p.proposal_id == proposal_id), None)


def events(desk: DeskClient, event: str) -> list[dict[str, object]]:
    return desk.audit(event=event)


def test_amendment_countersigned_on_both_nodes_and_another_rejected(tmp_path: Path) -> None:
    # SPEC §6.4: proposed, countersigned, in force on both at once; rejected, nothing changes.
    root = tmp_path / "fed"
    fed = LocalFederation.create(EXAMPLE, root, now=datetime.now(UTC))
    sim = PeerSimulator(root)
    with fed.running(["KZ", "TR"]):
        kz, tr = fed.desk("KZ"), fed.desk("TR")
        assert held(kz, "TR") == (1, True)

        # KZ's officer edits the terms it holds and proposes them; only KZ's node signs.
        shown = intelshare(root, "agreement", "show", "--member", "KZ", "--with", "TR", "--json")
        assert shown.returncode == 0, shown.stderr
        terms = json.loads(shown.stdout)
        terms |= {"version": 2, "ceilings": {"KZ": "CONFIDENTIAL", "TR": "CONFIDENTIAL"}}
        (tmp_path / "v2.json").write_text(json.dumps(terms), encoding="utf-8")
        proposed = intelshare(
            root, "agreement", "propose", "--member", "KZ", "--with", "TR", "--from", str(tmp_path / "v2.json"),
            "--note", "lower both ceilings",
        )  # fmt: skip
        assert proposed.returncode == 0, proposed.stderr
        (entry,) = [p for p in kz.agreements().proposals if p.direction == "outgoing"]
        assert (entry.state, entry.version, entry.counterparty) == ("proposed", 2, "TR")
        # A proposal is not a version: both still hold v1, in force.
        assert eventually(lambda: proposal(tr, entry.proposal_id) is not None)
        assert held(tr, "KZ") == (1, True)
        assert held(kz, "TR") == (1, True)
        incoming = proposal(tr, entry.proposal_id)
        assert (incoming.direction, incoming.state, incoming.note) == ("incoming", "proposed", "lower both ceilings")  # type: ignore[attr-defined]

        listed = intelshare(root, "agreement", "list", "--member", "TR")
        assert entry.proposal_id in listed.stdout
        countersigned = intelshare(root, "agreement", "countersign", entry.proposal_id, "--member", "TR")
        assert countersigned.returncode == 0, countersigned.stderr
        assert held(tr, "KZ") == (2, True)  # at once where it was countersigned
        assert eventually(lambda: held(kz, "TR") == (2, True))  # and at the proposer when it arrives
        assert eventually(lambda: proposal(kz, entry.proposal_id).state == "countersigned")  # type: ignore[union-attr]

        # Both nodes decide under v2: KZ refuses a SECRET item at egress; TR refuses an
        # envelope sealed under v1 at ingress.
        label = make_label(fed.roster, "KZ", band=Band.SECRET, releasable_to=["TR"], retain_days=30)
        item = ReportTemplate(title="t", summary="s", body="b", assessment="a", grading=label.grading)
        assert kz.submit(label, item, ["TR"]).outcomes[0].reason == "BAND_ABOVE_CEILING"
        early = sim.envelope(sim.item("KZ", band=Band.CONFIDENTIAL, releasable_to=("TR",)), sender="KZ", recipient="TR")
        receipt = sim.receipt(sim.send(early, to="TR", tls="KZ"), "TR")
        assert (receipt.accepted, receipt.reason) == (False, "AGREEMENT_NOT_IN_FORCE")

        # Both audits show the exchange.
        for desk, direction, peer in ((kz, "sent", "TR"), (tr, "received", "KZ")):
            (sent,) = events(desk, "AGREEMENT_PROPOSED")
            assert (sent["peer"], sent["detail"]["direction"], sent["detail"]["agreement"]) == (
                peer,
                direction,
                "KZ-TR:2",
            )  # type: ignore[index]
            (signed,) = events(desk, "AGREEMENT_COUNTERSIGNED")
            assert (signed["allowed"], signed["reason"], signed["peer"]) == (True, "IN_FORCE", peer)
            assert "KZ-TR:2" in signed["detail"]["agreements"]  # type: ignore[index]

        # TR proposes to loosen again; KZ's officer rejects it, with a reason TR is shown.
        loose = Agreement.model_validate_json(tr.held_agreement("KZ").agreement_json)  # type: ignore[union-attr]
        loose = loose.model_copy(update={"version": 3, "ceilings": {"KZ": Band.SECRET, "TR": Band.SECRET}})
        offer = tr.propose_agreement(loose, "back to SECRET")
        assert eventually(lambda: proposal(kz, offer.proposal_id) is not None)
        rejected = intelshare(
            root, "agreement", "reject", offer.proposal_id, "--member", "KZ", "--reason", "not before the review"
        )
        assert rejected.returncode == 0, rejected.stderr
        assert eventually(lambda: proposal(tr, offer.proposal_id).state == "rejected")  # type: ignore[union-attr]
        assert proposal(tr, offer.proposal_id).reason == "not before the review"  # type: ignore[union-attr]
        assert held(tr, "KZ") == (2, True)
        assert held(kz, "TR") == (2, True)
        for desk, peer in ((kz, "TR"), (tr, "KZ")):
            (no,) = events(desk, "AGREEMENT_REJECTED")
            assert (no["reason"], no["peer"], no["detail"]["agreement"]) == ("REJECTED", peer, "KZ-TR:3")  # type: ignore[index]
        # A decided proposal cannot be decided again; a version not above the one held is refused.
        with pytest.raises(DeskError, match="already"):
            kz.countersign(offer.proposal_id)
        with pytest.raises(DeskError, match="not newer"):
            kz.propose_agreement(loose.model_copy(update={"version": 2}))

        # Both propose v3 at once; TR countersigns KZ's. Every other open proposal up to v3,
        # on either side, is superseded: it can no longer take effect.
        base = Agreement.model_validate_json(kz.held_agreement("TR").agreement_json)  # type: ignore[union-attr]
        kz_v3 = kz.propose_agreement(base.model_copy(update={"version": 3, "max_retention_days": 365}))
        tr_v3 = tr.propose_agreement(base.model_copy(update={"version": 3, "max_retention_days": 90}))
        assert eventually(lambda: proposal(tr, kz_v3.proposal_id) is not None)
        assert eventually(lambda: proposal(kz, tr_v3.proposal_id) is not None)
        assert tr.countersign(kz_v3.proposal_id).state == "countersigned"
        assert eventually(lambda: held(kz, "TR") == (3, True))
        assert proposal(tr, tr_v3.proposal_id).state == "superseded"  # type: ignore[union-attr]
        assert proposal(kz, tr_v3.proposal_id).state == "superseded"  # type: ignore[union-attr]
        with pytest.raises(DeskError, match="already superseded"):
            kz.countersign(tr_v3.proposal_id)
        assert Agreement.model_validate_json(tr.held_agreement("KZ").agreement_json).max_retention_days == 365  # type: ignore[union-attr]
    sim.close()

    # After a restart each node still holds the version it agreed last, not v1 from the files.
    with fed.running(["KZ", "TR"]):
        kz, tr = fed.desk("KZ"), fed.desk("TR")
        assert held(kz, "TR") == (3, True)
        assert held(tr, "KZ") == (3, True)


def test_a_proposal_of_another_member_or_a_stale_version_is_refused(tmp_path: Path) -> None:
    # SPEC §6.4: the proposer must be the TLS peer and the version newer than the one held.
    from protocol.agreement import AgreementProposal
    from protocol.statements import PayloadType, sign

    root = tmp_path / "fed"
    fed = LocalFederation.create(EXAMPLE, root, now=datetime.now(UTC))
    sim = PeerSimulator(root)
    with fed.running(["TR"]):
        tr = fed.desk("TR")
        v1 = Agreement.model_validate_json(tr.held_agreement("KZ").agreement_json)  # type: ignore[union-attr]

        def offer(version: int) -> object:
            agreement = v1.model_copy(update={"version": version})
            inner = sign(PayloadType.AGREEMENT, agreement, [sim.signing_key("KZ")])
            statement = AgreementProposal(
                proposal_id=os.urandom(16).hex(),
                proposer="KZ",
                counterparty="TR",
                agreement=inner,
                replaces=None,
                proposed_at=datetime.now(UTC),
            )
            return sign(PayloadType.AGREEMENT_PROPOSAL, statement, [sim.signing_key("KZ")])

        stale = sim.send_statement("AmendAgreement", offer(1), to="TR", tls="KZ")  # type: ignore[arg-type]
        assert (stale.accepted, stale.reason) == (False, "VERSION_NOT_NEWER")
        relayed = sim.send_statement("AmendAgreement", offer(2), to="TR", tls="AZ")  # type: ignore[arg-type]
        assert (relayed.accepted, relayed.reason) == (False, "SENDER_IDENTITY_MISMATCH")
        fine = sim.send_statement("AmendAgreement", offer(2), to="TR", tls="KZ")  # type: ignore[arg-type]
        assert (fine.accepted, fine.reason) == (True, "PENDING")
        refused = [e for e in tr.audit(event="AGREEMENT_PROPOSED") if not e["allowed"]]
        assert [e["reason"] for e in refused] == ["VERSION_NOT_NEWER", "SENDER_IDENTITY_MISMATCH"]
        assert held(tr, "KZ") == (1, True)
    sim.close()
