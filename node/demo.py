"""``intelshare demo``: the trainers' scenario on a five-member federation (README, examples/).

Builds the demonstration federation in a directory, starts one node process per member
on loopback with SQLite, and plays the scenario step by step with a narrated
transcript. Every expected outcome is checked; the command exits non-zero if any did
not happen. The directory is left for ``intelshare audit …``.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from node import audit, demo_audit
from node.client import DeskClient
from node.codec import envelope_to_pb
from node.config import load_material, load_node_config
from node.federation import open_layout
from node.harness import LocalFederation, eventually, make_label
from node.secretariat import Secretariat
from node.store import make_engine, make_sessionmaker
from node.transport import CHANNEL_OPTIONS, channel_credentials
from node.wire import exchange_pb2_grpc
from protocol.agreement import Agreement
from protocol.classification import Band
from protocol.envelope import Suite, attest, seal
from protocol.item import ReportTemplate
from protocol.label import Label
from protocol.receipt import Receipt
from protocol.roster import Roster
from protocol.statements import Signed

__all__ = ["DEMO_MEMBERS", "default_federation_file", "forge_delivery", "run_demo"]

DEMO_MEMBERS = ("TR", "AZ", "KZ", "KG", "UZ")


def default_federation_file() -> Path:
    """The demonstration federation file, ``examples/federation.toml``, as the package carries it.

    In the source tree ``node/demo_federation.toml`` is a link to it; a wheel carries a copy
    (package data), so ``intelshare demo`` works from an installed package too.
    """
    return Path(__file__).resolve().with_name("demo_federation.toml")


@dataclass
class Transcript:
    """Narration plus the record of which expectations held."""

    console: Console
    checks: list[tuple[str, bool, str]] = field(default_factory=list)
    step_no: int = 0

    def step(self, title: str, story: str) -> None:
        self.step_no += 1
        self.console.print()
        self.console.print(Panel(story, title=f"[bold]{self.step_no}. {title}", title_align="left"))

    def expect(self, what: str, ok: bool, got: str) -> None:
        self.checks.append((what, ok, got))
        mark = "[green]✔ as expected[/]" if ok else "[bold red]✘ NOT as expected[/]"
        self.console.print(f"   {mark}: {what} — {got}")

    def refused(self, response: Any, reason: str) -> None:
        """Show a desk response's decisions and expect its single outcome refused with ``reason``."""
        self.decisions(response)
        got = response.outcomes[0].reason
        self.expect(f"refused {reason}", got == reason, got)

    def decisions(self, response: Any) -> None:
        table = Table(show_header=True, header_style="bold", box=None, padding=(0, 2))
        for column in ("to", "decision", "reason code", "rule", "why"):
            table.add_column(column)
        for o in response.outcomes:
            verdict = "[green]allowed[/]" if o.allowed else "[red]refused[/]"
            table.add_row(o.recipient, verdict, o.reason, o.rule, o.detail)
        self.console.print(table)


def forge_delivery(root: Path, *, rogue: str, claimed_sender: str, victim: str) -> Receipt:
    """A misbehaving node: ``rogue`` delivers an envelope it signed in ``claimed_sender``'s name.

    It uses its own genuine TLS certificate (it is a federation member) but claims to be
    another member, and returns the victim's signed receipt.
    """
    cfg = load_node_config(root / "nodes" / rogue / "node.toml")
    material = load_material(cfg)
    roster = material.roster
    victim_member = roster.member(victim)
    # The rogue holds only its own pairs' agreements; it reads the pair's from the file.
    agreement = _agreements(root).get(frozenset((claimed_sender, victim)))
    assert victim_member is not None
    now = datetime.now(UTC)
    label = make_label(roster, claimed_sender, band=Band.CONFIDENTIAL, releasable_to=[victim], now=now)
    item = ReportTemplate(
        title="Fabricated alert",
        summary="A fabricated warning.",
        body="Invented.",
        assessment="Meant to mislead.",
        grading=label.grading,
    )
    origin, plaintext = attest(
        item_id="forged-0001", label=label, item=item, originator_key=material.signing_key, now=now
    )
    envelope = seal(
        plaintext=plaintext,
        origin=origin,
        sender=claimed_sender,
        sender_key=material.signing_key,
        recipient=victim_member,
        agreement_id=agreement.agreement_id if agreement else "NONE",
        agreement_version=agreement.version if agreement else 1,
        consents=(),
        suite=Suite.X25519_AES256GCM,
        now=now,
    )
    creds = channel_credentials(material.tls_cert_pem, material.tls_key_pem, material.ca_pem)
    with grpc.secure_channel(victim_member.endpoint, creds, options=CHANNEL_OPTIONS) as channel:
        reply = exchange_pb2_grpc.ExchangeStub(channel).Deliver(envelope_to_pb(envelope), timeout=10)
    statement = Signed(payload_type=reply.statement.payload_type, payload=reply.statement.payload, signatures=())
    return Receipt.from_bytes(statement.payload)


