"""``intelshare correct``: a correction from the command line reaches every holder, re-shares too (SPEC §10.2)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from node.client import DeskClient
from node.harness import LocalFederation, eventually, make_label
from protocol import Band, ReportTemplate

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "federation.toml"


def intelshare(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "node.cli", *args, "--dir", str(root)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "COLUMNS": "250", "NO_COLOR": "1"},
        timeout=60,
        check=False,
    )


def versions(desk: DeskClient, item_id: str) -> dict[int, str]:
    return {e.item_version: e.status for e in desk.inbox(1000) if e.item_id == item_id}


def test_a_correction_from_the_cli_reaches_the_recipient_of_a_reshare(tmp_path: Path) -> None:
    # SPEC §10.2, §10.3: the same reach downstream as a recall, acknowledged back to the originator.
    root = tmp_path / "fed"
    fed = LocalFederation.create(EXAMPLE, root, now=datetime.now(UTC))
    with fed.running(["KZ", "TR", "AZ"]):
        kz, tr, az = fed.desk("KZ"), fed.desk("TR"), fed.desk("AZ")
        label = make_label(fed.roster, "KZ", band=Band.CONFIDENTIAL, releasable_to=["TR"], retain_days=30)
        first = ReportTemplate(
            title="Crossing", summary="s", body="three crossed", assessment="a", grading=label.grading
        )
        sent = kz.submit(label, first, ["TR"])
        kz.wait_settled([o.envelope_id for o in sent.outcomes])
        item_id = sent.item_id
        assert tr.ask_consent(item_id, "AZ", "joint operation").state == "decided"
        assert eventually(lambda: tr.consent_requests("granted") != [])
        (onward,) = tr.reshare(item_id, ["AZ"]).outcomes
        assert tr.wait_settled([onward.envelope_id])[onward.envelope_id].state == "delivered"

        (tmp_path / "fix.json").write_text(json.dumps({"body": "four crossed"}), encoding="utf-8")
        done = intelshare(
            root, "correct", item_id, "--member", "KZ", "--from", str(tmp_path / "fix.json"),
            "--assessment", "revised", "--reason", "a fourth member was identified",
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        assert "corrected by v2" in done.stdout
        assert eventually(lambda: versions(tr, item_id) == {1: "superseded", 2: "held"})
        new = json.loads(tr.read(item_id, 2).item_json)
        assert (new["title"], new["body"], new["assessment"]) == ("Crossing", "four crossed", "revised")

        # AZ got v1 from TR's re-share, not from KZ: TR passed the signed correction on.
        assert eventually(lambda: versions(az, item_id) == {1: "superseded"})
        (applied,) = az.audit(event="CORRECTION_RECEIVED", item_id=item_id)
        assert (applied["peer"], applied["allowed"], applied["reason"]) == ("TR", True, "SUPERSEDED")
        (sent_notice,) = kz.audit(event="CORRECTION_SENT", item_id=item_id)
        assert sent_notice["detail"]["reason"] == "a fourth member was identified"
        # Both holders' signed acknowledgements reach KZ, AZ's through TR, and the CLI shows them.
        assert eventually(
            lambda: (
                {e["detail"]["holder"] for e in kz.audit(event="NOTICE_ACKNOWLEDGED", item_id=item_id)} == {"TR", "AZ"}
            )
        )
        shown = intelshare(root, "notices", item_id, "--member", "KZ")
        assert shown.returncode == 0, shown.stderr
        assert "AZ applied correction" in shown.stdout
        assert "via TR" in shown.stdout

        # Only the originator corrects its item.
        refused = intelshare(root, "correct", item_id, "--member", "TR", "--body", "x")
        assert refused.returncode != 0
