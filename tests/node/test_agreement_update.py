"""Tightening an agreement takes effect at once, on both sides (SUMMARY: trust models; SPEC §6.2)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from peer_simulator import PeerSimulator

from node.client import DeskClient
from node.harness import LocalFederation, eventually, make_label
from protocol import Agreement, Band, ReportTemplate, Signed, SigningKey
from protocol.statements import PayloadType, sign

pytestmark = pytest.mark.integration
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "federation.toml"


def write_agreement(root: Path, agreement: Agreement) -> None:
    """Both parties sign the text; the file is replaced atomically, as a distributor would."""
    keys = [SigningKey.from_json((root / "nodes" / p / "signing.key").read_text()) for p in agreement.parties]
    path = root / "agreements" / f"{agreement.agreement_id}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(sign(PayloadType.AGREEMENT, agreement, keys).to_bytes())
    os.replace(tmp, path)


def updates(desk: DeskClient, reason: str) -> int:
    return sum(1 for r in desk.audit(event="AGREEMENT_UPDATED") if r["reason"] == reason)


def test_tightened_agreement_applies_at_once_and_rollback_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "fed"
    fed = LocalFederation.create(EXAMPLE, root, now=datetime.now(UTC))
    sim = PeerSimulator(root)
    with fed.running(["KZ", "TR"]):
        kz, tr = fed.desk("KZ"), fed.desk("TR")
        # Sealed under version 1 before the change, delivered after it.
        early = sim.envelope(sim.item("KZ", band=Band.SECRET, releasable_to=("TR",)), sender="KZ", recipient="TR")
        v1_path = root / "agreements" / "KZ-TR.json"
        v1 = Agreement.from_bytes(Signed.from_bytes(v1_path.read_bytes()).payload)
        tighter = v1.model_copy(update={"version": 2, "ceilings": {"KZ": Band.CONFIDENTIAL, "TR": Band.CONFIDENTIAL}})
        write_agreement(root, tighter)
        assert eventually(lambda: updates(kz, "AGREEMENT_HELD") == 1 and updates(tr, "AGREEMENT_HELD") == 1)

        # Sender side: a SECRET item is now above the ceiling.
        label = make_label(fed.roster, "KZ", band=Band.SECRET, releasable_to=["TR"], retain_days=30)
        item = ReportTemplate(title="t", summary="s", body="b", assessment="a", grading=label.grading)
        assert kz.submit(label, item, ["TR"]).outcomes[0].reason == "BAND_ABOVE_CEILING"
        # Receiver side: an envelope sealed under the superseded version is refused.
        receipt = sim.receipt(sim.send(early, to="TR", tls="KZ"), "TR")
        assert (receipt.accepted, receipt.reason) == (False, "AGREEMENT_NOT_IN_FORCE")

        # Putting version 1 back is a rollback: refused and audited, version 2 stays in force.
        write_agreement(root, v1)
        assert eventually(lambda: updates(kz, "AGREEMENT_REFUSED") == 1 and updates(tr, "AGREEMENT_REFUSED") == 1)
        assert kz.submit(label, item, ["TR"]).outcomes[0].reason == "BAND_ABOVE_CEILING"
    sim.close()
    # The older file is still on disk: a restart must not bring version 1 back (SPEC §5.3).
    with pytest.raises(RuntimeError, match="exited"):
        fed.nodes["KZ"].start()
    assert "KZ-TR v1 is older than v2 already used" in (root / "nodes" / "KZ" / "node.log").read_text()


def test_refusal_of_an_unverifiable_header_names_the_claimed_envelope(tmp_path: Path) -> None:
    """The sender can settle a refusal it cannot otherwise match, so it stops retrying (SPEC §11.3)."""
    from protocol.envelope import EnvelopeHeader

    root = tmp_path / "fed"
    LocalFederation.create(EXAMPLE, root, now=datetime.now(UTC))
    fed = LocalFederation(root)
    sim = PeerSimulator(root)
    with fed.running(["TR"]):
        genuine = sim.envelope(sim.item("KZ", releasable_to=("TR",)), sender="KZ", recipient="TR")
        forged = sim.resign_header(genuine, "AZ")  # KZ's header, AZ's signature
        receipt = sim.receipt(sim.send(forged, to="TR", tls="KZ"), "TR")
        claimed = EnvelopeHeader.from_bytes(forged.header.payload)
        assert (receipt.accepted, receipt.reason) == (False, "SENDER_SIGNATURE_INVALID")
        assert (receipt.envelope_id, receipt.envelope_digest, receipt.sender) == (
            claimed.envelope_id,
            forged.digest,
            "KZ",
        )
        # No delivery record under an id nobody proved: the genuine envelope still gets in.
        assert sim.receipt(sim.send(genuine, to="TR", tls="KZ"), "TR").accepted
    sim.close()
