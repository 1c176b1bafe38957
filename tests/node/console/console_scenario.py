"""A small demo-like federation for the console's tests: items exchanged, a consent, a re-share, a recall.

KZ shares a SECRET item with TR; TR is refused passing it to AZ, asks KZ, KZ's standing
rule grants, TR re-shares it to AZ (AZ then holds it under KZ's grant); AZ is refused
passing it on to UZ. TR shares a CONFIDENTIAL item with AZ and recalls it; AZ applies the
recall. The nodes witness each other's logs
often (``[witness] interval_seconds``), and the run waits until every node holds a
cosignature, so the federation page has witnesses to show. The nodes are stopped at the
end: the console reads the databases with nobody writing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import make_url

from node.client import DeskClient
from node.harness import LocalFederation, make_label
from protocol.classification import Band
from protocol.item import ReportTemplate
from protocol.label import Label

__all__ = ["MEMBERS", "Scenario", "db_path", "often_witnessed", "play", "wait_for"]

MEMBERS = ("KZ", "TR", "AZ", "UZ")


@dataclass(frozen=True)
class Scenario:
    """What the scenario did, for the tests to look for."""

    #: KZ's SECRET item: KZ → TR, then TR → AZ under KZ's grant.
    reshared: str
    #: TR's CONFIDENTIAL item to AZ, recalled.
    recalled: str
    #: TR → AZ envelope of the re-share.
    reshare_envelope: str
    #: KZ → TR envelope of the first item.
    first_envelope: str


def wait_for(what: str, probe: Callable[[], bool], timeout: float = 20.0) -> None:
    """Poll ``probe`` until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.05)


def db_path(fed: LocalFederation, member: str) -> Path:
    """The SQLite file of a member's node."""
    database = make_url(fed.nodes[member].config.database_url).database
    assert database is not None
    return Path(database)


def _report(label: Label, title: str) -> ReportTemplate:
    return ReportTemplate(title=title, summary="summary", body="body", assessment="assessment", grading=label.grading)


def _send(desk: DeskClient, label: Label, title: str, to: list[str]) -> tuple[str, str]:
    sent = desk.submit(label, _report(label, title), to)
    assert all(o.allowed for o in sent.outcomes), sent
    (envelope_id,) = [o.envelope_id for o in sent.outcomes]
    settled = desk.wait_settled([envelope_id])
    assert settled[envelope_id].state == "delivered", settled
    return sent.item_id, envelope_id


def _consent_granted(tr: DeskClient, request_id: str) -> bool:
    return any(r.request_id == request_id and r.state == "granted" for r in tr.consent_requests())


def _recalled(az: DeskClient, item_id: str) -> bool:
    return any(e.item_id == item_id and e.status == "recalled" for e in az.inbox(1000))


def _witnessed(fed: LocalFederation, member: str) -> bool:
    import sqlite3

    with sqlite3.connect(f"file:{db_path(fed, member)}?mode=ro", uri=True) as conn:
        return bool(conn.execute("SELECT count(*) FROM audit_cosignatures").fetchone()[0])


def play(fed: LocalFederation) -> Scenario:
    """Run the scenario on running nodes ``MEMBERS``; returns what it made."""
    roster = fed.roster
    kz, tr, az = (fed.desk(m) for m in ("KZ", "TR", "AZ"))
    try:
        secret = make_label(roster, "KZ", band=Band.SECRET, releasable_to=["TR"], retain_days=90)
        item, first_envelope = _send(kz, secret, "Cell movement on the Caspian coast", ["TR"])
        (refused,) = tr.reshare(item, ["AZ"]).outcomes
        assert refused.reason == "THIRD_PARTY_WITHOUT_CONSENT", refused
        asked = tr.ask_consent(item, "AZ", "joint operation against the same network")
        wait_for("KZ's grant at TR", lambda: _consent_granted(tr, asked.request_id))
        (reshare,) = tr.reshare(item, ["AZ"]).outcomes
        assert reshare.allowed, reshare
        assert tr.wait_settled([reshare.envelope_id])[reshare.envelope_id].state == "delivered"
        (onward,) = az.reshare(item, ["UZ"]).outcomes
        assert onward.reason == "CONSENT_NOT_TRANSFERABLE", onward

        confidential = make_label(roster, "TR", band=Band.CONFIDENTIAL, releasable_to=["AZ"], retain_days=90)
        recalled, _ = _send(tr, confidential, "Financing routes", ["AZ"])
        tr.recall(recalled, "source compromised")
        wait_for("the recall applied at AZ", lambda: _recalled(az, recalled))
        for member in MEMBERS:
            wait_for(f"a cosignature of {member}'s log", lambda m=member: _witnessed(fed, m))  # type: ignore[misc]
    finally:
        for desk in (kz, tr, az):
            desk.close()
    return Scenario(item, recalled, reshare.envelope_id, first_envelope)


def often_witnessed(fed: LocalFederation) -> None:
    """Ask peers to witness every half second (the default is every 5 s while the log grows)."""
    for node in fed.nodes.values():
        with node.config_path.open("a", encoding="utf-8") as out:
            out.write("\n[witness]\ninterval_seconds = 0.5\n")
