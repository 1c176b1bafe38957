"""The trainers' scenario as a short program using intelshare's public API.

Run it from the repository root after installing (see README):

    .venv/bin/python examples/scenario.py [DIR]

It builds the demonstration federation from examples/federation.toml in DIR (or a new
temporary directory), starts the member nodes as separate processes, and plays the
scenario. Change the steps below to vary it (see examples/TRAINERS.md).
"""

from __future__ import annotations

import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from node.harness import LocalFederation, eventually, make_label
from protocol import Agreement, Band, ReportTemplate

HERE = Path(__file__).resolve().parent


def main(root: Path) -> int:
    fed = LocalFederation.create(HERE / "federation.toml", root)
    with fed.running(["KZ", "TR", "AZ", "UZ"]):
        kz, tr, az = fed.desk("KZ"), fed.desk("TR"), fed.desk("AZ")

        # 1. KZ shares a SECRET report with TR under their 2022 protocol.
        label = make_label(
            fed.roster, "KZ", band=Band.SECRET, topics=["terrorism"], releasable_to=["TR"], retain_days=90
        )
        report = ReportTemplate(
            title="Cell movement on the Caspian coast",
            summary="Three members crossed at Aktau.",
            body="Observed on the ferry line.",
            assessment="Likely logistics.",
            grading=label.grading,
        )
        sent = kz.submit(label, report, ["TR"])
        kz.wait_settled([o.envelope_id for o in sent.outcomes])
        print("KZ → TR:", [(o.recipient, o.reason) for o in sent.outcomes])

        # 2. TR may not pass it to AZ without KZ's consent.
        print("TR → AZ without consent:", [o.reason for o in tr.reshare(sent.item_id, ["AZ"]).outcomes])

        # 3. TR asks; KZ's standing rule grants (see [members.KZ.consent] in federation.toml).
        asked = tr.ask_consent(sent.item_id, "AZ", "joint operation")
        decided = tr.wait_decided(asked.request_id)
        print("consent:", decided.state if decided else asked.state)

        # 4. With the grant, the re-share passes; AZ verifies the origin and the chain.
        again = tr.reshare(sent.item_id, ["AZ"])
        tr.wait_settled([o.envelope_id for o in again.outcomes if o.allowed])
        print("TR → AZ with consent:", [o.reason for o in again.outcomes])
        print("AZ holds:", [(e.item_id[:8], e.originator, e.reader_marking) for e in az.inbox()])

        # 5. The grant was not transferable: AZ cannot pass it on.
        print("AZ → UZ:", [o.reason for o in az.reshare(sent.item_id, ["UZ"]).outcomes])

        # 6. KZ revokes its grant; TR applies it and passes it on to AZ.
        if decided is not None and decided.grant_id:
            print("revocation sent to:", list(kz.revoke_grant(decided.grant_id, "source at risk").notified))
            eventually(lambda: bool(az.audit(event="CONSENT_REVOKED", item_id=sent.item_id)))
            print("TR → AZ after the revocation:", [o.reason for o in tr.reshare(sent.item_id, ["AZ"]).outcomes])

        # 7. KZ recalls the item; the recall reaches AZ through TR, and both holders' signed
        #    acknowledgements come back to KZ.
        print("recall sent to:", list(kz.recall(sent.item_id, "source withdrawn").notified))
        eventually(lambda: len(kz.audit(event="NOTICE_ACKNOWLEDGED", item_id=sent.item_id)) == 2)
        print("acknowledged by:", [a["detail"]["holder"] for a in kz.audit(event="NOTICE_ACKNOWLEDGED")])

        # 8. A short-lived item is purged by every holder when its retention ends.
        brief = label.model_copy(update={"band": Band.CONFIDENTIAL, "originator_marking": "КОНФИДЕНЦИАЛЬНО"})
        brief = brief.model_copy(update={"retain_until": datetime.now(UTC) + timedelta(seconds=5)})
        short = kz.submit(brief, report.model_copy(update={"title": "Ferry times"}), ["TR"])
        kz.wait_settled([o.envelope_id for o in short.outcomes])
        eventually(lambda: any(e.item_id == short.item_id and e.status == "purged" for e in tr.inbox()), 30)
        print("TR's copy:", [e.status for e in tr.inbox() if e.item_id == short.item_id])

        # 9. KZ proposes a shorter maximum retention to TR; TR's officer countersigns, and the
        #    new version is in force on both nodes. Each node signs with its own key only.
        held = kz.held_agreement("TR")
        assert held is not None
        current = Agreement.model_validate_json(held.agreement_json)
        proposal = kz.propose_agreement(
            current.model_copy(update={"version": current.version + 1, "max_retention_days": 365}), "one year"
        )
        eventually(lambda: any(p.proposal_id == proposal.proposal_id for p in tr.agreements().proposals))
        tr.countersign(proposal.proposal_id)
        eventually(lambda: (kz.held_agreement("TR") or held).version == current.version + 1)
        print(
            "KZ–TR now:",
            [(a.agreement_id, a.version, a.in_force) for a in kz.agreements().agreements if "TR" in a.parties],
        )
    return 0


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="intelshare-scenario-"))
    raise SystemExit(main(target))
