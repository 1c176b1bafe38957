"""Consent, complete: onward grants, conditions, revocation along the item's path, denial reasons (SPEC §9.4)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from node.client import DeskClient, DeskError
from node.harness import LocalFederation, eventually, make_label
from protocol import Band, ReportTemplate
from protocol.label import Label

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "federation.toml"
MEMBERS = ("KG", "TR", "KZ", "AZ", "UZ")


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


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFederation]:
    federation = LocalFederation.create(EXAMPLE, tmp_path_factory.mktemp("fed") / "ots", now=datetime.now(UTC))
    with federation.running(MEMBERS):
        yield federation


@pytest.fixture(scope="module")
def desks(fed: LocalFederation) -> Iterator[dict[str, DeskClient]]:
    clients = {m: fed.desk(m) for m in MEMBERS}
    yield clients
    for client in clients.values():
        client.close()


def report(label: Label) -> ReportTemplate:
    return ReportTemplate(title="Network", summary="s", body="b", assessment="a", grading=label.grading)


def deliver(desk: DeskClient, response: Any) -> None:
    (outcome,) = response.outcomes
    assert outcome.allowed, outcome
    assert desk.wait_settled([outcome.envelope_id])[outcome.envelope_id].state == "delivered"


def revocations(desk: DeskClient, item_id: str) -> list[dict[str, Any]]:
    return [e for e in desk.audit(event="CONSENT_REVOKED", item_id=item_id) if e["allowed"]]


def test_three_grant_chain_built_with_onward_grants_then_revoked_everywhere(
    fed: LocalFederation, desks: dict[str, DeskClient]
) -> None:
    # SPEC §9.4.4, §9.4.2, §9.4.3: KG → TR → KZ → AZ → UZ, one grant per third party.
    kg, tr, kz, az, uz = (desks[m] for m in MEMBERS)
    label = make_label(
        fed.roster, "KG", band=Band.CONFIDENTIAL, topics=["extremism"], releasable_to=["TR"], retain_days=90
    )
    sent = kg.submit(label, report(label), ["TR"])
    deliver(kg, sent)
    item_id = sent.item_id

    # TR asks KG, whose officer decides by hand: transferable, and onward only to AZ or UZ.
    asked = tr.ask_consent(item_id, "KZ", "corridor security")
    assert eventually(lambda: any(r.request_id == asked.request_id for r in kg.consent_requests("pending")))
    first = kg.decide(
        asked.request_id, grant=True, transferable=True, valid_days=20, conditions=["onward-to:AZ", "onward-to:UZ"]
    )
    assert eventually(lambda: tr.wait_decided(asked.request_id, 1.0) is not None)
    deliver(tr, tr.reshare(item_id, ["KZ"]))

    # KZ holds a transferable grant: it signs the onward grant for AZ within its scope.
    with pytest.raises(DeskError, match="only to AZ, UZ"):
        kz.grant_onward(item_id, "TR")  # the originator's condition
    onward = intelshare(
        fed.root, "consent", "onward", item_id, "--member", "KZ", "--to", "AZ", "--transferable", "--valid-days", "60"
    )
    assert onward.returncode == 0, onward.stderr
    (second,) = [g for g in kz.grants() if g.grantor == "KZ"]
    assert (second.holder, second.grantee, second.transferable) == ("KZ", "AZ", True)
    assert second.expires_at == next(g for g in kg.grants() if g.grant_id == first.grant_id).expires_at  # no longer
    deliver(kz, kz.reshare(item_id, ["AZ"]))

    third = az.grant_onward(item_id, "UZ", valid_days=5)
    deliver(az, az.reshare(item_id, ["UZ"]))
    chain = [json.loads(g) for g in uz.read(item_id).consent_chain_json]
    assert [(g["grantor"], g["holder"], g["grantee"]) for g in chain] == [
        ("KG", "TR", "KZ"),
        ("KZ", "KZ", "AZ"),
        ("AZ", "AZ", "UZ"),
    ]
    assert chain[0]["conditions"] == ["onward-to:AZ", "onward-to:UZ"]  # the reader sees them
    shown = intelshare(fed.root, "show", item_id, "--member", "UZ")
    assert "onward-to:AZ, onward-to:UZ" in shown.stdout
    # The last grant was not transferable: UZ may not pass it on.
    assert uz.reshare(item_id, ["TR"]).outcomes[0].reason == "CONSENT_NOT_TRANSFERABLE"

    # KG revokes its grant: TR (its holder) applies it and passes it on along the item's
    # path, KZ to AZ, AZ to UZ; every holder audits it.
    revoked = intelshare(fed.root, "consent", "revoke", first.grant_id, "--member", "KG", "--reason", "source at risk")
    assert revoked.returncode == 0, revoked.stderr
    assert "sent to TR" in revoked.stdout
    for desk in (tr, kz, az, uz):
        assert eventually(lambda d=desk: len(revocations(d, item_id)) == 1), desk  # type: ignore[misc]
    hops = {m: revocations(desks[m], item_id)[0] for m in ("TR", "KZ", "AZ", "UZ")}
    assert {m: (e["peer"], e["detail"]["forwarded_to"]) for m, e in hops.items()} == {
        "TR": ("KG", ["KZ"]),
        "KZ": ("TR", ["AZ"]),
        "AZ": ("KZ", ["UZ"]),
        "UZ": ("AZ", []),
    }
    assert {e["detail"]["grant_id"] for e in hops.values()} == {first.grant_id}
    (issued,) = kg.audit(event="CONSENT_REVOCATION_SENT", item_id=item_id)
    assert (issued["detail"]["notified"], issued["detail"]["why"]) == (["TR"], "source at risk")
    # The chain no longer carries consent, at any hop; the copies already held stay readable.
    assert tr.reshare(item_id, ["KZ"]).outcomes[0].reason == "CONSENT_REVOKED"
    assert az.reshare(item_id, ["UZ"]).outcomes[0].reason == "CONSENT_REVOKED"
    assert uz.read(item_id).entry.status == "held"
    with pytest.raises(DeskError, match="revoked"):
        kz.grant_onward(item_id, "UZ")
    assert third.grant_id  # AZ's own grant needed no revocation: its chain broke upstream


def test_denial_reason_is_shown_to_the_requester(fed: LocalFederation, desks: dict[str, DeskClient]) -> None:
    # SPEC §9.4.1: a denial carries the originator's reason, which the requester is shown.
    kz, tr = desks["KZ"], desks["TR"]
    label = make_label(fed.roster, "KZ", band=Band.CONFIDENTIAL, releasable_to=["TR"], retain_days=30)
    sent = kz.submit(label, report(label), ["TR"])
    deliver(kz, sent)
    asked = intelshare(
        fed.root, "consent", "ask", sent.item_id, "--member", "TR", "--for", "UZ", "--purpose", "regional brief"
    )
    assert asked.returncode == 0, asked.stderr
    assert "denied: refused by the originator's standing rules" in asked.stdout
    listed = intelshare(fed.root, "consent", "list", "--member", "TR", "--state", "denied")
    assert "refused by the originator's standing rules" in listed.stdout
    (received,) = tr.audit(event="CONSENT_DECISION_RECEIVED", item_id=sent.item_id)
    assert received["detail"]["why"] == "refused by the originator's standing rules"


def test_a_grant_condition_outside_the_vocabulary_is_refused(
    fed: LocalFederation, desks: dict[str, DeskClient]
) -> None:
    # SPEC §9.4.4: conditions are typed; a free-text one cannot be signed.
    tr, az = desks["TR"], desks["AZ"]
    label = make_label(fed.roster, "TR", band=Band.CONFIDENTIAL, releasable_to=["AZ"], retain_days=30)
    sent = tr.submit(label, report(label), ["AZ"])
    deliver(tr, sent)
    asked = az.ask_consent(sent.item_id, "UZ", "joint analysis")
    assert eventually(lambda: any(r.request_id == asked.request_id for r in tr.consent_requests("pending")))
    with pytest.raises(DeskError, match=r"^a condition is onward-to"):
        tr.decide(asked.request_id, grant=True, conditions=["please be careful"])
    with pytest.raises(DeskError, match="unknown condition 'embargo'"):
        tr.decide(asked.request_id, grant=True, conditions=["embargo:2030-01-01T00:00:00Z"])
    assert tr.decide(asked.request_id, grant=True, conditions=["onward-to:KZ"]).state == "granted"