def _agreements(root: Path) -> dict[frozenset[str], Agreement]:
    out = {}
    for path in sorted((root / "agreements").glob("*.json")):
        agreement = Agreement.from_bytes(Signed.model_validate_json(path.read_bytes()).payload)
        out[frozenset(agreement.parties)] = agreement
    return out


def _holdings(fed: LocalFederation, t: Transcript) -> None:
    agreements = _agreements(fed.root)
    table = Table(title="Who holds what, under which rule")
    for column in ("holder", "item", "originator", "from", "band (holder's marking)", "held under", "status"):
        table.add_column(column)
    for member in DEMO_MEMBERS:
        desk = fed.desk(member)
        try:
            for e in desk.inbox():
                ag = agreements.get(frozenset((e.sender, member)))
                rule = f"{ag.agreement_id} v{ag.version}" if ag else "?"
                if e.sender != e.originator:
                    rule += f" + {e.originator}'s signed consent"
                table.add_row(
                    member, e.item_id, e.originator, e.sender, f"{e.band} ({e.reader_marking})", rule, e.status
                )
        finally:
            desk.close()
    t.console.print(table)


def _verify_audits(fed: LocalFederation, t: Transcript) -> None:
    table = Table(title="Audit logs")
    for column in ("node", "entries", "verifies"):
        table.add_column(column)
    for member in DEMO_MEMBERS:
        cfg = load_node_config(fed.root / "nodes" / member / "node.toml")
        engine = make_engine(cfg.database_url)
        try:
            with make_sessionmaker(engine)() as session:
                report = audit.verify(session)
        finally:
            engine.dispose()
        table.add_row(member, str(report.entries), "[green]yes[/]" if report.ok else "[red]NO[/]")
        t.expect(f"{member}'s audit log verifies", report.ok, f"{report.entries} entries")
    t.console.print(table)


def _audit_has(desk: DeskClient, event: str, reason: str, peer: str) -> bool:
    return any(r["reason"] == reason and r["peer"] == peer for r in desk.audit(event=event))


def _report(label: Label, title: str, summary: str, body: str, assessment: str) -> ReportTemplate:
    """A report in the federation's template, graded as its label says."""
    return ReportTemplate(title=title, summary=summary, body=body, assessment=assessment, grading=label.grading)


