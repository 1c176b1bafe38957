"""The trainers' scenario as a short program using intelshare's public API.

Run it from the repository root after installing (see README):

    .venv/bin/python examples/scenario.py [DIR]

It builds the demonstration federation from examples/federation.toml in DIR (or a new
temporary directory), starts the five member nodes as separate processes, and plays
the scenario. Change the steps below to vary it (see examples/TRAINERS.md).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from node.harness import LocalFederation, make_label
from protocol import Band, ReportTemplate

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
        print("consent:", tr.ask_consent(sent.item_id, "AZ", "joint operation").state)

        # 4. With the grant, the re-share passes; AZ verifies the origin and the chain.
        again = tr.reshare(sent.item_id, ["AZ"])
        tr.wait_settled([o.envelope_id for o in again.outcomes if o.allowed])
        print("TR → AZ with consent:", [o.reason for o in again.outcomes])
        print("AZ holds:", [(e.item_id[:8], e.originator, e.reader_marking) for e in az.inbox()])

        # 5. The grant was not transferable: AZ cannot pass it on.
        print("AZ → UZ:", [o.reason for o in az.reshare(sent.item_id, ["UZ"]).outcomes])
    return 0


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="intelshare-scenario-"))
    raise SystemExit(main(target))
