"""Recall and correction over the wire: signed by the originator, applied by every holder."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from node.harness import LocalFederation, eventually, make_label
from protocol import Band, ReportTemplate

pytestmark = pytest.mark.integration
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "federation.toml"


def test_correction_supersedes_the_held_version_and_recall_withdraws_it(tmp_path: Path) -> None:
    fed = LocalFederation.create(EXAMPLE, tmp_path / "fed", now=datetime.now(UTC))
    with fed.running(["KZ", "TR"]):
        kz, tr = fed.desk("KZ"), fed.desk("TR")
        label = make_label(fed.roster, "KZ", band=Band.CONFIDENTIAL, releasable_to=["TR"], retain_days=30)
        report = ReportTemplate(title="v1", summary="s", body="first account", assessment="a", grading=label.grading)
        first = kz.submit(label, report, ["TR"])
        kz.wait_settled([o.envelope_id for o in first.outcomes])

        corrected = report.model_copy(update={"title": "v2", "body": "corrected account"})
        second = kz.correct(first.item_id, label, corrected, ["TR"])
        assert second.item_version == 2
        kz.wait_settled([o.envelope_id for o in second.outcomes])

        def statuses() -> dict[int, str]:
            return {e.item_version: e.status for e in tr.inbox() if e.item_id == first.item_id}

        assert eventually(lambda: statuses() == {1: "superseded", 2: "held"}), statuses()
        assert tr.read(first.item_id, 2).entry.item_version == 2
        assert any(r["event"] == "CORRECTION_RECEIVED" for r in tr.audit())

        kz.recall(first.item_id, "source withdrawn", version=2)
        assert eventually(lambda: statuses().get(2) == "recalled"), statuses()
        recalled = tr.audit(event="RECALL_RECEIVED")
        assert recalled
        assert recalled[-1]["reason"] == "RECALLED"
        # A recalled item cannot be passed on any more, by anyone.
        onward = tr.reshare(first.item_id, ["KZ"], version=2)
        assert onward.outcomes[0].reason == "RECALLED"


def test_recall_survives_a_holder_outage_and_a_sender_crash(tmp_path: Path) -> None:
    """The recall is committed with the decision to recall, and delivered when it can be (SPEC §11.9)."""
    # SPEC §11.9: the notice is committed with the recall itself.
    fed = LocalFederation.create(EXAMPLE, tmp_path / "fed", now=datetime.now(UTC))
    with fed.running(["KZ", "TR"]):
        kz, tr = fed.desk("KZ"), fed.desk("TR")
        label = make_label(fed.roster, "KZ", band=Band.CONFIDENTIAL, releasable_to=["TR"], retain_days=30)
        report = ReportTemplate(title="t", summary="s", body="b", assessment="a", grading=label.grading)
        sent = kz.submit(label, report, ["TR"])
        kz.wait_settled([o.envelope_id for o in sent.outcomes])

        fed.nodes["TR"].stop()
        assert list(kz.recall(sent.item_id, "source burned").notified) == ["TR"]
        fed.nodes["KZ"].kill9()  # before TR could be told
        fed.nodes["TR"].start()
        fed.nodes["KZ"].start()
        tr = fed.desk("TR")
        assert eventually(
            lambda: [e.status for e in tr.inbox() if e.item_id == sent.item_id] == ["recalled"], timeout=30
        )