def play(fed: LocalFederation, t: Transcript) -> None:
    """The trainers' scenario (examples/TRAINERS.md explains each step)."""
    roster = fed.roster
    kz, tr, az, uz = (fed.desk(m) for m in ("KZ", "TR", "AZ", "UZ"))
    try:
        t.step(
            "KZ shares a SECRET item with TR",
            "Kazakhstan's service reports a cell moving along the Caspian coast to Türkiye's service, "
            "under their 2022 protocol on the mutual protection of classified information. KZ signs the "
            "origin attestation, seals the item to TR with HPKE, and TR re-checks everything on arrival.",
        )
        label = make_label(roster, "KZ", band=Band.SECRET, topics=["terrorism"], releasable_to=["TR"], retain_days=90)
        item = _report(
            label,
            "Cell movement on the Caspian coast",
            "Three members of a known cell crossed at Aktau.",
            "Observed crossing on the ferry line; documents in false names.",
            "Likely preparing logistics for an attack abroad.",
        )
        sent = kz.submit(label, item, ["TR"])
        t.decisions(sent)
        item_id = sent.item_id
        settled = kz.wait_settled([o.envelope_id for o in sent.outcomes if o.allowed])
        delivered = all(e.state == "delivered" for e in settled.values())
        t.expect("KZ→TR delivered with TR's signed receipt", delivered, ", ".join(e.state for e in settled.values()))
        held = [e for e in tr.inbox() if e.item_id == item_id]
        shown = f"{held[0].originator_marking} (KZ) = {held[0].reader_marking} (TR)" if held else "missing"
        t.expect("TR holds it, label shown in both national markings", bool(held), shown)

        t.step(
            "TR tries to pass it to AZ without consent",
            "The bilateral protocols ban re-sharing with a third party without the originator's written "
            "consent. TR's own node refuses at egress, and the refusal is audited.",
        )
        refused = tr.reshare(item_id, ["AZ"])
        t.refused(refused, "THIRD_PARTY_WITHOUT_CONSENT")
        t.expect(
            "the refusal is in TR's audit log",
            _audit_has(tr, "RESHARE", "THIRD_PARTY_WITHOUT_CONSENT", "AZ"),
            "RESHARE … THIRD_PARTY_WITHOUT_CONSENT",
        )

        t.step(
            "TR asks KZ for consent; KZ grants",
            "TR's request travels to KZ over mutual TLS. KZ's standing rule grants consent for AZ up to "
            "SECRET, for 30 days, not transferable; the signed grant travels back to TR.",
        )
        asked = tr.ask_consent(item_id, "AZ", "joint operation against the same network")
        t.console.print(f"   request {asked.request_id}: {asked.state} {asked.reason}")
        granted = eventually(
            lambda: any(r.request_id == asked.request_id and r.state == "granted" for r in tr.consent_requests())
        )
        t.expect("KZ's signed grant reached TR", granted, "granted" if granted else "no answer")

        t.step(
            "TR re-shares with AZ, carrying KZ's grant",
            "AZ verifies KZ's origin attestation and the whole consent chain before accepting.",
        )
        reshared = tr.reshare(item_id, ["AZ"])
        t.decisions(reshared)
        settled = tr.wait_settled([o.envelope_id for o in reshared.outcomes if o.allowed])
        t.expect(
            "TR→AZ delivered",
            bool(settled) and all(e.state == "delivered" for e in settled.values()),
            ", ".join(f"{e.state} {e.reason}" for e in settled.values()),
        )
        read = az.read(item_id)
        chain = ", ".join(c[:60] + "…" for c in read.consent_chain_json)
        t.expect("AZ holds it with KZ's grant in its consent chain", len(read.consent_chain_json) == 1, chain)

        t.step("AZ tries to pass it on to UZ", "KZ's grant let TR pass the item to AZ, but did not let AZ pass it on.")
        onward = az.reshare(item_id, ["UZ"])
        t.refused(onward, "CONSENT_NOT_TRANSFERABLE")

        t.step(
            "TR sends UZ a SECRET item above their agreement's ceiling",
            "TR and UZ have a hierarchical agreement: TR, the senior party, sends no higher than "
            "CONFIDENTIAL. A SECRET item is refused at egress, before anything is sealed.",
        )
        high = make_label(roster, "TR", band=Band.SECRET, topics=["terrorism"], releasable_to=["UZ"], retain_days=90)
        report = _report(
            high,
            "Network financing routes",
            "Hawala routes used by a network.",
            "Routes and brokers.",
            "Moderate confidence.",
        )
        too_high = tr.submit(high, report, ["UZ"])
        t.refused(too_high, "BAND_ABOVE_CEILING")

        t.step(
            "A misbehaving node forges a delivery",
            "UZ's node, with its genuine certificate, delivers to TR an envelope it signed in KZ's name. "
            "TR sees that the TLS peer is not the member that claims to have signed, refuses it and "
            "audits the refusal.",
        )
        receipt = forge_delivery(fed.root, rogue="UZ", claimed_sender="KZ", victim="TR")
        t.expect(
            "TR refused SENDER_IDENTITY_MISMATCH",
            not receipt.accepted and receipt.reason == "SENDER_IDENTITY_MISMATCH",
            f"{receipt.reason} ({receipt.rule})",
        )
        t.expect(
            "the forgery stored nothing in TR's inbox",
            not any(e.item_id == "forged-0001" for e in tr.inbox()),
            "inbox unchanged",
        )
        t.expect(
            "the refusal is in TR's audit log",
            _audit_has(tr, "INGRESS", "SENDER_IDENTITY_MISMATCH", "UZ"),
            "INGRESS … SENDER_IDENTITY_MISMATCH",
        )

        revoke_compromised_key(fed, t)

        t.step(
            "Every node's audit log verifies; who holds what",
            "Each log is a hash-linked chain (RFC 9162 leaf hashes): an edited, removed or reordered entry "
            "would be named. The table shows every copy and the rule it is held under.",
        )
        _verify_audits(fed, t)
        _holdings(fed, t)
        t.expect(
            "the item reached exactly KZ's recipients and consented third parties",
            {e.item_id for e in uz.inbox()} == set() and any(e.item_id == item_id for e in az.inbox()),
            "TR, AZ hold it; UZ does not",
        )
    finally:
        for desk in (kz, tr, az, uz):
            desk.close()


