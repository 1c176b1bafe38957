"""The demo's roster step: the secretariat revokes a stolen key while every node runs (SPEC §5.4.3, §11.12)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from rich.table import Table

from node.demo_referee import Transcript, forge_delivery
from node.federation import open_layout
from node.harness import LocalFederation
from node.secretariat import Secretariat
from protocol.agreement import Agreement
from protocol.roster import Roster
from protocol.statements import Signed

__all__ = ["revoke_compromised_key"]


def _agreements(root: Path) -> list[Agreement]:
    return [
        Agreement.from_bytes(Signed.model_validate_json(path.read_bytes()).payload)
        for path in sorted((root / "agreements").glob("*.json"))
    ]


def revoke_compromised_key(fed: LocalFederation, t: Transcript, members: tuple[str, ...]) -> None:
    """The ``[demo] compromised`` member's key is stolen; the secretariat revokes it with every node running."""
    layout = open_layout(fed.root)
    thief = layout.demo.get("compromised", layout.demo.get("refused_target", "UZ"))
    running = [m for m in members if fed.nodes[m].process is not None]
    others = [m for m in running if m != thief]
    t.step(
        f"{thief}'s signing key is stolen; the secretariat revokes it",
        f"Someone copied {thief}'s signing key and certificate. Two of the Permanent Secretariat's three "
        f"key holders sign roster version N+1, which lists the key as revoked, and the secretariat publishes "
        f"it to every node over mutual TLS. Each node checks the two signatures and that the version is "
        f"newer, applies it at once — no restart — and passes it on. The next envelope signed with the "
        f"stolen key is refused everywhere, and the agreements {thief} signed with it are set aside.",
    )
    secretariat = Secretariat.open(fed.root)
    signed = secretariat.write(secretariat.revoke_key(thief, None, datetime.now(UTC)), [])
    version = Roster.from_bytes(signed.payload).version
    delivered = {d.member_id: d for d in secretariat.publish(signed, running)}
    table = Table(show_header=True, header_style="bold", box=None, padding=(0, 2))
    for column in ("node", "outcome", "holds"):
        table.add_column(column)
    for member, d in delivered.items():
        table.add_row(member, d.outcome, f"v{d.roster_version}")
    t.console.print(table)
    t.expect(
        f"every running node holds roster v{version}",
        all(d.outcome in ("applied", "already held") for d in delivered.values()),
        ", ".join(f"{m}: {d.outcome}" for m, d in delivered.items()),
    )
    reasons = {m: forge_delivery(fed.root, rogue=thief, claimed_sender=thief, victim=m).reason for m in others}
    t.expect(
        f"the next envelope signed with {thief}'s key is refused KEY_REVOKED by every node",
        all(r == "KEY_REVOKED" for r in reasons.values()),
        ", ".join(f"{m}: {r}" for m, r in reasons.items()),
    )
    alive = [m for m in running if (p := fed.nodes[m].process) is not None and p.poll() is None]
    t.expect("every node is still running (none was restarted)", alive == running, ", ".join(alive))
    partners = sorted({p for ag in _agreements(fed.root) if thief in ag.parties for p in ag.parties} & set(others))
    set_aside = {}
    for member in partners:
        desk = fed.desk(member)
        try:
            set_aside[member] = [
                e["detail"]["agreement"]
                for e in desk.audit(event="AGREEMENT_UPDATED")
                if e["reason"] == "AGREEMENT_SET_ASIDE"
            ]
        finally:
            desk.close()
    t.expect(
        f"{thief}'s partners set aside the agreements it signed with the stolen key",
        all(any(thief in a for a in agreements) for agreements in set_aside.values()),
        ", ".join(f"{m}: {', '.join(a)}" for m, a in set_aside.items()) or "no partner running",
    )