def revoke_compromised_key(fed: LocalFederation, t: Transcript) -> None:
    """The secretariat revokes a stolen key while every node runs (SPEC §5.4.3, §11.12)."""
    layout = open_layout(fed.root)
    thief = layout.demo.get("compromised", layout.demo.get("refused_target", "UZ"))
    running = [m for m in DEMO_MEMBERS if fed.nodes[m].process is not None]
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
    t.expect(
        "every node is still running (none was restarted)",
        all(fed.nodes[m].process is not None and fed.nodes[m].process.poll() is None for m in running),  # type: ignore[union-attr]
        ", ".join(running),
    )
    partners = sorted(
        {p for ag in _agreements(fed.root).values() if thief in ag.parties for p in ag.parties} & set(others)
    )
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


def run_demo(directory: Path | None, federation_file: Path | None, console: Console) -> int:
    """Build, start, play, stop. Returns the exit code (0 only if every expectation held)."""
    source = federation_file or default_federation_file()
    if not source.is_file():
        console.print(f"[red]error:[/] no federation file at {source}; pass --federation")
        return 2
    root = directory or Path(tempfile.mkdtemp(prefix="intelshare-demo-"))
    console.print(
        Panel(f"Demonstration federation of {', '.join(DEMO_MEMBERS)} in [bold]{root}[/]", title="intelshare demo")
    )
    fed = LocalFederation.create(source, root)
    layout = open_layout(root)
    console.print(
        f"   CA, keys, certificates, signed roster and {len(list(layout.agreements_dir.glob('*.json')))} "
        f"signed agreements written; starting {len(DEMO_MEMBERS)} node processes…"
    )
    t = Transcript(console)
    try:
        with fed.running(DEMO_MEMBERS):
            play(fed, t)
            demo_audit.witnessed(fed, t, DEMO_MEMBERS)
        demo_audit.audit_after(fed, t, DEMO_MEMBERS)
    except Exception as exc:  # any failure is reported, not hidden: the demo exits non-zero
        t.expect("the scenario ran to the end", False, f"{type(exc).__name__}: {exc}")
    failed = [c for c in t.checks if not c[1]]
    console.print()
    summary = f"{len(t.checks) - len(failed)} of {len(t.checks)} expected outcomes happened."
    console.print(
        Panel(summary + (" [green]All as expected.[/]" if not failed else " [red]Some did not.[/]"), title="result")
    )
    console.print(
        f"Inspect it: [bold]intelshare audit list --dir {root} --member TR[/]  ·  "
        f"[bold]intelshare audit verify --dir {root} --member AZ[/]"
    )
    return 1 if failed else 0


__all__ += ["Transcript", "play"]
